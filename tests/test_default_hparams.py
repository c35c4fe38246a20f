"""The default hparams reach the target: a 200-step ramp in a 300-step run ends at 0.9.

With `threshold_method=histogram` and `threshold_decay=0.9`, contrib's smoothing made the
threshold lag the schedule; these runs ended at 0.65-0.85 before the decay stopped at the end
of the ramp. Only the target and the ramp's end are set; everything else is a default.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import alexnet

import model_pruning
from tests.test_training import build_training

SHORT_RAMP = "target_sparsity=0.9,sparsity_function_end_step=200"
STEPS = 300
# histogram keeps every weight above a bin edge, so a mask may fall short by one bin's share.
ONE_POINT = 0.01
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_steps(step_op, update_op, sparsity):
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        for _ in range(STEPS):
            session.run(step_op)
            session.run(update_op)
        return session.run(sparsity)


def test_conv_fc_net_trained_with_default_hparams_ends_at_the_target():
    with tf.Graph().as_default():
        global_step, train_op = build_training()
        update = model_pruning.Pruning(SHORT_RAMP, global_step=global_step)
        sparsity = run_steps(train_op, update.conditional_mask_update_op(),
                             model_pruning.get_weight_sparsity())
    assert len(sparsity) == 3
    np.testing.assert_allclose(sparsity, 0.9, atol=ONE_POINT)


def test_alexnet_v2_under_masking_scope_with_default_hparams_ends_at_the_target():
    """The global step alone advances: the threshold sees only the weights and the schedule,
    so 46M weights need no 300 backward passes to show the lag."""
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with model_pruning.masking_scope(), slim.arg_scope(alexnet.alexnet_v2_arg_scope()):
            alexnet.alexnet_v2(tf.zeros([1, 224, 224, 3]), num_classes=10)
        update = model_pruning.Pruning(SHORT_RAMP, global_step=global_step)
        sparsity = run_steps(tf.compat.v1.assign_add(global_step, 1),
                             update.conditional_mask_update_op(),
                             model_pruning.get_weight_sparsity())
    assert len(sparsity) == 8
    np.testing.assert_allclose(sparsity, 0.9, atol=ONE_POINT)


@pytest.mark.long
def test_cifar10_example_with_default_hparams_ends_at_the_target(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "examples.cifar10.cifar10_train", f"--train_dir={tmp_path / 't'}",
         f"--data_dir={tmp_path / 'data'}", "--batch_size=16", f"--max_steps={STEPS}",
         "--log_frequency=100", f"--pruning_hparams={SHORT_RAMP}", "--seed=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    reader = tf.train.load_checkpoint(str(tmp_path / "t"))
    assert reader.get_tensor("global_step") == STEPS
    masks = {name: 1.0 - reader.get_tensor(name).mean()
             for name in reader.get_variable_to_shape_map() if name.endswith("/mask")}
    assert len(masks) == 5
    assert masks == pytest.approx({name: 0.9 for name in masks}, abs=ONE_POINT)
    logged = re.findall(r"weight sparsity = ([\d.]+)", result.stdout)
    assert float(logged[-1]) == pytest.approx(0.9, abs=ONE_POINT)
