"""Kill -9 in the middle of the pruning ramp, restart from the checkpoint: no sparsity is lost."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from examples.cifar10 import cifar10_input

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")
HPARAMS = ("name=cifar10_pruning,threshold_method=exact,pruning_frequency=5,"
           "target_sparsity=0.9,sparsity_function_end_step=100")


def start_training(train_dir, data_dir, max_steps, log_frequency=50):
    return subprocess.Popen(
        [sys.executable, "-m", "examples.cifar10.cifar10_train", f"--train_dir={train_dir}",
         f"--data_dir={data_dir}", f"--pruning_hparams={HPARAMS}", f"--max_steps={max_steps}",
         "--batch_size=16", "--learning_rate=0.05", "--save_checkpoint_steps=10",
         f"--log_frequency={log_frequency}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def checkpoint_step(train_dir):
    latest = tf.train.latest_checkpoint(str(train_dir))
    return int(re.search(r"-(\d+)$", latest).group(1)) if latest else -1


def zeros_per_mask(train_dir):
    reader = tf.train.load_checkpoint(str(train_dir))
    return {layer: int((reader.get_tensor(f"{layer}/mask") == 0).sum()) for layer in LAYERS}


def run_to_end(train_dir, data_dir, max_steps, log_frequency=50):
    process = start_training(train_dir, data_dir, max_steps, log_frequency)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 0, log[-3000:]
    return log


@pytest.mark.long
def test_killed_training_resumes_the_ramp_without_losing_sparsity(tmp_path):
    data_dir, train_dir = tmp_path / "data", tmp_path / "train"
    cifar10_input.find_data(str(data_dir))
    process = start_training(train_dir, data_dir, max_steps=150)
    try:
        deadline = time.time() + 240
        while checkpoint_step(train_dir) < 30 and process.poll() is None:
            assert time.time() < deadline, "no checkpoint in the ramp after 240 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        log = process.communicate()[0]
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, log[-3000:]
    killed_at = checkpoint_step(train_dir)
    assert 30 <= killed_at < 100, f"checkpoint {killed_at} is not in the middle of the ramp"
    before = zeros_per_mask(train_dir)
    assert all(zeros > 0 for zeros in before.values())

    # One step after the restart. Its log line reads the masks with the training op, before
    # that step's mask update: they are the restored ones. Then the update moves them on.
    log = run_to_end(train_dir, data_dir, killed_at + 1, log_frequency=1)
    assert "resuming from" in log
    logged = float(re.search(rf"step {killed_at + 1}: .*weight sparsity = ([0-9.]+)", log).group(1))
    sizes = {layer: tf.train.load_checkpoint(str(train_dir)).get_tensor(f"{layer}/mask").size
             for layer in LAYERS}
    assert abs(logged - sum(before.values()) / sum(sizes.values())) < 1e-3
    assert checkpoint_step(train_dir) == killed_at + 1
    right_after = zeros_per_mask(train_dir)
    assert all(right_after[layer] >= before[layer] for layer in LAYERS), (before, right_after)

    run_to_end(train_dir, data_dir, 150)
    reader = tf.train.load_checkpoint(str(train_dir))
    for layer in LAYERS:
        mask = reader.get_tensor(f"{layer}/mask")
        assert mask.sum() == round(mask.size * 0.1), layer
