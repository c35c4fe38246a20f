"""shrink_graph_def and `strip_pruning_vars --shrink`: fully masked output channels leave the
graph, the outputs stay within 1e-5.

Each chain is a small frozen graph with constant kernels whose `DEAD` output channels are all
zero, as a stripped graph of a filter-pruned model has them. The biases of dead channels are
chosen so that some hold zero after the ReLU (removable everywhere) and some a constant
(folded into a bias or re-created), which is what makes shrinking hard to get right.
"""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from examples.cifar10 import cifar10_pruning
from model_pruning import strip_pruning_vars
from model_pruning.fold import strip_pruning_vars_fn
from model_pruning.freeze import graph_def_from_checkpoint
from model_pruning.shrink import shrink_graph_def

DEAD = [1, 4, 6]  # of 8 channels
# Bias of each dead channel: 1 and 6 give relu 0, 4 gives the constant 0.3.
DEAD_BIASES = {1: -0.2, 4: 0.3, 6: -0.05}
ZERO_AFTER_RELU = [1, 6]
# The cifar10 example model with its filters and neurons pruned.
INPUT, OUTPUT = "images", "logits"
CIFAR10_FILTER_PRUNING = ("threshold_method=exact,do_not_prune=[softmax_linear],block_dims_map=["
                          "conv1/:-1x1,conv2/:-1x1,local3/:-1x1,local4/:-1x1]")


def kernel(shape, seed, dead=()):
    """A random kernel whose output channels `dead` are all zero (pruned filters)."""
    value = np.random.RandomState(seed).randn(*shape).astype(np.float32) * 0.3
    value[..., list(dead)] = 0.0
    return value


def bias(channels, seed, dead_biases=None):
    value = np.random.RandomState(seed).uniform(-0.5, 0.5, channels).astype(np.float32)
    for channel, dead_bias in (dead_biases or {}).items():
        value[channel] = dead_bias
    return value


def conv(x, channels, seed, size=3, padding="SAME", dead=()):
    return tf.nn.conv2d(x, kernel([size, size, x.shape[-1], channels], seed, dead), 1, padding)


def pruned_conv(x, seed=1):
    """conv (8 filters, DEAD ones masked) + bias: the layer the tests shrink."""
    return tf.nn.bias_add(conv(x, 8, seed, dead=DEAD), bias(8, seed, DEAD_BIASES))


def dense(x, units, seed, dead=()):
    return tf.matmul(x, kernel([x.shape[-1], units], seed, dead))


def frozen_graph(build, input_shape):
    """The GraphDef of `build(input)`, output node `output`."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, *input_shape], name="input")
        tf.identity(build(inputs), name="output")
    return graph.as_graph_def()


def run(graph_def, inputs, input_name="input", output_name="output"):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(output_name + ":0", {input_name + ":0": inputs})


def shrink_and_check(build, input_shape=(8, 8, 3), fed_shape=None):
    """Shrinks `build`'s graph, checks the outputs agree on inputs of `fed_shape` (default:
    `input_shape`), returns {layer name: LayerShrink}."""
    graph_def = frozen_graph(build, input_shape)
    shrunk, layers = shrink_graph_def(graph_def, ["output"])
    inputs = np.random.RandomState(0).rand(4, *(fed_shape or input_shape)).astype(np.float32)
    expected = run(graph_def, inputs)
    np.testing.assert_allclose(run(shrunk, inputs), expected, rtol=0, atol=1e-5)
    assert np.abs(expected).max() > 0.1  # the comparison is not between tiny numbers
    return {layer.name: layer for layer in layers}


def test_padded_conv_adds_what_removed_constant_channels_gave_it():
    layers = shrink_and_check(lambda x: conv(tf.nn.relu(pruned_conv(x)), 5, seed=2))
    assert layers["Conv2D"].shape_after == [3, 3, 3, 5]
    # Channel 4 holds relu(0.3) everywhere, which a padded conv sees only partly at the
    # borders: what it adds is a constant per output position, added after the conv.
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(DEAD), 5]
    assert "1 channel folded into a constant added after Conv2D_1" in layers["Conv2D"].note
    assert layers["Conv2D"].flops_after == 2 * 8 * 8 * 3 * 3 * 3 * 5


def test_padded_conv_of_unknown_size_gets_constant_channels_back_and_loses_zero_ones():
    layers = shrink_and_check(lambda x: conv(tf.nn.relu(pruned_conv(x)), 5, seed=2),
                              input_shape=(None, None, 3), fed_shape=(8, 8, 3))
    # The constant added after the conv would depend on the size: channel 4 is re-created.
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(ZERO_AFTER_RELU), 5]
    assert "1 channel re-created as constants before Conv2D_1" in layers["Conv2D"].note


@pytest.mark.parametrize("size, padding", [(3, "VALID"), (1, "SAME")])
def test_constant_channels_fold_into_the_next_bias(size, padding):
    layers = shrink_and_check(lambda x: tf.nn.bias_add(
        conv(tf.nn.relu(pruned_conv(x)), 5, seed=2, size=size, padding=padding),
        bias(5, seed=3)))
    assert layers["Conv2D_1"].shape_after == [size, size, 8 - len(DEAD), 5]
    assert "removed 3 of 8 input rows fed by Conv2D" in layers["Conv2D_1"].note


@pytest.mark.parametrize("stride", [1, 2])
def test_padded_conv_with_a_bias_gets_a_constant_per_output_position(stride):
    """Folding a constant channel into the next bias is exact only where the whole kernel
    window lies inside the input: a SAME-padded 3x3 conv sees the constant cut at the borders,
    so what it adds varies with the output position, bias or not."""
    layers = shrink_and_check(lambda x: tf.nn.bias_add(
        tf.nn.conv2d(tf.nn.relu(pruned_conv(x)), kernel([3, 3, 8, 5], seed=2), stride, "SAME"),
        bias(5, seed=3)))
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(DEAD), 5]
    assert "1 channel folded into a constant added after Conv2D_1" in layers["Conv2D"].note


def test_zero_pad_before_a_valid_conv_counts_as_its_padding():
    """conv2d_same in slim's ResNets: an explicit zero Pad, then a VALID strided conv."""
    layers = shrink_and_check(lambda x: tf.nn.conv2d(
        tf.pad(tf.nn.relu(pruned_conv(x)), [[0, 0], [1, 2], [2, 1], [0, 0]]),
        kernel([3, 3, 8, 5], seed=2), 2, "VALID"))
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(DEAD), 5]


def test_consumer_without_bias_gets_a_constant_added():
    layers = shrink_and_check(
        lambda x: conv(tf.nn.relu(pruned_conv(x)), 5, seed=2, padding="VALID"))
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(DEAD), 5]


def test_fc_chain_folds_constant_neurons_into_the_next_bias():
    def build(x):
        hidden = tf.nn.relu(dense(x, 8, seed=1, dead=DEAD) + bias(8, 1, DEAD_BIASES))
        hidden = tf.nn.relu6(dense(hidden, 6, seed=2, dead=[0, 5]) + bias(6, 2, {0: 7.0}))
        return dense(hidden, 3, seed=3) + bias(3, 3)

    layers = shrink_and_check(build, input_shape=(10,))
    assert [layer.shape_after for layer in layers.values()] == [[10, 5], [5, 4], [4, 3]]
    assert [layer.flops_after for layer in layers.values()] == [100, 40, 24]


def test_flatten_into_fc_removes_every_position_of_a_channel():
    def build(x):
        pooled = tf.nn.max_pool2d(tf.nn.relu(pruned_conv(x)), 2, 2, "SAME")
        return dense(tf.reshape(pooled, [-1, 4 * 4 * 8]), 6, seed=2) + bias(6, seed=3)

    layers = shrink_and_check(build)
    assert layers["MatMul"].shape_after == [4 * 4 * (8 - len(DEAD)), 6]
    assert "removed 48 of 128 input rows fed by Conv2D" in layers["MatMul"].note


def test_batch_norm_pooling_and_elementwise_constants_are_followed():
    def build(x):
        channels = 8
        rng = np.random.RandomState(5)
        normalized, _, _ = tf.compat.v1.nn.fused_batch_norm(
            conv(x, channels, seed=1, dead=DEAD),
            scale=rng.uniform(0.5, 2, channels).astype(np.float32),
            offset=np.float32([0.1, -0.3, 0.2, 0.0, 0.4, 0.1, 0.05, -0.1]),
            mean=rng.uniform(-0.2, 0.2, channels).astype(np.float32),
            variance=rng.uniform(0.5, 2, channels).astype(np.float32), is_training=False)
        net = tf.nn.relu(normalized)
        net = tf.nn.avg_pool2d(net, 3, 2, "SAME")
        net = tf.identity(net * rng.uniform(0.5, 2, channels).astype(np.float32) - 0.05)
        net = tf.nn.max_pool2d(tf.nn.relu6(net), 2, 1, "VALID")
        return tf.nn.bias_add(conv(net, 4, seed=2, padding="VALID"), bias(4, seed=3))

    layers = shrink_and_check(build)
    assert layers["Conv2D"].shape_after == [3, 3, 3, 5]
    assert layers["Conv2D_1"].shape_after == [3, 3, 5, 4]


def test_lrn_keeps_window_positions_of_removed_channels():
    """Dropping a zero channel before LRN would pull a farther channel into each window;
    shrink computes the same sums over the original positions."""
    live = [c for c in range(8) if c not in DEAD]

    def features(x):  # every dead channel is zero after the ReLU
        return tf.nn.relu(tf.nn.bias_add(conv(x, 8, seed=1, dead=DEAD),
                                         bias(8, 1, {c: -1.0 for c in DEAD})))

    def lrn(x):
        return tf.nn.lrn(x, depth_radius=2, bias=1.0, alpha=0.5, beta=0.75)

    layers = shrink_and_check(lambda x: conv(lrn(features(x)), 2, seed=2))
    assert layers["Conv2D"].shape_after == [3, 3, 3, 5]
    assert layers["Conv2D_1"].shape_after == [3, 3, 5, 2]
    shrunk = shrink_graph_def(frozen_graph(lambda x: conv(lrn(features(x)), 2, seed=2),
                                           (8, 8, 3)), "output").graph_def
    assert "LRN" not in {node.op for node in shrunk.node}
    # The naive shrink would really change the outputs:
    inputs = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    naive = run(frozen_graph(lambda x: lrn(tf.gather(features(x), live, axis=3)), (8, 8, 3)),
                inputs)
    exact = run(frozen_graph(lambda x: tf.gather(lrn(features(x)), live, axis=3), (8, 8, 3)),
                inputs)
    assert np.abs(naive - exact).max() > 1e-3


def test_lrn_re_creates_constant_channels_and_drops_zero_ones():
    """Twice in a row: the second LRN reads the rewritten first one."""
    lrn = dict(depth_radius=2, bias=1.0, alpha=0.5, beta=0.75)
    layers = shrink_and_check(lambda x: tf.nn.bias_add(
        conv(tf.nn.lrn(tf.nn.lrn(tf.nn.relu(pruned_conv(x)), **lrn), **lrn), 5, seed=2),
        bias(5, seed=3)))
    assert layers["Conv2D_1"].shape_after == [3, 3, 8 - len(ZERO_AFTER_RELU), 5]
    assert "1 channel re-created as constants at LRN (LRN" in layers["Conv2D"].note


@pytest.mark.parametrize("build, reason", [
    (lambda x: conv(tf.nn.softplus(pruned_conv(x)), 4, seed=2),
     "Softplus (Softplus) is not an op shrink understands"),
    (lambda x: tf.concat([tf.nn.relu(pruned_conv(x)), x], axis=3),
     "its channels go through concat (ConcatV2): output is a graph output"),
    (lambda x: tf.nn.relu(tf.nn.bias_add(conv(x, 8, seed=1, dead=range(8)), bias(8, 1))),
     "every output channel is masked"),
], ids=["unknown op", "concat into an output", "all masked"])
def test_unknown_patterns_keep_the_layer_dense(build, reason):
    layers = shrink_and_check(build)
    assert layers["Conv2D"].shape_after == layers["Conv2D"].shape_before
    assert "kept dense" in layers["Conv2D"].note and reason in layers["Conv2D"].note


def test_fan_out_shrinks_every_consumer():
    layers = shrink_and_check(lambda x: tf.add_n(
        [conv(net, 4, seed, size=size) for net in [tf.nn.relu(pruned_conv(x))]
         for seed, size in ((2, 1), (3, 3))]))
    assert layers["Conv2D"].shape_after == [3, 3, 3, 5]
    assert layers["Conv2D_1"].shape_after == [1, 1, 8 - len(DEAD), 4]
    assert layers["Conv2D_2"].shape_after == [3, 3, 8 - len(DEAD), 4]


def test_a_layer_whose_output_is_a_graph_output_stays_dense():
    result = shrink_graph_def(frozen_graph(pruned_conv, (8, 8, 3)), ["BiasAdd"])
    assert result.layers[0].shape_after == [3, 3, 3, 8]
    assert "kept dense (3 of 8 output channels are masked): BiasAdd is a graph output" in \
        result.layers[0].note


def test_shrink_needs_a_stripped_graph_and_existing_outputs():
    graph = tf.Graph()
    with graph.as_default():
        weights = tf.constant(kernel([4, 4], seed=0))
        with tf.compat.v1.variable_scope("fc"):
            mask = tf.constant(np.ones([4, 4], np.float32))
            masked = tf.multiply(mask, weights, name="weights/masked_weight")
        tf.identity(masked, name="output")
    with pytest.raises(ValueError, match="still computes mask \\* weight: strip it first"):
        shrink_graph_def(graph.as_graph_def(), ["output"])
    with pytest.raises(ValueError, match="Output node 'logits' is not in the graph"):
        shrink_graph_def(frozen_graph(pruned_conv, (8, 8, 3)), ["logits"])


def randomize_biases(graph_def, seed):
    """A copy of `graph_def` whose `.../biases` constants are uniform in [-0.3, 0.3]: pruned
    channels then hold constants of both signs, as after training."""
    rng = np.random.RandomState(seed)
    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    for node in result.node:
        if node.op == "Const" and node.name.endswith("/biases"):
            shape = tf.make_ndarray(node.attr["value"].tensor).shape
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(
                rng.uniform(-0.3, 0.3, shape).astype(np.float32)))
    return result


def prune_half(build, hparams, finish):
    """Builds `build()` in a new graph, masks half of its weights with the pruning `hparams`
    (a spec string) and returns `finish(session)`."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        build()
        global_step = tf.compat.v1.train.get_or_create_global_step()
        update = model_pruning.Pruning(model_pruning.get_pruning_hparams().parse(hparams),
                                       global_step=global_step,
                                       sparsity=tf.constant(0.5)).mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            return finish(session)


def cifar10_model():
    images = tf.compat.v1.placeholder(tf.float32, [None, 24, 24, 3], name=INPUT)
    tf.identity(cifar10_pruning.inference(images), name=OUTPUT)


@pytest.fixture(scope="module")
def cifar10_graphs():
    """(frozen, stripped) cifar10 example model, half of the filters of conv1 and conv2 and
    of the neurons of local3 and local4 masked."""
    frozen = prune_half(cifar10_model, CIFAR10_FILTER_PRUNING,
                        lambda session: tf.compat.v1.graph_util.convert_variables_to_constants(
                            session, session.graph.as_graph_def(), [OUTPUT]))
    return frozen, strip_pruning_vars_fn(frozen, [OUTPUT])


def test_cifar10_with_half_the_filters_pruned_shrinks_to_half_the_channels(cifar10_graphs):
    frozen, stripped = cifar10_graphs
    shrunk, layers = shrink_graph_def(stripped, [OUTPUT])
    assert {layer.name: layer.shape_after for layer in layers} == {
        "conv1/Conv2D": [5, 5, 3, 32],
        "conv2/Conv2D": [5, 5, 32, 32],  # conv1's biases are 0: its pruned channels are zero
        # conv2's biases are 0.1: after LRN its pruned channels depend on the input.
        "local3/MatMul": [6 * 6 * 64, 192],
        "local4/MatMul": [192, 96],
        "softmax_linear/MatMul": [96, 10],
    }
    images = np.random.RandomState(0).rand(16, 24, 24, 3).astype(np.float32)
    masked_model = run(frozen, images, INPUT, OUTPUT)
    np.testing.assert_allclose(run(shrunk, images, INPUT, OUTPUT), masked_model, atol=1e-5)
    assert sum(layer.flops_before for layer in layers) > 3 * sum(
        layer.flops_after for layer in layers)


def test_cifar10_with_trained_like_biases_keeps_its_outputs(cifar10_graphs):
    _, stripped = cifar10_graphs
    stripped = randomize_biases(stripped, seed=1)
    shrunk, layers = shrink_graph_def(stripped, [OUTPUT])
    assert [layer.shape_after[-1] for layer in layers] == [32, 32, 192, 96, 10]
    assert all(after[-2] < before[-2] for before, after in
               ((layer.shape_before, layer.shape_after) for layer in layers[1:]))
    images = np.random.RandomState(0).rand(16, 24, 24, 3).astype(np.float32)
    np.testing.assert_allclose(run(shrunk, images, INPUT, OUTPUT),
                               run(stripped, images, INPUT, OUTPUT), atol=1e-5)


def conv_fc_model():
    """conv -> fc -> logits, made of masked layers."""
    inputs = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
    net = model_pruning.masked_conv2d(inputs, 8, [3, 3], scope="conv")
    net = model_pruning.masked_fully_connected(tf.reshape(net, [-1, 8 * 8 * 8]), 6, scope="fc")
    net = model_pruning.masked_fully_connected(net, 2, activation_fn=None, scope="logits")
    tf.identity(net, name="output")


def save_filter_pruned_checkpoint(directory):
    """conv_fc_model with half of the conv filters and fc neurons masked, saved."""
    prune_half(conv_fc_model,
               "threshold_method=exact,block_height=-1,block_width=1,do_not_prune=[logits]",
               lambda session: tf.compat.v1.train.Saver().save(
                   session, os.path.join(directory, "model.ckpt")))


def test_cli_shrink_reports_shapes_and_flops_and_writes_the_shrunk_graph(tmp_path, capsys):
    save_filter_pruned_checkpoint(str(tmp_path / "train"))
    assert strip_pruning_vars.main([f"--checkpoint_dir={tmp_path / 'train'}",
                                    "--output_node_names=output", f"--output_dir={tmp_path}",
                                    "--shrink"]) == 0
    out = capsys.readouterr().out
    for line in [r"conv/convolution +3x3x3x8 +3x3x3x4 +27,648 +13,824 +removed 4 of 8 output "
                 r"channels",
                 r"fc/MatMul +512x6 +256x3 +6,144 +1,536 +removed 3 of 6 output channels; "
                 r"removed 256 of 512 input rows fed by conv/convolution",
                 r"logits/MatMul +6x2 +3x2 +24 +12 +removed 3 of 6 input rows fed by fc/MatMul; "
                 r"no output channel is fully masked",
                 r"FLOPs per example of these layers: 33,816 before, 15,372 after \(2.20x fewer\)",
                 r"shrunk graph: [\d,]+ bytes, [\d,]+ bytes gzip-compressed"]:
        assert re.search(f"^{line}$", out, re.M), line
    written = tf.compat.v1.GraphDef.FromString((tmp_path / "pruning_stripped.pb").read_bytes())
    stripped = strip_pruning_vars_fn(graph_def_from_checkpoint(str(tmp_path / "train"),
                                                               ["output"]), ["output"])
    inputs = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    np.testing.assert_allclose(run(written, inputs), run(stripped, inputs), atol=1e-5)


def test_cli_channel_multiple_keeps_a_multiple_of_channels(tmp_path, capsys):
    save_filter_pruned_checkpoint(str(tmp_path / "train"))
    assert strip_pruning_vars.main([f"--checkpoint_dir={tmp_path / 'train'}",
                                    "--output_node_names=output", f"--output_dir={tmp_path}",
                                    "--shrink", "--channel_multiple=3"]) == 0
    out = capsys.readouterr().out
    # 4 of the 8 conv filters are removable; a multiple of 3 keeps 6, the fc's 3 of 6 stay 3.
    assert re.search(r"^conv/convolution +3x3x3x8 +3x3x3x6 ", out, re.M), out
    assert re.search(r"^fc/MatMul +512x6 +384x3 ", out, re.M), out


@pytest.mark.parametrize("args, message", [
    (["--channel_multiple=8"], "--channel_multiple needs --shrink"),
    (["--shrink", "--channel_multiple=0"],
     "--channel_multiple must be a positive number of channels, got 0"),
])
def test_cli_channel_multiple_flag_errors(args, message, capsys):
    with pytest.raises(SystemExit):
        strip_pruning_vars.main(["--checkpoint_dir=x", "--output_node_names=output", *args])
    assert message in capsys.readouterr().err
