"""Pruning unmodified models: masking_scope, ModelPruningHook, dense warm start, slim train."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import alexnet, inception, resnet_v1

import model_pruning
from model_pruning import strip_pruning_vars_lib
from model_pruning.hooks import ModelPruningHook
from model_pruning.masking import masking_scope
from model_pruning.warm_start import warm_start_from_dense_checkpoint

# Grappler re-fuses kernels once weights are constants; turned off, it cannot change the
# stripped graph's arithmetic.
NO_REWRITES = tf.compat.v1.ConfigProto()
NO_REWRITES.graph_options.rewrite_options.disable_meta_optimizer = True
# oneDNN may still sum a constant kernel and a computed `mask * w` kernel in another order, so
# the stripped graph's outputs may differ from the live graph's by float32 rounding.
ROUNDING = {"rtol": 1e-5, "atol": 1e-6}


def alexnet_v2(images):
    with slim.arg_scope(alexnet.alexnet_v2_arg_scope()):
        return alexnet.alexnet_v2(images, num_classes=10, is_training=False)[0]


def inception_v1(images):
    return inception.inception_v1(images, num_classes=10, is_training=False)[0]


def resnet_v1_50(images):
    return resnet_v1.resnet_v1_50(images, num_classes=10, is_training=False)[0]


def conv_kernels():
    return [v for v in tf.compat.v1.trainable_variables()
            if v.get_shape().ndims >= 2 and v.op.name.endswith("weights")]


# alexnet_v2 (~25 s, its fc6 alone holds 38M weights) runs in `make test-long`.
@pytest.mark.parametrize("net", [pytest.param(alexnet_v2, marks=pytest.mark.long), inception_v1,
                                 resnet_v1_50], ids=["alexnet_v2", "inception_v1", "resnet_v1_50"])
def test_slim_nets_prune_and_strip_unmodified(net):
    rng = np.random.RandomState(0)
    images_value = rng.rand(1, 224, 224, 3).astype(np.float32)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        images = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3], name="images")
        with masking_scope():
            logits = net(images)
        logits = tf.identity(logits, name="output")
        kernels = conv_kernels()
        assert len(model_pruning.get_masks()) == len(kernels)
        assert {w.op.name for w in model_pruning.get_weights()} == {k.op.name for k in kernels}
        loss = tf.reduce_mean(tf.square(logits))
        train_op = tf.compat.v1.train.GradientDescentOptimizer(1e-4).minimize(loss, global_step)
        p = model_pruning.Pruning(
            "threshold_method=exact,pruning_frequency=2,target_sparsity=0.5,"
            "sparsity_function_end_step=4", global_step=global_step)
        update = p.conditional_mask_update_op()
        sparsity = model_pruning.get_weight_sparsity()
        with tf.compat.v1.Session(config=NO_REWRITES) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(5):
                session.run(train_op, {images: images_value})
                session.run(update)
            np.testing.assert_allclose(session.run(sparsity), 0.5, atol=1e-3)
            masked_output = session.run(logits, {images: images_value})
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, tf.compat.v1.get_default_graph().as_graph_def(), ["output"])
    stripped = strip_pruning_vars_lib.strip_pruning_vars_fn(frozen, ["output"])
    assert not [n.name for n in stripped.node if n.name.endswith(("mask", "threshold"))]
    with tf.Graph().as_default():
        tf.compat.v1.import_graph_def(stripped, name="")
        with tf.compat.v1.Session(config=NO_REWRITES) as session:
            stripped_output = session.run("output:0", {"images:0": images_value})
    np.testing.assert_allclose(stripped_output, masked_output, **ROUNDING)


def small_net(images):
    net = slim.conv2d(images, 8, [3, 3], scope="conv1")
    net = slim.conv2d(net, 8, [3, 3], stride=2, scope="conv2")
    return slim.fully_connected(slim.flatten(net), 10, activation_fn=None, scope="logits")


def test_masking_scope_names_match_apply_mask():
    with tf.Graph().as_default():
        with masking_scope():
            small_net(tf.zeros([2, 8, 8, 3]))
        assert [m.op.name for m in model_pruning.get_masks()] == [
            "conv1/mask", "conv2/mask", "logits/mask"]
        assert [t.op.name for t in model_pruning.get_thresholds()] == [
            "conv1/threshold", "conv2/threshold", "logits/threshold"]
        assert [w.op.name for w in model_pruning.get_masked_weights()] == [
            "conv1/weights/masked_weight", "conv2/weights/masked_weight",
            "logits/weights/masked_weight"]


@pytest.mark.parametrize("include, exclude, masked", [
    (None, "conv2", ["conv1/weights", "logits/weights"]),
    (None, ["conv1", "logits"], ["conv2/weights"]),
    (r"biases$", None, ["conv1/biases", "conv2/biases", "logits/biases"]),
    (["conv1/weights", "conv2/biases"], None, ["conv1/weights", "conv2/biases"]),
])
def test_masking_scope_include_and_exclude(include, exclude, masked):
    with tf.Graph().as_default():
        with masking_scope(include=include, exclude=exclude):
            small_net(tf.zeros([2, 8, 8, 3]))
        assert [w.op.name for w in model_pruning.get_weights()] == masked


def test_masking_scope_rejects_a_bad_regex():
    with pytest.raises(ValueError, match="exclude pattern '\\(conv' is not a valid regex"):
        with masking_scope(exclude="(conv"):
            pass


def test_prune_a_pretrained_dense_checkpoint(tmp_path):
    """Train dense, save; rebuild under masking_scope; warm start; prune to 80%."""
    rng = np.random.RandomState(1)
    images = rng.rand(16, 8, 8, 3).astype(np.float32)
    labels = rng.randint(0, 10, 16)

    def build(masked):
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with masking_scope() if masked else tf.compat.v1.variable_scope(""):
            logits = small_net(tf.constant(images))
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step)
        return global_step, logits, train_op

    with tf.Graph().as_default():
        _, logits, train_op = build(masked=False)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(10):
                session.run(train_op)
            dense_output = session.run(logits)
            tf.compat.v1.train.Saver().save(session, str(tmp_path / "dense"))

    with tf.Graph().as_default():
        global_step, logits, train_op = build(masked=True)
        update = model_pruning.Pruning(
            "threshold_method=exact,pruning_frequency=5,target_sparsity=0.8,"
            "sparsity_function_end_step=20", global_step=global_step).conditional_mask_update_op()
        init_fn = warm_start_from_dense_checkpoint(str(tmp_path))
        sparsity = model_pruning.get_weight_sparsity()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            init_fn(session)
            np.testing.assert_array_equal(session.run(logits), dense_output)
            for _ in range(30):
                session.run(train_op)
                session.run(update)
            np.testing.assert_allclose(session.run(sparsity), 0.8, atol=1e-3)


def test_warm_start_lists_missing_and_misshaped_variables(tmp_path):
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("conv1/weights", [3, 3, 3, 8])
        tf.compat.v1.get_variable("logits/weights", [4, 4])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, str(tmp_path / "dense"))
    with tf.Graph().as_default():
        with masking_scope():
            small_net(tf.zeros([2, 8, 8, 3]))
        with pytest.raises(ValueError) as error:
            warm_start_from_dense_checkpoint(str(tmp_path / "dense"))
    message = str(error.value)
    assert "Missing from the checkpoint: conv1/biases, conv2/weights, conv2/biases" in message
    assert "logits/weights: checkpoint [4, 4], model [128, 10]" in message
    assert "conv1/weights" not in message.replace("conv1/weights:", "")


def test_warm_start_without_a_checkpoint_names_the_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("no checkpoint here")
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("w", [2])
        with pytest.raises(ValueError, match=f"No checkpoint found in directory {tmp_path}.*notes.txt"):
            warm_start_from_dense_checkpoint(str(tmp_path))


def train_with_pruning_hook(checkpoint_dir, last_step):
    """Trains small_net under masking_scope with ModelPruningHook; returns (first step, masks)."""
    rng = np.random.RandomState(2)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with masking_scope():
            logits = small_net(tf.constant(rng.rand(16, 8, 8, 3).astype(np.float32)))
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(rng.randint(0, 10, 16), logits)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step)
        hook = ModelPruningHook("threshold_method=exact,pruning_frequency=10,"
                                "target_sparsity=0.9,sparsity_function_end_step=100")
        masks = model_pruning.get_masks()
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=checkpoint_dir, save_checkpoint_steps=20,
                hooks=[hook, tf.compat.v1.train.StopAtStepHook(last_step=last_step)]) as session:
            read = lambda tensors: session.run_step_fn(
                lambda step_context: step_context.session.run(tensors))
            first = read(global_step)
            while not session.should_stop():
                session.run(train_op)
            return first, read(masks), read(hook.pruning.sparsity)


def assert_masks_keep(masks, sparsity):
    for mask in masks:
        assert mask.sum() == round(mask.size * (1 - sparsity))


def test_model_pruning_hook_continues_the_schedule_after_restart(tmp_path):
    first, masks, scheduled = train_with_pruning_hook(str(tmp_path), 40)
    assert first == 0
    # The last update ran at step 40, on the cubic ramp 40% of the way to 0.9.
    assert_masks_keep(masks, 0.9 - 0.9 * (1 - 0.4) ** 3)
    first, masks, scheduled = train_with_pruning_hook(str(tmp_path), 120)
    assert first == 40
    np.testing.assert_allclose(scheduled, 0.9)
    assert_masks_keep(masks, 0.9)


@pytest.mark.parametrize("hparams, message", [
    ("target_sparsity=1.5", "target_sparsity must be in \\[0, 1\\), got 1.5"),
    ("target_sparsity=0.9,taget=1", "Unknown hparam 'taget'"),
    ("weight_sparsity_map=[conv1:2]", "sparsity must be in \\[0, 1\\), got 2.0"),
])
def test_model_pruning_hook_rejects_bad_hparams_when_made(hparams, message):
    with pytest.raises(ValueError, match=message):
        ModelPruningHook(hparams)


def test_model_pruning_hook_logs_each_mask_update(tmp_path, caplog):
    caplog.set_level("INFO", logger="tensorflow")
    train_with_pruning_hook(str(tmp_path), 30)
    updates = re.findall(r"Pruning model_pruning: masks updated at step (\d+): scheduled "
                         r"sparsity ([\d.]+), masks at ([\d.]+)", caplog.text)
    assert [int(step) for step, _, _ in updates] == [10, 20, 30]
    for step, scheduled, reached in updates:
        expected = 0.9 - 0.9 * (1 - int(step) / 100) ** 3
        assert float(scheduled) == pytest.approx(expected, abs=1e-4)
        # exact: every mask at the schedule, up to rounding to whole weights
        assert float(reached) == pytest.approx(expected, abs=0.01)


class RecordingSession:
    """A session that records the global step at each of its runs."""

    def __init__(self, session, global_step):
        self.session, self.global_step, self.steps = session, global_step, []

    def run(self, fetches):
        self.steps.append(int(self.session.run(self.global_step)))
        return self.session.run(fetches)


def test_model_pruning_hook_runs_nothing_of_its_own_unless_an_update_can_be_due():
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        model_pruning.apply_mask(tf.compat.v1.get_variable("w", [10, 10]), "layer")
        train_step = tf.compat.v1.assign_add(global_step, 1)  # returns the step after it
        hook = ModelPruningHook("pruning_frequency=10,begin_pruning_step=5,end_pruning_step=25,"
                                "target_sparsity=0.5,sparsity_function_end_step=20")
        hook.begin()
        with tf.compat.v1.Session() as session:
            session.run([tf.compat.v1.global_variables_initializer(),
                         tf.compat.v1.local_variables_initializer()])
            hook.after_create_session(session, None)
            last_update = hook.pruning.last_mask_update_step()
            recording = RecordingSession(session, global_step)
            context = tf.compat.v1.train.SessionRunContext(None, recording)
            updated_at = []
            for _ in range(40):
                step = session.run(train_step)
                hook.after_run(context, tf.compat.v1.train.SessionRunValues(step, None, None))
                updated_at.append(session.run(last_update))
    # The step fetched with the train op may be the one before the increment, so the hook
    # also runs the graph's exact check one step early (9, 19); after step 25 never again.
    # At an update (10, 20) a second run reads what the log reports.
    assert recording.steps == [9, 10, 10, 19, 20, 20]
    assert sorted(set(updated_at)) == [0, 10, 20]


def test_pruning_without_masked_weights_warns_naming_the_usual_causes():
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        slim.fully_connected(tf.zeros([2, 3]), 4)  # built outside masking_scope
        with pytest.warns(UserWarning, match="found no masked weight.*apply_mask.*masking_scope"
                                             ".*Keras layers"):
            model_pruning.Pruning().conditional_mask_update_op()


def test_pruning_warns_when_do_not_prune_matches_every_weight():
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        with masking_scope():
            small_net(tf.zeros([2, 8, 8, 3]))
        with pytest.warns(UserWarning, match="do_not_prune matches every one of the 3"):
            model_pruning.Pruning("do_not_prune=[.]").mask_update_op()


def test_masked_layers_cells_and_apply_mask_inside_masking_scope_mask_each_weight_once():
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with masking_scope():
            net = model_pruning.masked_conv2d(tf.ones([2, 8, 8, 3]), 4, [3, 3], scope="conv1")
            net = model_pruning.MaskedConv2D(4, [3, 3], name="conv2")(net)
            net = model_pruning.masked_fully_connected(slim.flatten(net), 8, scope="fc")
            with tf.compat.v1.variable_scope("plain") as scope:
                weights = tf.compat.v1.get_variable("weights", [8, 8])
                net = tf.matmul(net, model_pruning.apply_mask(weights, scope))
            net, _ = tf.compat.v1.nn.dynamic_rnn(
                model_pruning.MaskedLSTMCell(5), tf.reshape(net, [2, 4, 2]), dtype=tf.float32)
            outputs, _ = tf.compat.v1.nn.dynamic_rnn(
                model_pruning.MaskedGRUCell(3), net, dtype=tf.float32, scope="gru")
        assert [m.op.name for m in model_pruning.get_masks()] == [
            "conv1/mask", "conv2/mask", "fc/mask", "plain/mask", "rnn/masked_lstm_cell/mask",
            "gru/masked_gru_cell/gates/mask", "gru/masked_gru_cell/candidate/mask"]
        assert all(isinstance(w, tf.Variable) for w in model_pruning.get_weights())
        update = model_pruning.Pruning("threshold_method=exact,target_sparsity=0.5,"
                                       "sparsity_function_end_step=1").mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run([global_step.assign(1)])
            session.run(update)
            sparsity = session.run(model_pruning.get_weight_sparsity())
            assert session.run(outputs).shape == (2, 4, 3)
    np.testing.assert_allclose(sparsity, 0.5, atol=0.02)


SLIM_TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    import tf_slim as slim
    import model_pruning

    tf.compat.v1.disable_eager_execution()
    global_step = tf.compat.v1.train.get_or_create_global_step()
    images = tf.constant(np.random.RandomState(0).rand(8, 8, 8, 3).astype(np.float32))
    with model_pruning.masking_scope():
        net = slim.conv2d(images, 4, [3, 3], scope="conv1")
        logits = slim.fully_connected(slim.flatten(net), 10, activation_fn=None, scope="logits")
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(np.arange(8) % 10, logits)
    train_op = slim.learning.create_train_op(loss, tf.compat.v1.train.GradientDescentOptimizer(0.1))
    update = model_pruning.Pruning("threshold_method=exact,pruning_frequency=1,"
                                   "sparsity_function_end_step=10").conditional_mask_update_op()
    final_loss = model_pruning.train(train_op, sys.argv[1], update, number_of_steps=20,
                                     save_summaries_secs=10000, save_interval_secs=10000)
    sparsity = tf.compat.v1.train.load_checkpoint(sys.argv[1]).get_tensor("conv1/mask")
    print("RESULT", type(final_loss).__name__, float(final_loss), 1 - sparsity.mean())
""")


def test_slim_train_wrapper_runs_and_returns_the_loss(tmp_path):
    result = subprocess.run([sys.executable, "-c", SLIM_TRAIN_SCRIPT, str(tmp_path)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    loss_type, loss, sparsity = result.stdout.split("RESULT")[1].split()
    assert loss_type in ("float", "float32") and np.isfinite(float(loss))
    np.testing.assert_allclose(float(sparsity), 0.5, atol=0.01)


def test_slim_train_wrapper_explains_eager_mode(tmp_path):
    with tf.Graph().as_default(), pytest.raises(RuntimeError, match="disable_eager_execution"):
        model_pruning.train(tf.constant(0.0), str(tmp_path), tf.no_op())
