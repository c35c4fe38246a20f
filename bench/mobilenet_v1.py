"""MobileNet-v1 (Howard et al. 2017, "MobileNets"), 1.0 width and 224 input by default, in slim.

    with slim.arg_scope(mobilenet_v1_arg_scope()):
        logits, end_points = mobilenet_v1(images, num_classes=1000)

A 3x3 stride-2 conv of 32, then 13 depthwise-separable blocks, each a 3x3 depthwise conv and a
1x1 pointwise conv, both followed by batch norm and ReLU6; global average pooling, dropout and a
1x1 conv that gives the logits. Layer names are those of the slim model zoo (`Conv2d_0`,
`Conv2d_1_depthwise`, `Conv2d_1_pointwise`, ..., `Logits/Conv2d_1c_1x1`), so that a pruning
spec written for the zoo's checkpoints reads the same here. Any input side of at least 32
builds: the pool is a mean over whatever spatial size is left.
"""

import tensorflow as tf
import tf_slim as slim

import model_pruning

# (kind, stride, output depth at width 1.0) of each layer, from Table 1 of the paper.
LAYERS = [("conv", 2, 32)] + [("separable", stride, depth) for stride, depth in [
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024)]]


def _depth(depth, depth_multiplier, min_depth=8):
    return max(int(depth * depth_multiplier), min_depth)


def mobilenet_v1(images, num_classes=1000, depth_multiplier=1.0, is_training=True,
                 dropout_keep_prob=0.999, scope="MobilenetV1"):
    """MobileNet-v1 on NHWC `images`; use it under `mobilenet_v1_arg_scope()`.

    Args:
      images: a float tensor [N, H, W, 3], H and W at least 32.
      num_classes: the number of logits.
      depth_multiplier: the width multiplier alpha of the paper; every depth is scaled by it
        (and kept at 8 or more).
      is_training: a Python bool for batch norm and dropout.
      dropout_keep_prob: the probability of keeping each pooled feature while training.
      scope: the variable scope of the model.
    Returns:
      (logits [N, num_classes], end_points: a dict of the named activations).
    Raises:
      ValueError: if depth_multiplier is not positive.
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be positive, got {depth_multiplier}")
    end_points = {}
    with tf.compat.v1.variable_scope(scope, "MobilenetV1", [images]), \
            slim.arg_scope([model_pruning.batch_norm, slim.dropout], is_training=is_training):
        net = images
        for index, (kind, stride, depth) in enumerate(LAYERS):
            depth = _depth(depth, depth_multiplier)
            if kind == "conv":
                name = f"Conv2d_{index}"
                net = slim.conv2d(net, depth, [3, 3], stride=stride, scope=name)
                end_points[name] = net
                continue
            name = f"Conv2d_{index}_depthwise"
            net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                        scope=name)
            end_points[name] = net
            name = f"Conv2d_{index}_pointwise"
            net = slim.conv2d(net, depth, [1, 1], stride=1, scope=name)
            end_points[name] = net
        with tf.compat.v1.variable_scope("Logits"):
            net = tf.reduce_mean(net, [1, 2], keepdims=True, name="AvgPool_1a")
            end_points["AvgPool_1a"] = net
            net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout_1b")
            logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                 normalizer_fn=None, scope="Conv2d_1c_1x1")
            logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
        end_points["Logits"] = logits
        end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


def mobilenet_v1_arg_scope(weight_decay=4e-5, stddev=0.09, batch_norm_decay=0.9997,
                           batch_norm_epsilon=0.001):
    """The arg_scope MobileNet-v1 trains with: ReLU6 after batch norm on every conv, L2 weight
    decay on the regular and pointwise kernels but not on the depthwise ones."""
    batch_norm_params = {"center": True, "scale": True, "decay": batch_norm_decay,
                         "epsilon": batch_norm_epsilon}
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.compat.v1.truncated_normal_initializer(
                            stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=model_pruning.batch_norm,
                        padding="SAME"):
        with slim.arg_scope([slim.conv2d],
                            weights_regularizer=slim.l2_regularizer(weight_decay)), \
                slim.arg_scope([slim.separable_conv2d], weights_regularizer=None), \
                slim.arg_scope([model_pruning.batch_norm], **batch_norm_params) as scope:
            return scope
