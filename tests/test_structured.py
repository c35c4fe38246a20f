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


# Taylor criterion. Output channel 3 has by far the largest weights, but the model multiplies
# it by zero before the loss: it cannot change the loss, so its Taylor score is 0.
DEAD_CHANNEL = 3
CHANNEL_GAIN = np.float32([1.0, 1.0, 1.0, 0.0])


def taylor_kernel(shape, seed):
    """Channels 0-2 hold weights within +-1.1, channel 3 weights of magnitude 3 to 5."""
    rng = np.random.RandomState(seed)
    kernel = rng.uniform(-1.0, 1.0, shape) * [0.5, 0.8, 1.1, 1.0]
    kernel[..., DEAD_CHANNEL] = rng.choice([-1, 1], shape[:-1]) * rng.uniform(3, 5, shape[:-1])
    return kernel.astype(np.float32)


TAYLOR_KERNELS = {"conv": taylor_kernel([3, 3, 2, 4], seed=4), "fc": taylor_kernel([6, 4], seed=5)}
TAYLOR_INPUTS = {"conv": [8, 5, 5, 2], "fc": [8, 6]}


def taylor_model(kind, spec_text):
    """A masked conv or fc layer `layer1` whose channel 3 is multiplied by zero before a
    squared-error loss. Returns (inputs, pre-bias output z, targets, loss, pruning)."""
    tf.compat.v1.train.get_or_create_global_step()
    inputs = tf.compat.v1.placeholder(tf.float32, TAYLOR_INPUTS[kind])
    with tf.compat.v1.variable_scope("layer1") as scope:
        weights = tf.compat.v1.get_variable("weights", initializer=TAYLOR_KERNELS[kind])
        masked = model_pruning.apply_mask(weights, scope)
        z = (tf.nn.conv2d(inputs, masked, 1, "SAME") if kind == "conv"
             else tf.matmul(inputs, masked))
    targets = tf.compat.v1.placeholder(tf.float32, z.get_shape())
    loss = tf.reduce_mean(tf.square(tf.nn.relu(z + 0.1) * CHANNEL_GAIN - targets))
    hparams = model_pruning.get_pruning_hparams().parse(spec_text + ",threshold_method=exact")
    return inputs, z, targets, loss, model_pruning.Pruning(hparams, sparsity=tf.constant(0.25))


def numpy_taylor_score(z, targets):
    """|mean over batch and positions of z * dLoss/dz| for the loss of `taylor_model`."""
    active = (z + 0.1 > 0) * CHANNEL_GAIN
    gradient = 2.0 * (np.maximum(z + 0.1, 0) * CHANNEL_GAIN - targets) * active / z.size
    return np.abs((z * gradient).reshape(-1, z.shape[-1]).mean(axis=0))


def batches(kind, count):
    rng = np.random.RandomState(6)
    out_shape = TAYLOR_INPUTS[kind][:-1] + [4]
    return [(rng.randn(*TAYLOR_INPUTS[kind]).astype(np.float32),
             rng.randn(*out_shape).astype(np.float32)) for _ in range(count)]


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_taylor_score_is_a_moving_average_of_numpy_scores(kind):
    with tf.Graph().as_default():
        inputs, z, targets, loss, pruning = taylor_model(kind, "criterion=taylor,taylor_decay=0.75")
        update = pruning.add_taylor_scores(loss)
        score = tf.compat.v1.global_variables("layer1/taylor_score")
        assert [v.op.name for v in score] == ["layer1/taylor_score"]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            expected = np.zeros(4)
            for batch_inputs, batch_targets in batches(kind, 3):
                feeds = {inputs: batch_inputs, targets: batch_targets}
                z_value = session.run(z, feeds)
                session.run(update, feeds)
                expected = 0.75 * expected + 0.25 * numpy_taylor_score(z_value, batch_targets)
                np.testing.assert_allclose(session.run(score[0]), expected, rtol=1e-5)
    assert expected[DEAD_CHANNEL] == 0 and np.all(expected[:DEAD_CHANNEL] > 0)


def masks_after_scoring(kind, spec_text, with_scores=True):
    """The mask of layer1 after three scored batches and one mask update at sparsity 0.25."""
    with tf.Graph().as_default():
        inputs, _, targets, loss, pruning = taylor_model(kind, spec_text)
        score_update = pruning.add_taylor_scores(loss) if with_scores else tf.no_op()
        mask_update = pruning.conditional_mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for batch_inputs, batch_targets in batches(kind, 3):
                session.run(score_update, {inputs: batch_inputs, targets: batch_targets})
            session.run(tf.compat.v1.train.get_global_step().assign(10))
            session.run(mask_update)
            return session.run(model_pruning.get_masks()[0])


def pruned_channels(mask):
    channels = mask.reshape(-1, mask.shape[-1])
    assert set(channels.sum(axis=0)) <= {0, channels.shape[0]}  # whole channels only
    return np.flatnonzero(channels.sum(axis=0) == 0).tolist()


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_taylor_prunes_the_channel_the_loss_ignores_and_magnitude_keeps_it(kind):
    kernel = TAYLOR_KERNELS[kind].reshape(-1, 4)
    assert np.argmax(np.abs(kernel).mean(axis=0)) == DEAD_CHANNEL
    assert pruned_channels(masks_after_scoring(kind, "criterion=taylor")) == [DEAD_CHANNEL]
    by_norm = masks_after_scoring(kind, "block_height=-1,block_width=1", with_scores=False)
    assert pruned_channels(by_norm) == [int(np.argmin(np.abs(kernel).mean(axis=0)))]
    elementwise = masks_after_scoring(kind, "criterion=magnitude", with_scores=False)
    assert np.all(elementwise[..., DEAD_CHANNEL] == 1)


def test_criterion_map_selects_taylor_per_layer():
    with tf.Graph().as_default():
        _, _, _, loss, pruning = taylor_model("conv", "criterion_map=[layer1:taylor]")
        with tf.compat.v1.variable_scope("layer2") as scope:
            model_pruning.apply_mask(tf.compat.v1.get_variable("weights", [3, 3]), scope)
        pruning.add_taylor_scores(loss)
        assert [v.op.name for v in tf.compat.v1.global_variables() if "taylor" in v.op.name] \
            == ["layer1/taylor_score"]
        assert pruning._spec.criterion("layer2/weights") == "magnitude"


@pytest.mark.parametrize("spec_text, message", [
    ("criterion=l1", "criterion must be one of magnitude, taylor, got 'l1'"),
    ("criterion_map=[conv1:l1]", "criterion_map entry 'conv1:l1': criterion must be one of"),
    ("criterion_map=[taylor]", "criterion_map entry 'taylor' must look like <regex>:"),
    ("taylor_decay=1.0", "taylor_decay must be in [0, 1), got 1.0"),
])
def test_invalid_criterion_hparams_fail_at_construction(spec_text, message):
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        with pytest.raises(ValueError) as error:
            model_pruning.Pruning(spec_text)
        assert message in str(error.value)


def test_taylor_without_scores_fails_when_building_the_update():
    with tf.Graph().as_default():
        _, _, _, _, pruning = taylor_model("conv", "criterion=taylor")
        with pytest.raises(ValueError, match="layer1/weights uses the taylor criterion: call "
                                             "Pruning.add_taylor_scores"):
            pruning.mask_update_op()


def test_add_taylor_scores_without_taylor_weights_fails():
    with tf.Graph().as_default():
        _, _, _, loss, pruning = taylor_model("conv", "criterion=magnitude")
        with pytest.raises(ValueError, match="No masked weight uses the taylor criterion"):
            pruning.add_taylor_scores(loss)


def test_taylor_needs_the_weight_to_be_a_conv_or_matmul_kernel():
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.variable_scope("gate") as scope:
            masked = model_pruning.apply_mask(tf.compat.v1.get_variable("weights", [4, 4]), scope)
        loss = tf.reduce_sum(tf.sigmoid(masked))
        pruning = model_pruning.Pruning("criterion=taylor")
        with pytest.raises(ValueError, match=r"gate/weights/masked_weight to be the kernel of "
                                             r"exactly one Conv2D.*consumers are: "
                                             r"Sigmoid \(Sigmoid\)"):
            pruning.add_taylor_scores(loss)
