"""Contrib's CIFAR-10 convnet with every weight masked for pruning.

conv1 -> pool1 -> norm1 -> conv2 -> norm2 -> pool2 -> local3 -> local4 -> softmax_linear. Each
layer's weight goes through `pruning.apply_mask(weights, scope)`, so the graph holds
`conv1/weights`, `conv1/mask`, `conv1/threshold` and the op `conv1/weights/masked_weight`, the
names contrib's checkpoints and strip tool use. The logits are the op `LOGITS_NODE`.

Unlike contrib, `train` keeps no moving averages of the weights: the evaluation and the strip
tool then read the very variables that were trained and pruned.
"""

import tensorflow as tf

from examples.cifar10 import cifar10_input
from model_pruning import pruning

BATCH_SIZE = 128
NUM_EPOCHS_PER_DECAY = 350.0
LEARNING_RATE_DECAY_FACTOR = 0.1
INITIAL_LEARNING_RATE = 0.1
# apply_mask re-enters the layer's variable scope twice (mask, threshold), taking the name
# scopes softmax_linear/softmax_linear and _1; contrib's README names the same node.
LOGITS_NODE = "softmax_linear/softmax_linear_2"
LOSSES_COLLECTION = "losses"

_LRN = dict(depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)


def _activation_summary(x):
    """A histogram of the activations and the fraction of them that are zero."""
    tf.compat.v1.summary.histogram(x.op.name + "/activations", x)
    tf.compat.v1.summary.scalar(x.op.name + "/sparsity", tf.nn.zero_fraction(x))


def _variable_on_cpu(name, shape, initializer):
    with tf.device("/cpu:0"):
        return tf.compat.v1.get_variable(name, shape, initializer=initializer, dtype=tf.float32)


def _variable_with_weight_decay(name, shape, stddev, wd):
    """A truncated-normal variable whose L2 loss times `wd` joins the `losses` collection."""
    var = _variable_on_cpu(
        name, shape, tf.compat.v1.truncated_normal_initializer(stddev=stddev))
    if wd:
        tf.compat.v1.add_to_collection(
            LOSSES_COLLECTION, tf.multiply(tf.nn.l2_loss(var), wd, name="weight_loss"))
    return var


def _masked_conv(inputs, scope_name, shape, bias_init):
    with tf.compat.v1.variable_scope(scope_name) as scope:
        kernel = _variable_with_weight_decay("weights", shape, stddev=5e-2, wd=0.0)
        conv = tf.nn.conv2d(inputs, pruning.apply_mask(kernel, scope), [1, 1, 1, 1],
                            padding="SAME")
        biases = _variable_on_cpu("biases", [shape[-1]],
                                  tf.compat.v1.constant_initializer(bias_init))
        activation = tf.nn.relu(tf.nn.bias_add(conv, biases), name=scope.name)
    _activation_summary(activation)
    return activation


def _masked_local(inputs, scope_name, units, stddev, wd, bias_init, activation_fn):
    with tf.compat.v1.variable_scope(scope_name) as scope:
        weights = _variable_with_weight_decay(
            "weights", [inputs.get_shape()[-1], units], stddev=stddev, wd=wd)
        biases = _variable_on_cpu("biases", [units], tf.compat.v1.constant_initializer(bias_init))
        output = activation_fn(
            tf.matmul(inputs, pruning.apply_mask(weights, scope)) + biases, name=scope.name)
    _activation_summary(output)
    return output


def _max_pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=3, strides=2, padding="SAME", name=name)


def inference(images):
    """Logits [batch, NUM_CLASSES] (no softmax) for images [batch, 24, 24, 3]."""
    conv1 = _masked_conv(images, "conv1", [5, 5, 3, 64], bias_init=0.0)
    pool1 = _max_pool(conv1, "pool1")
    norm1 = tf.nn.lrn(pool1, name="norm1", **_LRN)
    conv2 = _masked_conv(norm1, "conv2", [5, 5, 64, 64], bias_init=0.1)
    norm2 = tf.nn.lrn(conv2, name="norm2", **_LRN)
    pool2 = _max_pool(norm2, "pool2")
    # A -1 batch dimension (contrib fixed it to BATCH_SIZE) lets one graph serve any batch.
    flat = tf.reshape(pool2, [-1, pool2.get_shape()[1:].num_elements()])
    local3 = _masked_local(flat, "local3", 384, stddev=0.04, wd=0.004, bias_init=0.1,
                           activation_fn=tf.nn.relu)
    local4 = _masked_local(local3, "local4", 192, stddev=0.04, wd=0.004, bias_init=0.1,
                           activation_fn=tf.nn.relu)
    return _masked_local(local4, "softmax_linear", cifar10_input.NUM_CLASSES,
                         stddev=1 / 192.0, wd=0.0, bias_init=0.0, activation_fn=tf.identity)


def loss(logits, labels):
    """Mean cross-entropy plus every weight-decay term: the `total_loss` tensor."""
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int64), logits=logits, name="cross_entropy_per_example")
    tf.compat.v1.add_to_collection(
        LOSSES_COLLECTION, tf.reduce_mean(cross_entropy, name="cross_entropy"))
    return tf.add_n(tf.compat.v1.get_collection(LOSSES_COLLECTION), name="total_loss")


def train(total_loss, global_step, batch_size=BATCH_SIZE,
          initial_learning_rate=INITIAL_LEARNING_RATE,
          examples_per_epoch=cifar10_input.NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN,
          num_epochs_per_decay=NUM_EPOCHS_PER_DECAY):
    """The training op: plain gradient descent with contrib's staircase learning-rate decay.

    The rate drops by LEARNING_RATE_DECAY_FACTOR every `num_epochs_per_decay` epochs of
    `examples_per_epoch` examples. Adds summaries of the rate, the losses, every trainable
    variable and its gradient.
    """
    decay_steps = max(1, int(examples_per_epoch / batch_size * num_epochs_per_decay))
    learning_rate = tf.compat.v1.train.exponential_decay(
        initial_learning_rate, global_step, decay_steps, LEARNING_RATE_DECAY_FACTOR,
        staircase=True)
    tf.compat.v1.summary.scalar("learning_rate", learning_rate)
    for each_loss in tf.compat.v1.get_collection(LOSSES_COLLECTION) + [total_loss]:
        tf.compat.v1.summary.scalar(each_loss.op.name, each_loss)

    optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
    grads_and_vars = optimizer.compute_gradients(total_loss)
    for grad, var in grads_and_vars:
        tf.compat.v1.summary.histogram(var.op.name, var)
        if grad is not None:
            tf.compat.v1.summary.histogram(var.op.name + "/gradients", grad)
    return optimizer.apply_gradients(grads_and_vars, global_step=global_step, name="train")
