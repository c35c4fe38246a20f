"""channel_groups=true: one decision per channel of each group of coupled kernels."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import inception, resnet_v1, resnet_v2

import model_pruning
from bench import mobilenet_v1
from model_pruning import channel_groups, pruning, pruning_utils


def residual_model(images):
    """conv `a` (3x3) and the projection `b` (1x1) feed one add; `c` reads it and is the output."""
    def conv(scope, inputs, shape):
        with tf.compat.v1.variable_scope(scope):
            kernel = tf.compat.v1.get_variable("weights", shape)
            return tf.nn.conv2d(inputs, pruning.apply_mask(kernel), 1, "SAME")
    net = tf.nn.relu(conv("a", images, [3, 3, 4, 6]) + conv("b", images, [1, 1, 4, 6]))
    return conv("c", net, [1, 1, 6, 3])


@pytest.mark.parametrize("pooling", ["AVG", "MAX", "L2"])
@pytest.mark.parametrize("axis", [-1, 2, 0])
def test_channel_scores_pool_every_other_axis_like_numpy(pooling, axis):
    magnitudes = np.abs(np.random.RandomState(1).randn(3, 2, 5, 4)).astype(np.float32)
    others = tuple(i for i in range(4) if i != axis % 4)
    expected = {"AVG": lambda m: m.mean(axis=others), "MAX": lambda m: m.max(axis=others),
                "L2": lambda m: np.sqrt((m ** 2).mean(axis=others))}[pooling](magnitudes)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        scores = session.run(pruning_utils.channel_scores(tf.constant(magnitudes), axis, pooling))
        mask = session.run(pruning_utils.channel_mask(
            tf.constant(expected > np.median(expected)), [3, 2, 5, 4], axis, tf.float32))
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    shape = [1, 1, 1, 1]
    shape[axis % 4] = -1
    np.testing.assert_array_equal(mask, np.broadcast_to(
        (expected > np.median(expected)).reshape(shape), [3, 2, 5, 4]).astype(np.float32))


def variable(name):
    [found] = [v for v in tf.compat.v1.global_variables() if v.op.name == name]
    return found


def test_coupled_kernels_share_the_channels_their_summed_scores_keep():
    with tf.Graph().as_default():
        residual_model(tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4]))
        tf.compat.v1.train.get_or_create_global_step()
        p = pruning.Pruning("channel_groups=true", sparsity=tf.constant(0.5))
        with pytest.warns(UserWarning, match=r"leaves 1 kernel\(s\) dense: c/weights \("):
            update = p.mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            a, b = session.run([variable("a/weights"), variable("b/weights")])
            session.run(update)
            masks = {name: session.run(variable(f"{name}/mask")) for name in "abc"}
            threshold = session.run(variable("a/threshold"))
    scores = np.abs(a).mean(axis=(0, 1, 2)) + np.abs(b).mean(axis=(0, 1, 2))
    kept = np.zeros(6, bool)
    kept[np.argsort(-scores)[:3]] = True
    for name in "ab":
        np.testing.assert_array_equal(masks[name], np.broadcast_to(kept, masks[name].shape))
    np.testing.assert_array_equal(masks["c"], np.ones_like(masks["c"]))
    assert threshold == pytest.approx(np.sort(scores)[-3])


def test_a_group_with_a_do_not_prune_kernel_stays_dense_and_says_why():
    with tf.Graph().as_default():
        residual_model(tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4]))
        tf.compat.v1.train.get_or_create_global_step()
        p = pruning.Pruning("channel_groups=true,do_not_prune=[^b/]", sparsity=tf.constant(0.5))
        with pytest.warns(UserWarning, match=r"a/weights \(its group holds b/weights, which "
                                             r"do_not_prune leaves dense\)"):
            update = p.mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            assert session.run(variable("a/mask")).all()


@pytest.mark.parametrize("text, message", [
    ("channel_groups=true,sparsity_m_by_n=[2,4]", "set one of them"),
    ("channel_groups=true,block_height=-1", "block_height and block_width must be 1"),
    ("channel_groups=true,criterion=taylor", "criterion must be magnitude"),
    ("channel_groups=true,weight_sparsity_map=[conv1:0.5]",
     "weight_sparsity_map entry conv1:0.5 cannot apply"),
])
def test_settings_that_would_split_a_group_are_errors(text, message):
    with pytest.raises(ValueError, match=message):
        pruning.Pruning(text, global_step=tf.constant(0))


def resnet_v1_50(images):
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        return resnet_v1.resnet_v1_50(images, num_classes=10)[0]


def resnet_v2_50(images):
    with slim.arg_scope(resnet_v2.resnet_arg_scope()):
        return resnet_v2.resnet_v2_50(images, num_classes=10)[0]


def inception_v1(images):
    with slim.arg_scope(inception.inception_v1_arg_scope()):
        return inception.inception_v1(images, num_classes=10)[0]


def mobilenet(images):
    with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
        return mobilenet_v1.mobilenet_v1(images, num_classes=10)[0]


# (net, input side): inception_v1 ends in a 7x7 VALID average pool
# resnet_v2_50 and inception_v1 (~20 s together) run in `make test-long`: resnet_v1_50 has the
# same groups, and inception_v1's are single kernels (test_channel_groups checks it).
NETS = [(resnet_v1_50, 64), pytest.param(resnet_v2_50, 64, marks=pytest.mark.long),
        pytest.param(inception_v1, 224, marks=pytest.mark.long), (mobilenet, 64)]
HPARAMS = ("channel_groups=true,target_sparsity=0.5,sparsity_function_end_step=2,"
           "pruning_frequency=1")


@pytest.mark.parametrize("net, side", NETS,
                         ids=["resnet_v1_50", "resnet_v2_50", "inception_v1", "mobilenet"])
def test_unedited_net_trains_three_steps_and_every_group_reaches_the_target(net, side):
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        images = tf.random.uniform([2, side, side, 3])
        labels = tf.constant([1, 7])
        with model_pruning.masking_scope():
            logits = tf.reshape(net(images), [2, 10])
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(update_ops):
            train_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(
                loss, global_step=global_step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the logits stay dense: said, and checked below
            mask_update = pruning.Pruning(HPARAMS, global_step=global_step
                                          ).conditional_mask_update_op()
        groups, dense = channel_groups.find_channel_groups()
        mask_of = dict(zip(map(id, pruning.get_weights()), pruning.get_masks()))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(3):
                session.run(train_op)
                session.run(mask_update)
            assert session.run(global_step) == 3
            masks = session.run(mask_of)  # one run: each new fetch costs a graph pruning
    for group in groups:
        kept = [masks[id(weight)].astype(bool).any(axis=tuple(i for i in range(4)
                                                              if i != axis % 4))
                for weight, axis in group.members]
        assert all(np.array_equal(k, kept[0]) for k in kept), group
        assert kept[0].sum() == round(group.channels * 0.5), group
    for item in dense:
        assert masks[id(item.weight)].all(), item
    assert groups and dense
