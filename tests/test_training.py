"""Pruning inside real training loops: MonitoredTrainingSession, hooks, checkpoints, summaries."""

import glob

import numpy as np
import pytest
import tensorflow as tf

import model_pruning


def build_conv_fc_net(images):
    """A small conv + two fc net whose three weights are masked with apply_mask."""
    def weight(name, shape):
        return tf.compat.v1.get_variable(
            name, shape, initializer=tf.compat.v1.truncated_normal_initializer(stddev=0.1))

    with tf.compat.v1.variable_scope("conv1") as scope:
        kernel = model_pruning.apply_mask(weight("weights", [5, 5, 3, 16]), scope)
        net = tf.nn.relu(tf.nn.conv2d(images, kernel, [1, 2, 2, 1], "SAME"))
    net = tf.reshape(net, [-1, 8 * 8 * 16])
    with tf.compat.v1.variable_scope("local2") as scope:
        net = tf.nn.relu(tf.matmul(net, model_pruning.apply_mask(weight("weights", [1024, 64]),
                                                                 scope)))
    with tf.compat.v1.variable_scope("logits") as scope:
        return tf.matmul(net, model_pruning.apply_mask(weight("weights", [64, 10]), scope))


def build_training(seed=0):
    """Random 16x16 images with labels from a fixed random linear rule."""
    rng = np.random.RandomState(seed)
    images = tf.constant(rng.randn(64, 16, 16, 3).astype(np.float32))
    labels = tf.constant(rng.randint(0, 10, 64))
    global_step = tf.compat.v1.train.get_or_create_global_step()
    logits = build_conv_fc_net(images)
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss, global_step)
    return global_step, train_op


RAMP = ("name=e2e,begin_pruning_step=0,end_pruning_step=-1,target_sparsity=0.9,"
        "sparsity_function_begin_step=0,sparsity_function_end_step=200,"
        "pruning_frequency=10,threshold_decay=0.0")


@pytest.mark.parametrize("method", ["histogram", "exact"])
def test_training_reaches_target_sparsity_under_monitored_session(tmp_path, method):
    with tf.Graph().as_default():
        global_step, train_op = build_training()
        p = model_pruning.Pruning(model_pruning.get_pruning_hparams().parse(
            RAMP + f",threshold_method={method}"), global_step=global_step)
        mask_update_op = p.conditional_mask_update_op()
        p.add_pruning_summaries()
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=str(tmp_path), save_summaries_steps=50,
                hooks=[tf.compat.v1.train.StopAtStepHook(last_step=300)]) as session:
            while not session.should_stop():
                session.run(train_op)
                if not session.should_stop():
                    session.run(mask_update_op)
        reader = tf.train.load_checkpoint(str(tmp_path))
    for name in ("conv1", "local2", "logits"):
        mask = reader.get_tensor(f"{name}/mask")
        if method == "exact":
            assert mask.sum() == round(mask.size * 0.1)
        else:
            assert abs((1 - mask.mean()) - 0.9) <= 0.01
    tags = {value.tag
            for path in glob.glob(str(tmp_path / "events.out.tfevents.*"))
            for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value}
    assert {"e2e_summaries/sparsity", "e2e_summaries/last_mask_update_step",
            "e2e_summaries/conv1/mask/sparsity", "e2e_summaries/logits/threshold/threshold"} <= tags


class PruningHook(tf.compat.v1.train.SessionRunHook):
    """Builds Pruning in begin(), as the Object Detection pruning port did, and runs it after
    each step."""

    def __init__(self, spec):
        self._spec = spec

    def begin(self):
        self.pruning = model_pruning.Pruning(
            model_pruning.get_pruning_hparams().parse(self._spec))
        self._update = self.pruning.conditional_mask_update_op()

    def after_run(self, run_context, run_values):
        run_context.session.run(self._update)


def train_with_hook(checkpoint_dir, last_step, user_saver_first):
    """Trains to `last_step` (resuming from checkpoint_dir); returns the masks' sparsities."""
    with tf.Graph().as_default():
        global_step, train_op = build_training()
        # A Saver made before the hook's begin(), like the Object Detection model_fn's.
        scaffold = (tf.compat.v1.train.Scaffold(saver=tf.compat.v1.train.Saver())
                    if user_saver_first else None)
        hook = PruningHook(RAMP + ",threshold_method=exact")
        sparsity = model_pruning.get_weight_sparsity()
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=checkpoint_dir, scaffold=scaffold, save_checkpoint_steps=50,
                hooks=[hook, tf.compat.v1.train.StopAtStepHook(last_step=last_step)]) as session:
            start = session.run_step_fn(
                lambda step_context: step_context.session.run(global_step))
            while not session.should_stop():
                session.run(train_op)
            final = session.run_step_fn(lambda step_context: step_context.session.run(sparsity))
    return start, final


@pytest.mark.parametrize("user_saver_first", [False, True])
def test_pruning_built_in_hook_begin_survives_a_restart(tmp_path, user_saver_first):
    start, first = train_with_hook(str(tmp_path), 100, user_saver_first)
    assert start == 0
    restart, second = train_with_hook(str(tmp_path), 250, user_saver_first)
    assert restart == 100
    assert all(0.6 < s < 0.9 for s in first)
    np.testing.assert_allclose(second, 0.9, atol=0.01)


def test_plain_session_with_only_the_global_initializer():
    """Contrib's README loop: global_variables_initializer() alone must be enough."""
    with tf.Graph().as_default():
        global_step, train_op = build_training()
        update = model_pruning.Pruning(model_pruning.get_pruning_hparams().parse(
            RAMP + ",threshold_method=exact"), global_step=global_step).conditional_mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(20):
                session.run(train_op)
                session.run(update)
            sparsities = session.run(model_pruning.get_weight_sparsity())
    assert all(s > 0 for s in sparsities)
