"""First-order Taylor scores of output channels (Molchanov et al., arXiv 1611.06440).

Masking output channel c of a conv or fc layer sets its pre-bias output z_c to zero, which
changes the loss by about -sum(z_c * dLoss/dz_c). The score of the channel is

    |mean over batch and positions of z_c * dLoss/dz_c|

kept per layer as a moving average in the variable `<scope>/taylor_score` (one float per
output channel): score <- decay * score + (1 - decay) * batch score. Channels with the lowest
score are pruned first. A masked channel has z_c = 0, so its score decays towards zero and it
stays pruned.

`z` is the output of the Conv2D, Conv3D or MatMul that consumes the masked kernel, before bias
and activation: exactly the tensor that masking the channel zeroes (Molchanov scores the
activation after the nonlinearity, which a weight mask does not zero when the bias is not 0).
"""

import tensorflow as tf

SCORE_NAME = "taylor_score"

# Op type -> (index of the kernel input, data_format attr value -> channel axis of the output).
_KERNEL_CONSUMERS = {
    "Conv2D": (1, {b"NHWC": -1, b"NCHW": 1}),
    "Conv3D": (1, {b"NDHWC": -1, b"NCDHW": 1}),
    "MatMul": (1, {}),
}


def layer_output(masked_weight):
    """(output tensor, channel axis) of the one conv or matmul that uses `masked_weight` as kernel.

    Raises:
      ValueError: naming the weight and its consumers when there is not exactly one
        Conv2D, Conv3D or MatMul (without transpose_b) using it as kernel.
    """
    layers = []
    for op in masked_weight.consumers():
        kernel_index, channel_axes = _KERNEL_CONSUMERS.get(op.type, (None, None))
        if kernel_index is None or op.inputs[kernel_index] is not masked_weight:
            continue
        if op.type == "MatMul":
            if op.get_attr("transpose_b"):
                continue
            layers.append((op.outputs[0], -1))
        else:
            layers.append((op.outputs[0], channel_axes[op.get_attr("data_format")]))
    if len(layers) != 1:
        found = ", ".join(f"{op.name} ({op.type})" for op in masked_weight.consumers()) or "none"
        raise ValueError(
            f"The taylor criterion needs {masked_weight.op.name} to be the kernel of exactly one "
            f"Conv2D, Conv3D or MatMul (without transpose_b); its consumers are: {found}")
    return layers[0]


def channel_scores(activation, gradient, channel_axis):
    """|mean of activation * gradient| over every axis but `channel_axis`, in float32."""
    product = tf.cast(activation, tf.float32) * tf.cast(gradient, tf.float32)
    rank = product.get_shape().ndims
    axes = [axis for axis in range(rank) if axis != channel_axis % rank]
    return tf.abs(tf.reduce_mean(product, axis=axes))


def score_variable(scope_name, channels):
    """The float32 `<scope_name>/taylor_score` of `channels` zeros (reused if it exists)."""
    scope = tf.compat.v1.VariableScope(reuse=tf.compat.v1.AUTO_REUSE, name=scope_name)
    with tf.compat.v1.variable_scope(scope):
        return tf.compat.v1.get_variable(
            SCORE_NAME, shape=[channels], dtype=tf.float32,
            initializer=tf.compat.v1.zeros_initializer(), trainable=False, use_resource=True)


def add_scores(loss, scored, decay, name="taylor_score_update"):
    """Creates the scores of the `scored` weights and the op that folds one batch into them.

    Cost per step: the op has its own `tf.gradients` of `loss` with respect to the scored layer
    outputs, a second backward pass from the loss down to the lowest scored layer (without
    weight gradients; grappler does not merge it with the optimizer's), then one product and
    one mean over each scored activation: a cifar10 example step at batch 128 took 1.5x as
    long with it. Scores only matter at mask updates, so running the op only on the last few
    steps before each update cuts that. State: one float per output channel.

    Args:
      loss: the scalar training loss.
      scored: list of (weight name, masked weight tensor, variable scope name of its mask).
      decay: moving-average decay in [0, 1).
      name: name of the returned op.
    Returns:
      ({weight name: score variable}, the update op).
    Raises:
      ValueError: if `scored` is empty, or a weight is not the kernel of exactly one Conv2D,
        Conv3D or MatMul.
    """
    if not scored:
        raise ValueError("No masked weight uses the taylor criterion: set criterion=taylor "
                         "or criterion_map=[<regex>:taylor]")
    outputs = [layer_output(masked_weight) for _, masked_weight, _ in scored]
    gradients = tf.gradients(loss, [output for output, _ in outputs],
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)
    scores, updates = {}, []
    for (output, axis), gradient, (weight_name, masked_weight, scope_name) in zip(
            outputs, gradients, scored):
        score = score_variable(scope_name, masked_weight.get_shape()[-1])
        batch_score = channel_scores(output, gradient, axis)
        updates.append(score.assign(decay * score + (1.0 - decay) * batch_score))
        scores[weight_name] = score
    return scores, tf.group(*updates, name=name)
