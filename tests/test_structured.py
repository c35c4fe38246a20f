"""Structured masks: -1x1 blocks prune whole conv filters and whole fc neurons, checked
against numpy for every block pooling function and both threshold methods.

A conv kernel [kh, kw, cin, cout] is pruned as the matrix [kh * kw * cin, cout], so a -1x1
block is one output filter; a fc kernel [in, out] gives one output neuron per block.
"""

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from tests.numpy_reference import numpy_exact_keep, numpy_histogram_threshold

POOLINGS = ["AVG", "MAX", "L2"]
METHODS = ["exact", "histogram"]
SPARSITY = 0.5


def channel_weights(rows, channels, seed):
    """Weights whose per-channel mean, max and root mean square rank the channels differently:
    each channel mixes a spread of ordinary values with one spike of its own size."""
    rng = np.random.RandomState(seed)
    weights = rng.randn(rows, channels) * rng.uniform(0.2, 1.0, channels)
    weights[rng.randint(rows, size=channels), np.arange(channels)] = rng.uniform(0.5, 8.0, channels)
    return weights.astype(np.float32)


def numpy_pool(magnitudes, pooling):
    """One score per column of a [rows, channels] matrix."""
    if pooling == "AVG":
        return magnitudes.mean(axis=0)
    if pooling == "MAX":
        return magnitudes.max(axis=0)
    return np.sqrt(np.square(magnitudes.astype(np.float64)).mean(axis=0))


def numpy_channel_keep(weights, pooling, method, nbins=255):
    """The 0/1 mask numpy expects: whole output channels (last axis) kept or pruned."""
    channels = weights.shape[-1]
    scores = numpy_pool(np.abs(weights).reshape(-1, channels), pooling)
    if method == "exact":
        keep = numpy_exact_keep(scores, SPARSITY)
    else:
        keep = scores > numpy_histogram_threshold(scores, SPARSITY, nbins)
    return np.broadcast_to(keep, weights.shape).astype(np.float32)


def prune_once(spec_text, build):
    """Builds `build()` (which masks its weights), runs one mask update at SPARSITY and returns
    {weight name: mask}."""
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        build()
        hparams = model_pruning.get_pruning_hparams().parse(spec_text + ",threshold_decay=0.0")
        update = model_pruning.Pruning(hparams, sparsity=tf.constant(SPARSITY)).mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            masks = session.run(model_pruning.get_masks())
        return {w.op.name: m for w, m in zip(model_pruning.get_weights(), masks)}


def masked_conv(name, kernel):
    images = tf.ones([1, 6, 6, kernel.shape[2]])
    with tf.compat.v1.variable_scope(name) as scope:
        weights = tf.compat.v1.get_variable("weights", initializer=kernel)
        tf.nn.conv2d(images, model_pruning.apply_mask(weights, scope), 1, "SAME")


def masked_fc(name, kernel):
    inputs = tf.ones([1, kernel.shape[0]])
    with tf.compat.v1.variable_scope(name) as scope:
        weights = tf.compat.v1.get_variable("weights", initializer=kernel)
        tf.matmul(inputs, model_pruning.apply_mask(weights, scope))


CONV_KERNEL = channel_weights(3 * 3 * 4, 16, seed=1).reshape(3, 3, 4, 16)
FC_KERNEL = channel_weights(12, 20, seed=2)


@pytest.mark.parametrize("kernel", [CONV_KERNEL, FC_KERNEL], ids=["conv", "fc"])
def test_the_weights_rank_channels_differently_per_pooling(kernel):
    """Otherwise a test could pass with the wrong pooling function."""
    masks = {numpy_channel_keep(kernel, pooling, "exact").tobytes() for pooling in POOLINGS}
    assert len(masks) == len(POOLINGS)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_whole_filter_masks_of_a_conv_kernel(pooling, method):
    masks = prune_once(
        f"block_height=-1,block_width=1,block_pooling_function={pooling},"
        f"threshold_method={method}",
        lambda: masked_conv("conv1", CONV_KERNEL))
    mask = masks["conv1/weights"]
    np.testing.assert_array_equal(mask, numpy_channel_keep(CONV_KERNEL, pooling, method))
    kept_per_filter = mask.reshape(-1, 16).sum(axis=0)
    assert set(kept_per_filter) <= {0, 3 * 3 * 4}  # every filter whole: all kept or all pruned


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_whole_neuron_masks_of_a_fc_kernel(pooling, method):
    masks = prune_once(
        f"block_dims_map=[local3:-1x1],block_pooling_function={pooling},"
        f"threshold_method={method}",
        lambda: masked_fc("local3", FC_KERNEL))
    mask = masks["local3/weights"]
    np.testing.assert_array_equal(mask, numpy_channel_keep(FC_KERNEL, pooling, method))
    assert set(mask.sum(axis=0)) <= {0, 12}


@pytest.mark.parametrize("pooling", POOLINGS)
def test_block_dims_map_prunes_filters_of_the_named_layer_only(pooling):
    """`block_dims_map=[conv2:-1x1]` reaches the 4-D kernel of conv2 and leaves conv1
    element-wise."""
    conv1 = channel_weights(3 * 3 * 4, 16, seed=3).reshape(3, 3, 4, 16)

    def build():
        masked_conv("conv1", conv1)
        masked_conv("conv2", CONV_KERNEL)

    masks = prune_once(f"block_dims_map=[conv2:-1x1],block_pooling_function={pooling},"
                       "threshold_method=exact", build)
    np.testing.assert_array_equal(masks["conv2/weights"],
                                  numpy_channel_keep(CONV_KERNEL, pooling, "exact"))
    np.testing.assert_array_equal(masks["conv1/weights"],
                                  numpy_exact_keep(np.abs(conv1), SPARSITY))
