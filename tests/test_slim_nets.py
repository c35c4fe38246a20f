"""tf_slim's nets under their own arg_scopes, inside masking_scope, on the installed TensorFlow.

Every net here trains with `slim.batch_norm`, which fails on Keras 3 unless model_pruning's fix
(`compat.batch_norm`) is in place; separable convs have two kernels in one scope.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import inception, resnet_v1, resnet_v2

import model_pruning
from tests.numpy_reference import numpy_batch_norm


# Grappler's first-run rewrite of these graphs costs seconds per net and is not under test.
NO_REWRITES = tf.compat.v1.ConfigProto()
NO_REWRITES.graph_options.rewrite_options.disable_meta_optimizer = True


def conv_and_fc_kernels():
    return {v.op.name for v in tf.compat.v1.trainable_variables()
            if v.get_shape().ndims >= 2 and v.op.name.endswith("weights")}


# (net, its own arg_scope, smallest input side it builds at, its number of conv and fc kernels)
NETS = [(resnet_v1.resnet_v1_50, resnet_v1.resnet_arg_scope, 64, 54),
        (resnet_v2.resnet_v2_50, resnet_v2.resnet_arg_scope, 64, 54),
        (inception.inception_v2, inception.inception_v2_arg_scope, 64, 71),
        # ~30 s; inception_v2 covers the same ops in `make test`, `make test-long` runs it
        pytest.param(inception.inception_v3, inception.inception_v3_arg_scope, 107, 98,
                     marks=pytest.mark.long)]


@pytest.mark.parametrize("net, arg_scope, side, num_kernels", NETS,
                         ids=["resnet_v1_50", "resnet_v2_50", "inception_v2", "inception_v3"])
def test_slim_net_with_its_own_arg_scope_trains_and_prunes(net, arg_scope, side, num_kernels):
    rng = np.random.RandomState(0)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        images = tf.constant(rng.rand(2, side, side, 3).astype(np.float32))
        with model_pruning.masking_scope(), slim.arg_scope(arg_scope()):
            logits = tf.reshape(net(images, num_classes=10, is_training=True)[0], [2, 10])
        assert {w.op.name for w in model_pruning.get_weights()} == conv_and_fc_kernels()
        assert len(model_pruning.get_masks()) == num_kernels
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy([1, 2], logits)
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        assert update_ops  # the batch norms' moving averages
        with tf.control_dependencies(update_ops):
            train_op = tf.compat.v1.train.GradientDescentOptimizer(1e-3).minimize(
                loss, global_step)
        update = model_pruning.Pruning(
            "threshold_method=exact,target_sparsity=0.5,sparsity_function_end_step=2,"
            "pruning_frequency=1", global_step=global_step).conditional_mask_update_op()
        moving_means = [v for v in tf.compat.v1.global_variables()
                        if v.op.name.endswith("moving_mean")]
        with tf.compat.v1.Session(config=NO_REWRITES) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(3):
                session.run(train_op)
                session.run(update)
            sparsity = session.run(model_pruning.get_weight_sparsity())
            means = session.run(moving_means)
    np.testing.assert_allclose(sparsity, 0.5, atol=1e-3)
    assert all(np.any(mean != 0) for mean in means)  # the update ops ran


def test_separable_conv_masks_both_kernels_in_scopes_of_their_own():
    with tf.Graph().as_default():
        with model_pruning.masking_scope():
            slim.separable_conv2d(tf.zeros([1, 8, 8, 3]), 16, [3, 3], depth_multiplier=2,
                                  scope="sep")
        assert [m.op.name for m in model_pruning.get_masks()] == [
            "sep/depthwise_weights/mask", "sep/pointwise_weights/mask"]
        assert [w.op.name for w in model_pruning.get_weights()] == [
            "sep/depthwise_weights", "sep/pointwise_weights"]
        assert [m.get_shape().as_list() for m in model_pruning.get_masks()] == [
            [3, 3, 3, 2], [1, 1, 6, 16]]


def test_slim_batch_norm_is_the_fixed_one_and_normalizes():
    assert slim.batch_norm is model_pruning.batch_norm
    assert slim.layers.batch_norm is model_pruning.batch_norm
    values = np.random.RandomState(1).randn(4, 5, 5, 3).astype(np.float32) * 3 + 2
    with tf.Graph().as_default():
        with slim.arg_scope([slim.batch_norm], decay=0.5):
            outputs = slim.batch_norm(tf.constant(values), is_training=True)
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        assert len(update_ops) == 2
        moving_mean = tf.compat.v1.get_collection(
            tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, "BatchNorm/moving_mean")[0]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            outputs_value, _ = session.run([outputs, update_ops])
            mean = session.run(moving_mean)
    np.testing.assert_allclose(outputs_value, numpy_batch_norm(values), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(mean, 0.5 * values.mean(axis=(0, 1, 2)), rtol=1e-4)
