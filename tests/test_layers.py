"""Masked slim layers and layer classes: names, collections, arg_scope, numerics, training."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import model_pruning
from model_pruning import compat
from model_pruning.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv3D,
    MaskedFullyConnected,
    masked_conv2d,
    masked_convolution,
    masked_fully_connected,
)

GraphKeys = tf.compat.v1.GraphKeys


@pytest.fixture
def graph():
    with tf.Graph().as_default() as g:
        yield g


def names(variables):
    return [v.name.split(":")[0] for v in variables]


def shapes(tensors):
    return [t.get_shape().as_list() for t in tensors]


def run(fetches, assignments=()):
    """Initialises all variables, applies `(variable, value)` assignments and runs `fetches`."""
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        for variable, value in assignments:
            variable.load(value, session)
        return session.run(fetches)


# Reference 9.3: rank checks, and mask counts and shapes of single and stacked layers.

@pytest.mark.parametrize("layer, shape, allowed", [
    (lambda x: masked_conv2d(x, 32, 3), (7, 9, 3), "rank 4"),
    (lambda x: masked_conv2d(x, 32, 3), (8, 8, 7, 9, 3), "rank 4"),
    (lambda x: masked_convolution(x, 32, 3), (7, 9), "rank 3 or 4 or 5"),
    (lambda x: masked_convolution(x, 32, 3), (2, 2, 2, 2, 2, 3), "rank 3 or 4 or 5"),
    (lambda x: masked_fully_connected(x, 32), (8,), "rank 2 or more"),
], ids=["conv2d_rank3", "conv2d_rank5", "convolution_rank2", "convolution_rank6",
        "fully_connected_rank1"])
def test_invalid_rank_is_a_value_error_naming_the_allowed_ranks(graph, layer, shape, allowed):
    with pytest.raises(ValueError, match=allowed):
        layer(tf.ones(shape))


@pytest.mark.parametrize("shape, data_format, allowed", [
    ((2, 5, 5, 3), "NWC", "'NHWC' or 'NCHW'"),
    ((2, 5, 3), "NHWC", "'NWC' or 'NCW'"),
    ((2, 5, 5, 3), "NHCW", "'NHWC' or 'NCHW'"),
    ((2, 4, 4, 4, 3), "NCHW", "'NDHWC' or 'NCDHW'"),
])
def test_invalid_data_format_is_a_value_error_naming_the_allowed_formats(
        graph, shape, data_format, allowed):
    with pytest.raises(ValueError, match=allowed):
        masked_convolution(tf.ones(shape), 4, 3, data_format=data_format)


def test_single_conv_layer_adds_one_mask(graph):
    masked_conv2d(tf.ones((8, 7, 9, 8)), 32, 3)
    for collection in (model_pruning.get_masks(), model_pruning.get_masked_weights(),
                       model_pruning.get_weights()):
        assert shapes(collection) == [[3, 3, 8, 32]]
    assert names(model_pruning.get_masks()) == ["Conv/mask"]
    assert names(model_pruning.get_thresholds()) == ["Conv/threshold"]
    assert names(model_pruning.get_weights()) == ["Conv/weights"]
    assert names(model_pruning.get_masked_weights()) == ["Conv/weights/masked_weight"]


def test_stacked_conv_layers_add_one_mask_each(graph):
    depth, growth = 4, 7
    net = tf.ones((8, 7, 9, depth))
    for i in range(5):
        net = masked_conv2d(net, depth + growth * (i + 1), 3)
    expected = [[3, 3, depth + growth * i, depth + growth * (i + 1)] for i in range(5)]
    assert shapes(model_pruning.get_masks()) == expected
    assert shapes(model_pruning.get_masked_weights()) == expected
    assert len(model_pruning.get_thresholds()) == 5


def test_single_fully_connected_layer_adds_one_mask(graph):
    masked_fully_connected(tf.ones((5, 8)), 32)
    assert shapes(model_pruning.get_masks()) == [[8, 32]]
    assert shapes(model_pruning.get_masked_weights()) == [[8, 32]]
    assert names(model_pruning.get_masks()) == ["fully_connected/mask"]
    assert names(model_pruning.get_masked_weights()) == ["fully_connected/weights/masked_weight"]


def test_stacked_fully_connected_layers_add_one_mask_each(graph):
    net = tf.ones((8, 4))
    for i in range(5):
        net = masked_fully_connected(net, 4 + 7 * (i + 1))
    expected = [[4 + 7 * i, 4 + 7 * (i + 1)] for i in range(5)]
    assert shapes(model_pruning.get_masks()) == expected
    assert shapes(model_pruning.get_masked_weights()) == expected


# slim behaviour: variables, collections, normalizer, reuse.

@pytest.mark.parametrize("layer, scope", [
    (lambda x: masked_conv2d(x, 4, 3, scope="conv1"), "conv1"),
    (lambda x: masked_fully_connected(slim.flatten(x), 4, scope="fc1"), "fc1"),
], ids=["conv", "fully_connected"])
def test_variables_are_slim_named_model_variables(graph, layer, scope):
    layer(tf.ones((2, 5, 5, 3)))
    expected = [f"{scope}/{name}" for name in ("weights", "biases", "mask", "threshold")]
    assert sorted(names(tf.compat.v1.get_collection(GraphKeys.MODEL_VARIABLES))) == \
        sorted(expected)
    assert names(tf.compat.v1.trainable_variables()) == expected[:2]


@pytest.mark.parametrize("variables_collections, weights_in, biases_in", [
    (["mine"], "mine", "mine"),
    ({"weights": ["w"], "biases": ["b"]}, "w", "b"),
])
def test_variables_collections_receive_weights_and_biases(
        graph, variables_collections, weights_in, biases_in):
    masked_conv2d(tf.ones((2, 5, 5, 3)), 4, 3, variables_collections=variables_collections,
                  scope="conv")
    weights = names(tf.compat.v1.get_collection(weights_in))
    biases = names(tf.compat.v1.get_collection(biases_in))
    assert "conv/weights" in weights and "conv/biases" in biases
    assert "conv/mask" not in weights + biases


def test_outputs_collections_alias_the_output_with_the_scope_name(graph):
    with tf.compat.v1.variable_scope("net"):
        output = masked_conv2d(tf.ones((2, 5, 5, 3)), 4, 3, outputs_collections="end_points",
                               scope="conv1")
    assert slim.utils.convert_collection_to_dict("end_points") == {"net/conv1": output}


def test_normalizer_replaces_biases(graph):
    inputs = np.random.RandomState(0).randn(2, 5, 5, 3).astype(np.float32)
    doubled = masked_conv2d(inputs, 4, 3, activation_fn=None, scope="conv",
                            normalizer_fn=lambda x, factor: x * factor,
                            normalizer_params={"factor": 2.0})
    plain = masked_conv2d(inputs, 4, 3, activation_fn=None, scope="conv", reuse=True,
                          biases_initializer=None)
    assert "conv/biases" not in names(tf.compat.v1.global_variables())
    doubled, plain = run([doubled, plain])
    np.testing.assert_allclose(doubled, 2 * plain, rtol=1e-6)


@pytest.mark.parametrize("layer", [
    lambda x, reuse: masked_conv2d(x, 4, 3, scope="shared", reuse=reuse),
    lambda x, reuse: masked_fully_connected(slim.flatten(x), 4, scope="shared", reuse=reuse),
], ids=["conv", "fully_connected"])
def test_reuse_shares_variables_and_registers_one_mask(graph, layer):
    inputs = tf.ones((2, 5, 5, 3))
    first = layer(inputs, None)
    second = layer(inputs, True)
    assert len(tf.compat.v1.global_variables()) == 4
    assert len(model_pruning.get_masks()) == len(model_pruning.get_weights()) == 1
    first, second = run([first, second])
    np.testing.assert_array_equal(first, second)


def test_not_trainable_layer_has_no_trainable_variables(graph):
    masked_fully_connected(tf.ones((2, 3)), 4, trainable=False)
    assert tf.compat.v1.trainable_variables() == []
    assert len(model_pruning.get_masks()) == 1


def test_weights_regularizer_sees_the_unmasked_weights(graph):
    # Positive weights: a sum of random signs can cancel to near zero, where float32's
    # summation order alone moves it by more than any relative tolerance.
    masked_fully_connected(tf.ones((2, 3)), 4, scope="fc",
                           weights_initializer=tf.compat.v1.random_uniform_initializer(0.5, 1.0),
                           weights_regularizer=lambda w: tf.reduce_sum(w, name="penalty"))
    (loss,) = tf.compat.v1.get_collection(GraphKeys.REGULARIZATION_LOSSES)
    weights = tf.compat.v1.get_collection(GraphKeys.MODEL_VARIABLES)[0]
    mask = model_pruning.get_masks()[0]
    loss_value, weights_value = run([loss, weights], [(mask, np.zeros([3, 4], np.float32))])
    np.testing.assert_allclose(loss_value, weights_value.sum(), rtol=1e-6)


def test_partitioned_weights_are_masked_pruned_and_collected_part_by_part(graph):
    with tf.compat.v1.variable_scope("split",
                                     partitioner=tf.compat.v1.fixed_size_partitioner(2)):
        outputs = masked_fully_connected(tf.ones([1, 6]), 4, activation_fn=None,
                                         variables_collections=["mine"])
    assert names(tf.compat.v1.get_collection("mine")) == [
        f"split/fully_connected/{name}/part_{i}" for name in ("weights", "biases")
        for i in (0, 1)]
    assert compat.is_partitioned(model_pruning.get_masks()[0])
    pruning = model_pruning.Pruning("threshold_method=exact,threshold_decay=0.0",
                                    global_step=tf.compat.v1.train.get_or_create_global_step(),
                                    sparsity=tf.constant(0.5))
    mask_update_op = pruning.mask_update_op()
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(mask_update_op)
        outputs, masked = session.run([outputs, model_pruning.get_masked_weights()[0]])
    assert np.mean(masked == 0) == 0.5
    np.testing.assert_allclose(outputs, masked.sum(0, keepdims=True), rtol=1e-6)


def test_num_outputs_must_be_an_int(graph):
    with pytest.raises(ValueError, match="num_outputs must be an int"):
        masked_fully_connected(tf.ones((2, 3)), 4.0)


def test_arg_scope_defaults_reach_the_masked_layers(graph):
    with slim.arg_scope([masked_conv2d, masked_fully_connected, masked_convolution],
                        weights_initializer=tf.compat.v1.constant_initializer(0.5),
                        activation_fn=None), \
            slim.arg_scope([masked_conv2d], padding="VALID", stride=2), \
            slim.arg_scope([masked_convolution], padding="VALID"):
        conv = masked_conv2d(tf.ones((1, 5, 5, 2)), 3, 3)
        conv1d = masked_convolution(tf.ones((1, 5, 2)), 3, 3)
        dense = masked_fully_connected(tf.ones((1, 2)), 3)
    assert conv.shape.as_list() == [1, 2, 2, 3]  # VALID, stride 2
    assert conv1d.shape.as_list() == [1, 3, 3]  # VALID, stride 1
    conv, conv1d, dense = run([conv, conv1d, dense])
    np.testing.assert_allclose(conv, np.full([1, 2, 2, 3], 0.5 * 9 * 2), rtol=1e-6)
    np.testing.assert_allclose(conv1d, np.full([1, 3, 3], 0.5 * 3 * 2), rtol=1e-6)
    np.testing.assert_allclose(dense, np.full([1, 3], 0.5 * 2), rtol=1e-6)


# Numerics: the output is tf.nn.convolution / matmul with the masked kernel.

@pytest.mark.parametrize("input_shape, kernel_size, kwargs, tf_format", [
    ((2, 9, 3), 3, {}, "NWC"),
    ((2, 3, 9), 3, {"data_format": "NCW"}, "NCW"),
    ((2, 11, 3), 3, {"rate": 2}, "NWC"),
    ((2, 7, 6, 3), [3, 2], {}, "NHWC"),
    ((2, 7, 6, 3), 3, {"padding": "VALID", "stride": 2}, "NHWC"),
    ((2, 9, 9, 3), 3, {"rate": [2, 3]}, "NHWC"),
    ((2, 3, 7, 6), 3, {"data_format": "NCHW"}, "NCHW"),
    ((2, 5, 5, 4, 3), 3, {}, "NDHWC"),
    ((2, 7, 7, 7, 3), 3, {"rate": 2, "padding": "VALID"}, "NDHWC"),
    ((2, 3, 5, 5, 4), [3, 1, 2], {"data_format": "NCDHW"}, "NCDHW"),
], ids=["1d", "1d_channels_first", "1d_dilated", "2d", "2d_valid_stride2", "2d_dilated",
        "2d_channels_first", "3d", "3d_dilated_valid", "3d_channels_first"])
def test_convolution_equals_tf_nn_convolution_with_the_masked_kernel(
        graph, input_shape, kernel_size, kwargs, tf_format):
    rng = np.random.RandomState(1)
    inputs = rng.randn(*input_shape).astype(np.float32)
    outputs = masked_convolution(inputs, 4, kernel_size, activation_fn=None,
                                 biases_initializer=tf.compat.v1.random_normal_initializer(),
                                 **kwargs)
    kernel, bias = tf.compat.v1.trainable_variables()
    mask = model_pruning.get_masks()[0]
    mask_value = (rng.rand(*mask.shape) < 0.5).astype(np.float32)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        unmasked = session.run(outputs)
        mask.load(mask_value, session)
        masked, kernel_value, bias_value = session.run([outputs, kernel, bias])
    rate = kwargs.get("rate", 1)
    expected = tf.nn.bias_add(
        tf.nn.convolution(inputs, kernel_value * mask_value, strides=kwargs.get("stride", 1),
                          padding=kwargs.get("padding", "SAME"), data_format=tf_format,
                          dilations=rate),
        bias_value, data_format="NC..." if tf_format.startswith("NC") else None)
    np.testing.assert_allclose(masked, run(expected), rtol=1e-5, atol=1e-5)
    assert not np.allclose(masked, unmasked, atol=1e-3)


@pytest.mark.parametrize("input_shape", [(4, 6), (2, 3, 6)])
def test_fully_connected_equals_numpy_with_the_masked_kernel(graph, input_shape):
    rng = np.random.RandomState(2)
    inputs = rng.randn(*input_shape).astype(np.float32)
    outputs = masked_fully_connected(inputs, 5, activation_fn=tf.nn.relu,
                                     biases_initializer=tf.compat.v1.random_normal_initializer())
    kernel, bias = tf.compat.v1.trainable_variables()
    mask = model_pruning.get_masks()[0]
    mask_value = (rng.rand(6, 5) < 0.5).astype(np.float32)
    assert outputs.shape.as_list() == list(input_shape[:-1]) + [5]
    outputs, kernel_value, bias_value = run([outputs, kernel, bias], [(mask, mask_value)])
    expected = np.maximum(inputs @ (kernel_value * mask_value) + bias_value, 0)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)


# Layer classes.

@pytest.mark.parametrize("make_layer, inputs_shape, output_shape, kernel_shape", [
    (lambda: MaskedConv1D(4, 3, padding="valid"), (2, 6, 3), [2, 4, 4], [3, 3, 4]),
    (lambda: MaskedConv2D(4, 3), (2, 6, 6, 3), [2, 4, 4, 4], [3, 3, 3, 4]),
    (lambda: MaskedConv2D(4, (3, 1), strides=(2, 1), padding="same",
                          data_format="channels_first"), (2, 3, 6, 6), [2, 4, 3, 6],
     [3, 1, 3, 4]),
    (lambda: MaskedConv3D(4, 2), (2, 3, 3, 3, 3), [2, 2, 2, 2, 4], [2, 2, 2, 3, 4]),
    (lambda: MaskedFullyConnected(4), (2, 5, 3), [2, 5, 4], [3, 4]),
], ids=["conv1d", "conv2d", "conv2d_channels_first", "conv3d", "fully_connected_rank3"])
def test_layer_class_names_its_variables_and_reuses_them_on_every_call(
        graph, make_layer, inputs_shape, output_shape, kernel_shape):
    layer = make_layer()
    inputs = tf.ones(inputs_shape)
    with tf.compat.v1.variable_scope("block"):
        first = layer.apply(inputs)
    second = layer(inputs)
    prefix = f"block/{layer._default_name}/"  # pylint: disable=protected-access
    assert names(layer.variables) == [prefix + name
                                      for name in ("kernel", "bias", "mask", "threshold")]
    assert names(tf.compat.v1.global_variables()) == names(layer.variables)
    assert layer.trainable_variables == [layer.kernel, layer.bias]
    assert shapes(model_pruning.get_masks()) == [kernel_shape]
    assert names(model_pruning.get_masked_weights()) == [prefix + "weights/masked_weight"]
    assert first.shape.as_list() == second.shape.as_list() == output_shape
    assert second.name.startswith(prefix)
    first, second = run([first, second])
    np.testing.assert_array_equal(first, second)


def test_unnamed_layer_objects_get_unique_scopes(graph):
    first, second = MaskedFullyConnected(2), MaskedFullyConnected(2, name="head")
    third = MaskedFullyConnected(2)
    for layer in (first, second, third):
        layer(tf.ones((1, 3)))
    assert [first.scope_name, second.scope_name, third.scope_name] == [
        "masked_fully_connected", "head", "masked_fully_connected_1"]


def test_layer_class_applies_activation_and_activity_regularizer(graph):
    layer = MaskedFullyConnected(3, activation=tf.nn.relu, use_bias=False,
                                 kernel_initializer=tf.compat.v1.constant_initializer(-1.0),
                                 activity_regularizer=lambda y: tf.reduce_sum(y) + 7.0)
    outputs = layer(tf.ones((2, 4)))
    (loss,) = tf.compat.v1.get_collection(GraphKeys.REGULARIZATION_LOSSES)
    assert layer.bias is None
    outputs, loss = run([outputs, loss])
    np.testing.assert_array_equal(outputs, np.zeros([2, 3]))
    assert loss == 7.0


@pytest.mark.parametrize("make_layer, message", [
    (lambda: MaskedConv2D(4, 3, padding="full"), "padding must be 'valid' or 'same'"),
    (lambda: MaskedConv2D(4, 3, data_format="NHWC"), "channels_last, channels_first"),
    (lambda: MaskedConv2D(4, (3, 3, 3)), "kernel_size must be a positive int or 2"),
    (lambda: MaskedConv1D(4, 3, strides=0), "strides must be a positive int or 1"),
    (lambda: MaskedConv3D(4, 3, dilation_rate=1.5), "dilation_rate must be a positive int"),
], ids=["padding", "data_format", "kernel_size", "strides", "dilation_rate"])
def test_layer_class_rejects_bad_arguments(make_layer, message):
    with pytest.raises(ValueError, match=message):
        make_layer()


def test_layer_class_rejects_inputs_of_the_wrong_rank_and_can_still_be_called(graph):
    layer = MaskedConv2D(4, 3)
    with pytest.raises(ValueError, match="rank 4"):
        layer(tf.ones((2, 6, 3)))
    assert layer(tf.ones((2, 6, 6, 3))).shape.as_list() == [2, 4, 4, 4]


# An InceptionV2-style block, as the Object Detection port builds it, trains and prunes.

def inception_block(net):
    """Mixed_3b of InceptionV2, narrowed: four branches concatenated on channels."""
    with tf.compat.v1.variable_scope("Mixed_3b"):
        branch_0 = masked_conv2d(net, 8, [1, 1], scope="Branch_0/Conv2d_0a_1x1")
        branch_1 = masked_conv2d(net, 6, [1, 1], scope="Branch_1/Conv2d_0a_1x1")
        branch_1 = masked_conv2d(branch_1, 8, [3, 3], scope="Branch_1/Conv2d_0b_3x3")
        branch_2 = masked_conv2d(net, 6, [1, 1], scope="Branch_2/Conv2d_0a_1x1")
        branch_2 = masked_conv2d(branch_2, 8, [3, 3], scope="Branch_2/Conv2d_0b_3x3")
        branch_2 = masked_conv2d(branch_2, 8, [3, 3], scope="Branch_2/Conv2d_0c_3x3")
        branch_3 = slim.avg_pool2d(net, [3, 3], stride=1, padding="SAME",
                                   scope="Branch_3/AvgPool_0a_3x3")
        branch_3 = masked_conv2d(branch_3, 4, [1, 1], scope="Branch_3/Conv2d_0b_1x1")
        return tf.concat([branch_0, branch_1, branch_2, branch_3], 3)


def test_inception_block_with_batch_norm_trains_and_prunes(graph):
    rng = np.random.RandomState(3)
    images = tf.constant(rng.rand(8, 16, 16, 3).astype(np.float32))
    labels = tf.constant(rng.randint(0, 3, size=8))
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with slim.arg_scope([slim.batch_norm], decay=0.9, epsilon=1e-3), \
            slim.arg_scope([masked_conv2d], normalizer_fn=compat.batch_norm,
                           normalizer_params={"is_training": True},
                           weights_initializer=tf.compat.v1.truncated_normal_initializer(
                               stddev=0.1)):
        net = masked_conv2d(images, 8, [3, 3], stride=2, scope="Conv2d_1a_3x3")
        net = inception_block(net)
    logits = masked_fully_connected(tf.reduce_mean(net, [1, 2]), 3, activation_fn=None,
                                    scope="Logits")
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    update_ops = tf.compat.v1.get_collection(GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
            loss, global_step=global_step)
    pruning = model_pruning.Pruning(
        "threshold_decay=0.0,pruning_frequency=1,begin_pruning_step=0,"
        "sparsity_function_begin_step=0,sparsity_function_end_step=10,target_sparsity=0.5,"
        "threshold_method=exact", global_step=global_step)
    mask_update_op = pruning.conditional_mask_update_op()
    moving_mean = tf.compat.v1.get_collection(
        GraphKeys.GLOBAL_VARIABLES, "Conv2d_1a_3x3/BatchNorm/moving_mean")[0]

    assert len(update_ops) == 2 * 8  # mean and variance for each of the 8 batch-normed convs
    assert not [v for v in tf.compat.v1.global_variables() if "Conv2d" in v.name
                and v.name.endswith("biases:0")]
    assert len(model_pruning.get_masks()) == 9
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        losses = []
        for _ in range(20):
            losses.append(session.run([train_op, loss])[1])
            session.run(mask_update_op)
        sparsities = session.run(model_pruning.get_weight_sparsity())
        masked_weights = session.run(model_pruning.get_masked_weights())
        moving_mean_value = session.run(moving_mean)
    assert np.all(np.isfinite(losses))
    np.testing.assert_allclose(sparsities, 0.5, atol=0.02)
    for masked in masked_weights:
        assert abs(np.mean(masked == 0) - 0.5) <= 0.02
    assert np.any(moving_mean_value != 0)
