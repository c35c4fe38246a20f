"""shrink_graph_def across channel groups: slim's ResNets, Inception-v1 and MobileNet-v1, pruned
with `channel_groups=true`, shrink to fewer channels and keep the masked model's outputs.

Each net is built in inference mode with random weights and random batch-norm statistics,
offsets and scales, so that removed channels hold constants other than zero after batch norm
(the hard case), then half of each group's channels are masked, the graph frozen, stripped
and shrunk.
"""

import functools
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import inception, resnet_v1, resnet_v2

import model_pruning
from bench import mobilenet_v1
from model_pruning.fold import strip_pruning_vars_fn
from model_pruning.shrink import shrink_graph_def

INPUT, OUTPUT = "images", "output"


def resnet_v1_50(images):
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        return resnet_v1.resnet_v1_50(images, num_classes=10, is_training=False)[0]


def resnet_v2_50(images):
    with slim.arg_scope(resnet_v2.resnet_arg_scope()):
        return resnet_v2.resnet_v2_50(images, num_classes=10, is_training=False)[0]


def inception_v1(images):
    with slim.arg_scope(inception.inception_v1_arg_scope()):
        return inception.inception_v1(images, num_classes=10, is_training=False)[0]


def mobilenet(images):
    with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
        return mobilenet_v1.mobilenet_v1(images, num_classes=10, is_training=False)[0]


def randomize_batch_norms(rng):
    """An op giving every batch norm random statistics, offset and scale."""
    ranges = {"moving_mean": (-0.5, 0.5), "moving_variance": (0.5, 2.0), "beta": (-0.5, 0.5),
              "gamma": (0.5, 1.5)}
    return tf.group(*[
        tf.compat.v1.assign(variable, rng.uniform(*ranges[kind], variable.shape).astype(
            np.float32))
        for variable in tf.compat.v1.global_variables()
        for kind in [variable.op.name.split("/")[-1]]
        if kind in ranges and "BatchNorm" in variable.op.name])


def session_config():
    """Grappler takes seconds over these graphs (and their large constants once frozen); it
    changes no value."""
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


@functools.lru_cache(maxsize=None)
def pruned_graphs(net, side, batch):
    """(stripped GraphDef, input shape) of `net` with half of every group's channels masked."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        images = tf.compat.v1.placeholder(tf.float32, [batch, side, side, 3], name=INPUT)
        with model_pruning.masking_scope():
            logits = net(images)
        tf.identity(tf.reshape(logits, [batch, -1]), name=OUTPUT)
        tf.compat.v1.train.get_or_create_global_step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the logits stay dense
            update = model_pruning.Pruning("channel_groups=true",
                                           sparsity=tf.constant(0.5)).mask_update_op()
        randomize = randomize_batch_norms(np.random.RandomState(1))
        with tf.compat.v1.Session(config=session_config()) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(randomize)
            session.run(update)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [OUTPUT])
    return strip_pruning_vars_fn(frozen, [OUTPUT]), [batch, side, side, 3]


def run(graph_def, inputs):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph, config=session_config()) as session:
        return session.run(OUTPUT + ":0", {INPUT + ":0": inputs})


def shrink_and_compare(net, side, batch=2, **options):
    """Shrinks the pruned `net`; checks the outputs; returns {layer name: LayerShrink}."""
    stripped, shape = pruned_graphs(net, side, batch)
    shrunk, layers = shrink_graph_def(stripped, [OUTPUT], **options)
    inputs = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    expected = run(stripped, inputs)
    np.testing.assert_allclose(run(shrunk, inputs), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
    assert np.abs(expected).max() > 1e-3
    return {layer.name: layer for layer in layers}


# net name: (net, input side, batch)
NETS = {"resnet_v1_50": (resnet_v1_50, 64, 2), "resnet_v2_50": (resnet_v2_50, 64, 2),
        "inception_v1": (inception_v1, 224, 1), "mobilenet_v1": (mobilenet, 64, 2)}


@functools.lru_cache(maxsize=None)
def shrunk_net(name):
    """{layer name: LayerShrink} of the net `name` of NETS, its outputs checked."""
    return shrink_and_compare(*NETS[name])


def halved(shape):
    """A kernel shape with half the channels of its group, and half the input rows: all but
    the image's 3 channels, the logits' 10 and a depthwise kernel's multiplier 1."""
    *window, rows, columns = shape
    return window + [rows if rows == 3 else rows // 2,
                     columns if columns in (1, 10) else columns // 2]


def layer_named(layers, scope):
    """The one reported layer whose name is `scope` followed by its op's name."""
    [found] = [layer for name, layer in layers.items()
               if name.rsplit("/", 1)[0].endswith("/" + scope)]
    return found


@pytest.mark.parametrize("name", list(NETS))
def test_every_group_of_a_pruned_net_shrinks_and_the_outputs_stay(name):
    layers = shrunk_net(name)
    for layer in layers.values():
        assert layer.shape_after == halved(layer.shape_before), layer
    flops_before = sum(layer.flops_before for layer in layers.values())
    flops_after = sum(layer.flops_after for layer in layers.values())
    assert flops_after < 0.3 * flops_before


@pytest.mark.parametrize("name, scope, before", [
    ("resnet_v1_50", "block1/unit_1/bottleneck_v1/shortcut", [1, 1, 64, 256]),
    ("resnet_v1_50", "block1/unit_3/bottleneck_v1/conv3", [1, 1, 64, 256]),
    ("resnet_v1_50", "block1/unit_3/bottleneck_v1/conv2", [3, 3, 64, 64]),  # Pad, stride 2
    ("resnet_v2_50", "block2/unit_4/bottleneck_v2/conv3", [1, 1, 128, 512]),
    ("inception_v1", "Mixed_4b/Branch_3/Conv2d_0b_1x1", [1, 1, 480, 64]),  # a concat's slice
    ("mobilenet_v1", "Conv2d_5_depthwise", [3, 3, 256, 1]),
])
def test_layers_of_each_kind_of_group_are_in_the_report(name, scope, before):
    layer = layer_named(shrunk_net(name), scope)
    assert (layer.shape_before, layer.shape_after) == (before, halved(before))


def test_channel_multiple_keeps_a_multiple_of_channels_in_each_group():
    layers = shrink_and_compare(mobilenet, 64, 2, channel_multiple=24)
    assert layer_named(layers, "Conv2d_1_depthwise").shape_after == [3, 3, 24, 1]
    assert layer_named(layers, "Conv2d_1_pointwise").shape_after == [1, 1, 24, 48]
    assert layer_named(layers, "Conv2d_1_pointwise").note.startswith(
        "removed 16 of 64 output channels (a group of 2 kernels); 16 more kept for a multiple "
        "of 24;")
    for layer in layers.values():
        channels = layer.shape_after[-1] if "depthwise" not in layer.name else \
            layer.shape_after[2]
        assert channels % 24 == 0 or channels == 10, layer


@pytest.mark.parametrize("multiple", [0, 2.0, True])
def test_channel_multiple_must_be_a_positive_int(multiple):
    stripped, _ = pruned_graphs(mobilenet, 64, 2)
    with pytest.raises(ValueError, match="channel_multiple must be a positive int, got"):
        shrink_graph_def(stripped, [OUTPUT], channel_multiple=multiple)


def constant(value):
    return tf.constant(np.float32(value))


def test_a_residual_add_of_a_kernel_outside_the_group_keeps_it_dense():
    """Without channel_groups the other operand of the add still holds the channels."""
    rng = np.random.RandomState(0)
    pruned = rng.randn(1, 1, 3, 4)
    pruned[..., :2] = 0.0
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 3], name=INPUT)
        net = tf.nn.conv2d(inputs, constant(pruned), 1, "SAME", name="pruned") + \
            tf.nn.conv2d(inputs, constant(rng.randn(1, 1, 3, 4)), 1, "SAME", name="dense")
        tf.nn.conv2d(net, constant(rng.randn(1, 1, 4, 2)), 1, "SAME", name=OUTPUT)
    layers = {layer.name: layer for layer in shrink_graph_def(graph.as_graph_def(),
                                                              [OUTPUT]).layers}
    assert layers["pruned"].shape_after == [1, 1, 3, 4]
    assert "kept dense (2 of 4 output channels are masked): add (AddV2) adds dense, which" in \
        layers["pruned"].note


@pytest.mark.parametrize("padding, zero_taps, rows_after", [
    ("VALID", False, 2),  # constant * sum of the taps, folded into the next bias
    ("SAME", True, 2),  # the removed channels' taps are masked: they give 0
    ("SAME", False, 3),  # the padding cuts the constant at the borders: channel 1 re-created
])
def test_depthwise_conv_after_a_pruned_conv(padding, zero_taps, rows_after):
    """Channels 1 and 3 of 4 are pruned; after the bias and ReLU channel 1 holds 0.4 and
    channel 3 holds 0."""
    rng = np.random.RandomState(0)
    pruned = rng.randn(3, 3, 3, 4)
    pruned[..., [1, 3]] = 0.0
    taps = rng.randn(3, 3, 4, 1)
    if zero_taps:
        taps[:, :, [1, 3]] = 0.0
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name=INPUT)
        net = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(inputs, constant(pruned), 1, "SAME"),
                                        constant([0.1, 0.4, -0.2, -0.3])))
        net = tf.nn.depthwise_conv2d(net, constant(taps), [1, 1, 1, 1], padding)
        net = tf.nn.conv2d(net, constant(rng.randn(1, 1, 4, 2)), 1, "VALID")
        tf.nn.bias_add(net, constant([0.5, -0.5]), name=OUTPUT)
    graph_def = graph.as_graph_def()
    shrunk, layers = shrink_graph_def(graph_def, [OUTPUT])
    inputs = np.random.RandomState(1).rand(2, 8, 8, 3).astype(np.float32)
    np.testing.assert_allclose(run(shrunk, inputs), run(graph_def, inputs), rtol=1e-5,
                               atol=1e-5)
    assert [layer.shape_after for layer in layers] == [
        [3, 3, 3, 2], [3, 3, rows_after, 1], [1, 1, rows_after, 2]]
