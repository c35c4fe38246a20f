"""channel_groups: which masked kernels share their output channels, from the graph alone."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import inception, resnet_v1, resnet_v2

import model_pruning
from bench import mobilenet_v1
from model_pruning import pruning
from model_pruning.channel_groups import (ChannelGroup, DenseWeight, find_channel_groups,
                                          find_channel_groups_in_graph_def)


def layer(scope, inputs, channels, masked=True, size=1):
    """A conv (rank-4 `inputs`) or fully connected layer (rank 2) with kernel `<scope>/weights`,
    masked unless `masked` is False."""
    with tf.compat.v1.variable_scope(scope):
        rank = inputs.shape.rank
        shape = ([size, size] if rank == 4 else []) + [inputs.shape[-1], channels]
        kernel = tf.compat.v1.get_variable("weights", shape)
        if masked:
            kernel = pruning.apply_mask(kernel, scope)
        if rank == 4:
            return tf.nn.conv2d(inputs, kernel, 1, "SAME")
        return tf.matmul(inputs, kernel)


def batch_norm_as_ops(scope, inputs):
    """x * scale + offset, with per-channel variables: a batch norm written out as ops."""
    with tf.compat.v1.variable_scope(scope):
        channels = inputs.shape[-1]
        scale = tf.compat.v1.get_variable("scale", [channels])
        offset = tf.compat.v1.get_variable("offset", [channels])
        return inputs * scale + offset


def found(graph=None):
    """(groups as [(channels, [(weight name, axis)])], {dense weight name: reason})."""
    groups, dense = find_channel_groups(graph)
    assert all(isinstance(group, ChannelGroup) for group in groups)
    assert all(isinstance(item, DenseWeight) for item in dense)
    return ([(group.channels, [(pruning.graph_name(weight), axis)
                               for weight, axis in group.members]) for group in groups],
            {pruning.graph_name(item.weight): item.reason for item in dense})


def images(side=8, channels=4):
    return tf.compat.v1.placeholder(tf.float32, [2, side, side, channels])


OUTPUTS = "its channels are the model's outputs: no Conv2D or MatMul reads them"


def test_residual_add_couples_the_block_with_its_projection_shortcut():
    with tf.Graph().as_default():
        stem = tf.nn.relu(layer("a", images(), 6))
        residual = layer("c", tf.nn.relu(batch_norm_as_ops("bn", layer("b", stem, 8))), 8,
                         size=3)
        block = tf.nn.relu(residual + layer("d", stem, 8))  # d: the projection shortcut
        block = tf.nn.relu(block + layer("f", tf.nn.relu(layer("e", block, 4)), 8))  # identity
        layer("logits", block, 3)
        groups, dense = found()
    assert groups == [(6, [("a/weights", -1)]),
                      (8, [("b/weights", -1)]),
                      (8, [("c/weights", -1), ("d/weights", -1), ("f/weights", -1)]),
                      (4, [("e/weights", -1)])]
    assert list(dense) == ["logits/weights"]
    assert dense["logits/weights"].startswith(OUTPUTS)


def test_members_follow_the_order_of_get_weights():
    with tf.Graph().as_default():
        x = images()
        shortcut = layer("z", x, 5)  # created first, added second
        layer("out", tf.nn.relu(layer("y", x, 5) + shortcut), 2)
        groups, _ = found()
    assert groups == [(5, [("z/weights", -1), ("y/weights", -1)])]


def test_a_kernel_shared_by_two_layers_joins_both_outputs():
    with tf.Graph().as_default():
        x, y = images(), images()
        outputs = []
        for reuse, inputs in [(False, x), (True, y)]:  # the second apply_mask: masked_weight_1
            with tf.compat.v1.variable_scope("shared", reuse=reuse):
                kernel = pruning.apply_mask(tf.compat.v1.get_variable("weights", [1, 1, 4, 6]),
                                            "shared")
            outputs.append(tf.nn.conv2d(inputs, kernel, 1, "SAME"))
        layer("c", tf.nn.relu(outputs[0]), 2)
        layer("d", tf.nn.relu(outputs[1] + layer("b", y, 6)), 2)
        groups, _ = found()
    assert groups == [(6, [("shared/weights", -1), ("b/weights", -1)])]


def test_an_op_without_a_rule_keeps_its_space_dense_and_is_named():
    with tf.Graph().as_default():
        net = tf.math.cumsum(tf.nn.relu(layer("a", images(), 6)), axis=-1, name="mixing")
        layer("c", tf.nn.relu(layer("b", net, 6)), 2)
        groups, dense = found()
    assert groups == [(6, [("b/weights", -1)])]
    assert dense["a/weights"] == ("mixing (Cumsum) reads its channels, and channel groups have "
                                  "no rule for it")
    assert list(dense) == ["a/weights", "c/weights"]


def test_a_reduction_over_the_channels_before_a_layer_is_named():
    with tf.Graph().as_default():
        net = tf.reduce_mean(layer("a", images(), 6), axis=-1, keepdims=True, name="squash")
        layer("b", net, 2)
        _, dense = found()
    assert dense["a/weights"] == "squash (Mean) does not reduce over constant non-channel axes"


def test_channels_added_to_an_unmasked_layer_stay_dense():
    with tf.Graph().as_default():
        x = images()
        total = tf.add(layer("a", x, 6), layer("free", x, 6, masked=False), name="sum")
        layer("b", total, 2)
        groups, dense = found()
    assert groups == []
    assert dense["a/weights"] == ("sum (AddV2) combines its channels with free/Conv2D "
                                  "(Conv2D), which no masked weight produces")


def test_a_concat_feeding_layers_keeps_each_slice_a_group():
    with tf.Graph().as_default():
        x = images()
        net = tf.concat([tf.nn.relu(layer("a", x, 3)), tf.nn.relu(layer("b", x, 5)), x], 3)
        net = tf.nn.max_pool2d(net, 2, 2, "VALID")
        layer("c", net, 2)
        groups, dense = found()
    assert groups == [(3, [("a/weights", -1)]), (5, [("b/weights", -1)])]
    assert list(dense) == ["c/weights"]


def test_a_concat_coupled_further_makes_every_space_it_touches_dense():
    with tf.Graph().as_default():
        x = images()
        net = tf.concat([layer("a", x, 3), layer("b", x, 5)], 3, name="joined")
        net = tf.nn.relu(net + layer("c", x, 8))
        layer("d", net, 2)
        groups, dense = found()
    assert groups == []
    assert sorted(dense) == ["a/weights", "b/weights", "c/weights", "d/weights"]
    assert dense["c/weights"] == ("the channels joined (ConcatV2) concatenates are coupled "
                                  "further: a concat whose output is coupled is not split into "
                                  "groups")
    assert dense["a/weights"] == dense["b/weights"] == (
        "its channels go through joined (ConcatV2), whose output is dense: " + dense["c/weights"])


def test_a_concat_of_the_model_outputs_makes_its_slices_dense():
    with tf.Graph().as_default():
        x = images()
        tf.nn.softmax(tf.concat([layer("a", x, 3), layer("b", x, 5)], 3), name="probabilities")
        groups, dense = found()
    assert groups == []
    assert dense["a/weights"].endswith(f"{OUTPUTS} (they reach probabilities (Softmax))")


@pytest.mark.parametrize("then_matmul", [True, False])
def test_a_flatten_into_a_matmul_ends_the_space(then_matmul):
    with tf.Graph().as_default():
        net = tf.reshape(tf.nn.relu(layer("a", images(), 6)), [2, 8 * 8 * 6], name="flatten")
        if not then_matmul:
            net = tf.math.cumsum(net, axis=-1, name="mixing")
        layer("fc2", tf.nn.relu(layer("fc1", net, 10)), 3)
        groups, dense = found()
    if then_matmul:
        assert groups == [(6, [("a/weights", -1)]), (10, [("fc1/weights", -1)])]
    else:
        assert dense["a/weights"] == ("flatten (Reshape) flattens the channels into mixing "
                                      "(Cumsum), which is not a MatMul")


@pytest.mark.parametrize("multiplier", [1, 2])
def test_a_depthwise_conv_joins_its_input_channels_unless_it_multiplies_them(multiplier):
    with tf.Graph().as_default():
        net = tf.nn.relu(layer("a", images(), 6))
        with tf.compat.v1.variable_scope("dw"):
            kernel = tf.compat.v1.get_variable("depthwise_weights", [3, 3, 6, multiplier])
            net = tf.nn.depthwise_conv2d(net, pruning.apply_mask(kernel, "dw"), [1, 1, 1, 1],
                                         "SAME", name="depthwise")
        layer("c", tf.nn.relu(layer("b", tf.nn.relu(net), 4)), 2)
        groups, dense = found()
    if multiplier == 1:
        assert groups == [(6, [("a/weights", -1), ("dw/depthwise_weights", 2)]),
                          (4, [("b/weights", -1)])]
    else:
        assert groups == [(4, [("b/weights", -1)])]
        assert dense["dw/depthwise_weights"] == (
            "dw/depthwise (DepthwiseConv2dNative) has channel multiplier 2: its output "
            "channels are not its input channels")
        assert dense["a/weights"] == dense["dw/depthwise_weights"]


def test_a_depthwise_conv_of_the_input_image_is_dense():
    with tf.Graph().as_default():
        kernel = tf.compat.v1.get_variable("dw/depthwise_weights", [3, 3, 4, 1])
        net = tf.nn.depthwise_conv2d(images(), pruning.apply_mask(kernel, "dw"), [1, 1, 1, 1],
                                     "SAME", name="depthwise")
        layer("b", net, 2)
        _, dense = found()
    assert dense["dw/depthwise_weights"].startswith("depthwise (DepthwiseConv2dNative) filters "
                                                    "the channels of Placeholder")


def keeps_channels_cases():
    """(id, op applied to a [2, 8, 8, 6] activation) for each kind of op that keeps channels."""
    def dropout(net):
        return tf.nn.dropout(net, rate=0.5)

    def fused_batch_norm(is_training):
        def apply(net):
            ones = tf.ones([6])
            return tf.compat.v1.nn.fused_batch_norm(
                net, ones, ones, mean=None if is_training else ones,
                variance=None if is_training else ones, is_training=is_training)[0]
        return apply

    return [
        ("Identity", tf.identity), ("Relu", tf.nn.relu), ("Relu6", tf.nn.relu6),
        ("Elu", tf.nn.elu), ("Selu", tf.nn.selu), ("Sigmoid", tf.sigmoid), ("Tanh", tf.tanh),
        ("BiasAdd", lambda net: tf.nn.bias_add(net, tf.ones([6]))),
        ("Sub scalar", lambda net: net - 1.0),
        ("AddN", lambda net: tf.add_n([net, net, net])),
        ("Mul variable", lambda net: net * tf.compat.v1.get_variable("gamma", [1, 1, 1, 6])),
        ("FusedBatchNorm training", fused_batch_norm(True)),
        ("FusedBatchNorm inference", fused_batch_norm(False)),
        ("MaxPool", lambda net: tf.nn.max_pool2d(net, 3, 2, "SAME")),
        ("AvgPool", lambda net: tf.nn.avg_pool2d(net, 2, 2, "VALID")),
        ("LRN", tf.nn.local_response_normalization),
        ("Mean keepdims", lambda net: tf.reduce_mean(net, [1, 2], keepdims=True)),
        ("Mean", lambda net: tf.reduce_mean(net, [1, 2])),
        ("Max", lambda net: tf.reduce_max(net, [1, 2])),
        ("Squeeze", lambda net: tf.squeeze(tf.reduce_mean(net, [1, 2], keepdims=True), [1, 2])),
        ("Pad", lambda net: tf.pad(net, [[0, 0], [1, 1], [1, 1], [0, 0]])),
        ("Reshape keeping the channels", lambda net: tf.reshape(net, [128, 6])),
        ("Dropout", dropout),
        ("slim dropout", lambda net: slim.dropout(net, 0.5, is_training=True)),
        ("Concat along the batch", lambda net: tf.concat([net, net], 0)),
    ]


CASES = keeps_channels_cases()


@pytest.mark.parametrize("apply", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_ops_that_keep_channels_carry_the_space_to_a_residual_add(apply):
    with tf.Graph().as_default():
        net = apply(layer("a", images(), 6))
        shortcut = layer("b", tf.compat.v1.placeholder(tf.float32, net.shape[:-1] + [3]), 6)
        layer("c", net + shortcut, 2)
        groups, dense = found()
    assert groups == [(6, [("a/weights", -1), ("b/weights", -1)])]
    assert list(dense) == ["c/weights"]


def test_a_masked_weight_read_by_an_unknown_op_is_dense_and_a_regularizer_is_not_a_use():
    with tf.Graph().as_default():
        x = images()
        with tf.compat.v1.variable_scope("a"):
            kernel = pruning.apply_mask(tf.compat.v1.get_variable("weights", [1, 1, 4, 6]), "a")
            tf.nn.l2_loss(kernel)
            tf.reduce_max(kernel, name="peak")
        layer("c", tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + layer("b", x, 6)), 2)
        _, dense = found()
    assert dense["a/weights"] == ("its masked weight feeds a/peak (Max), which is not the "
                                  "kernel slot of a Conv2D, MatMul or depthwise conv")
    assert dense["b/weights"] == dense["a/weights"]  # its group goes with it


def test_gradients_and_shape_readers_are_not_uses_of_the_channels():
    with tf.Graph().as_default():
        net = tf.nn.relu(layer("a", images(), 6))
        tf.compat.v1.summary.histogram("activations", net)
        logits = layer("b", tf.reshape(net, tf.shape(net)), 3)
        tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_sum(logits))
        groups, dense = found()
    assert groups == [(6, [("a/weights", -1)])]
    assert dense["b/weights"] == f"{OUTPUTS} (they reach Sum (Sum))"


def test_a_frozen_graph_def_names_its_masked_weight_nodes_and_its_outputs_stay_dense():
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [2, 8, 8, 4], name="x")
        hidden = tf.nn.relu(layer("a", x, 6) + layer("b", x, 6), name="hidden")
        layer("c", tf.nn.relu(layer("d", hidden, 5)), 3)
        tf.identity(layer("e", hidden, 5), name="features")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["c/Conv2D", "features"])
    groups, dense = find_channel_groups_in_graph_def(frozen, ["features"])
    assert groups == [ChannelGroup((("a/weights/masked_weight", -1),
                                    ("b/weights/masked_weight", -1)), 6),
                      ChannelGroup((("d/weights/masked_weight", -1),), 5)]
    assert dense == [DenseWeight("c/weights/masked_weight", OUTPUTS),
                     DenseWeight("e/weights/masked_weight", "features is a graph output")]


def weight_names():
    return [pruning.graph_name(weight) for weight in pruning.get_weights()]


def build_training_graph(net, arg_scope, side, **kwargs):
    """`net` built under masking_scope and its own arg_scope, with a gradient descent step."""
    images = tf.compat.v1.placeholder(tf.float32, [2, side, side, 3])
    with model_pruning.masking_scope(), slim.arg_scope(arg_scope()):
        logits = net(images, num_classes=10, is_training=True, **kwargs)[0]
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy([1, 2], tf.reshape(logits, [2, 10]))
    tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss)


def as_groups(groups_of_names):
    """[(channels, [(name, axis)])] from lists of (name, axis), in the order of get_weights."""
    names = weight_names()
    shapes = {pruning.graph_name(w): w.shape for w in pruning.get_weights()}
    groups = [(int(shapes[members[0][0]][members[0][1]]),
               sorted(members, key=lambda member: names.index(member[0])))
              for members in groups_of_names]
    return sorted(groups, key=lambda group: names.index(group[1][0][0]))


@pytest.mark.parametrize("net, version", [(resnet_v1.resnet_v1_50, "v1"),
                                          (resnet_v2.resnet_v2_50, "v2")])
def test_resnet_50_has_a_group_per_block_and_each_inner_conv_alone(net, version):
    arg_scope = {"v1": resnet_v1.resnet_arg_scope, "v2": resnet_v2.resnet_arg_scope}[version]
    scope = f"resnet_{version}_50"
    with tf.Graph().as_default():
        build_training_graph(net, arg_scope, 64)
        groups, dense = found()
        unit = f"{scope}/block{{}}/unit_{{}}/bottleneck_{version}/{{}}/weights"
        blocks = [[(unit.format(block, 1, "shortcut"), -1)]
                  + [(unit.format(block, index, "conv3"), -1) for index in range(1, units + 1)]
                  for block, units in enumerate([3, 4, 6, 3], 1)]
        inner = [[(unit.format(block, index, conv), -1)]
                 for block, units in enumerate([3, 4, 6, 3], 1)
                 for index in range(1, units + 1) for conv in ("conv1", "conv2")]
        expected = as_groups([[(f"{scope}/conv1/weights", -1)]] + blocks + inner)
    assert groups == expected
    assert [len(members) for _, members in groups if len(members) > 1] == [4, 5, 7, 4]
    assert [channels for channels, members in groups if len(members) > 1] == [
        256, 512, 1024, 2048]
    assert dense == {f"{scope}/logits/weights": f"{OUTPUTS} (they reach "
                                                f"{scope}/predictions/Softmax (Softmax))"}


def test_inception_v1_has_every_conv_alone_through_its_concats():
    with tf.Graph().as_default():
        build_training_graph(inception.inception_v1, inception.inception_v1_arg_scope, 224)
        groups, dense = found()
        logits = "InceptionV1/Logits/Conv2d_0c_1x1/weights"
        expected = as_groups([[(name, -1)] for name in weight_names() if name != logits])
    assert len(groups) == 57
    assert groups == expected
    assert dense == {logits: f"{OUTPUTS} (they reach InceptionV1/Logits/Predictions/Softmax "
                             "(Softmax))"}


def test_mobilenet_v1_groups_each_pointwise_conv_with_the_next_depthwise_kernel():
    with tf.Graph().as_default():
        build_training_graph(mobilenet_v1.mobilenet_v1, mobilenet_v1.mobilenet_v1_arg_scope, 64)
        groups, dense = found()
        layers = [("MobilenetV1/Conv2d_0/weights", -1)] + [
            (f"MobilenetV1/Conv2d_{index}_pointwise/weights", -1) for index in range(1, 14)]
        depthwise = [(f"MobilenetV1/Conv2d_{index}_depthwise/depthwise_weights", 2)
                     for index in range(1, 14)]
        expected = as_groups([[layers[i], depthwise[i]] for i in range(13)] + [[layers[13]]])
    assert groups == expected
    assert [channels for channels, _ in groups] == [
        32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    assert dense == {"MobilenetV1/Logits/Conv2d_1c_1x1/weights":
                     f"{OUTPUTS} (they reach MobilenetV1/Predictions (Softmax))"}


def test_mobilenet_v1_has_the_papers_layers():
    with tf.Graph().as_default(), slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
        logits, end_points = mobilenet_v1.mobilenet_v1(
            tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3]), num_classes=1000)
        kernels = {pruning.graph_name(v): v.shape.as_list()
                   for v in tf.compat.v1.trainable_variables() if v.shape.rank == 4}
        parameters = sum(np.prod(v.shape.as_list())
                         for v in tf.compat.v1.trainable_variables())
    assert logits.shape.as_list() == [1, 1000]
    assert end_points["Conv2d_13_pointwise"].shape.as_list() == [1, 7, 7, 1024]
    assert kernels["MobilenetV1/Conv2d_0/weights"] == [3, 3, 3, 32]
    assert kernels["MobilenetV1/Conv2d_13_depthwise/depthwise_weights"] == [3, 3, 1024, 1]
    assert len(kernels) == 28
    assert parameters == pytest.approx(4.2e6, rel=0.01)  # Table 8 of the paper: 4.2 million
