"""The cifar10 sensitivity script on a briefly trained dense model, and its suggested map in use.

Training and the script run as subprocesses, the way a user runs them (see
test_cifar10_example.py). The dense model is trained for 120 steps only: its precision is low
and noisy, but the script's output, the untouched checkpoint and the map's sparsity do not
depend on it.
"""

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from examples.cifar10 import cifar10_eval, cifar10_input, cifar10_pruning, cifar10_sensitivity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")
SPARSITIES = "0.5,0.7,0.9"
# Generous, so that the map of a barely trained model prunes something.
MAX_DROP = 0.05
SCHEDULE = ("threshold_method=exact,pruning_frequency=10,begin_pruning_step=0,"
            "sparsity_function_end_step=150")
ONE_POINT = 0.01


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr[-5000:]
    return process.stdout


def _train(train_dir, data_dir, max_steps, hparams):
    return _run("examples.cifar10.cifar10_train", f"--train_dir={train_dir}",
                f"--data_dir={data_dir}", "--batch_size=16", f"--max_steps={max_steps}",
                f"--log_frequency={max_steps}", f"--pruning_hparams={hparams}", "--seed=1")


def _files(directory):
    """{name: bytes} of every file in a directory."""
    contents = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                contents[name] = f.read()
    return contents


def _masks(checkpoint_dir):
    reader = tf.train.load_checkpoint(checkpoint_dir)
    return {name[:-len("/mask")]: reader.get_tensor(name)
            for name in reader.get_variable_to_shape_map() if name.endswith("/mask")}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """(root, script output, checkpoint dir files before the script) of a dense 120-step run."""
    root = tmp_path_factory.mktemp("sensitivity")
    _train(root / "dense", root / "data", 120, "target_sparsity=0.0")
    before = _files(root / "dense")
    output = _run("examples.cifar10.cifar10_sensitivity", f"--checkpoint_dir={root / 'dense'}",
                  f"--data_dir={root / 'data'}", f"--max_drop={MAX_DROP}",
                  f"--sparsities={SPARSITIES}")
    return root, output, before


def test_script_prints_table_summary_and_hparams_and_leaves_the_checkpoint_alone(analysed):
    root, output, before = analysed
    assert "| weight | size | 0.5 | 0.7 | 0.9 |" in output
    for layer in LAYERS:
        assert re.search(rf"^\| {layer}/weights \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$",
                         output, re.MULTILINE), layer
    assert re.search(r"^\| all weights \(sweep\) \| 1067584 \|", output, re.MULTILINE)
    assert re.search(r"^one-shot sweep: precision @ 1 [\d.]+ (stays within|falls by) ", output,
                     re.MULTILINE)
    hparams = re.search(r"^  --pruning_hparams=(.*)$", output, re.MULTILINE).group(1)
    assert shlex.split(hparams)[0].startswith("weight_sparsity_map=[^conv1/weights$:")

    # The metric is cifar10_eval's precision @ 1 on the same checkpoint and test images.
    baseline = re.search(r"metric with the masks as they were: ([\d.]+)", output).group(1)
    batches_dir = str(root / "data" / cifar10_input.DIGITS_SUBDIR)
    evaluator = cifar10_eval.Evaluator(batches_dir, "test", None, cifar10_pruning.BATCH_SIZE)
    result = evaluator.evaluate(tf.train.latest_checkpoint(str(root / "dense")))
    assert baseline == f"{result.precision:.4f}"

    # The PNG and the text go to the checkpoint dir by default; nothing else there changes.
    after = _files(root / "dense")
    png = after.pop(cifar10_sensitivity.PNG_NAME)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    text = after.pop(cifar10_sensitivity.TEXT_NAME).decode()
    assert "| all weights (sweep) | 1067584 |" in text and hparams in text
    assert after == before
    assert all(np.all(mask == 1.0) for mask in _masks(root / "dense").values())


@pytest.mark.long  # trains the example again (~20 s)
def test_suggested_map_trains_to_its_stated_overall_sparsity(analysed):
    root, output, _ = analysed
    overall = float(re.search(r"^  overall sparsity ([\d.]+) of ", output, re.MULTILINE).group(1))
    assert overall > 0.3
    stated = {name: float(value) for name, value in
              re.findall(r"^  (\w+)/weights +[\d,]+  ([\d.]+)$", output, re.MULTILINE)}
    assert sorted(stated) == sorted(LAYERS)
    hparams = shlex.split(re.search(r"^  --pruning_hparams=(.*)$", output,
                                    re.MULTILINE).group(1))[0]

    _train(root / "gradual", root / "data", 160, f"{hparams},{SCHEDULE}")
    masks = _masks(root / "gradual")
    reached = {layer: float(np.mean(mask == 0)) for layer, mask in masks.items()}
    assert reached == pytest.approx(stated, abs=ONE_POINT)
    zeros = sum(int(np.sum(mask == 0)) for mask in masks.values())
    assert zeros / sum(mask.size for mask in masks.values()) == pytest.approx(overall,
                                                                              abs=ONE_POINT)


@pytest.mark.parametrize("subdir", ["empty", "missing"])
def test_a_directory_without_a_checkpoint_is_a_clear_error(tmp_path, capsys, subdir):
    (tmp_path / "empty").mkdir()
    checkpoint_dir = str(tmp_path / subdir)
    with pytest.raises(ValueError, match=f"No checkpoint found in {re.escape(checkpoint_dir)}"):
        cifar10_sensitivity.latest_checkpoint(checkpoint_dir)
    with pytest.raises(SystemExit) as exit_info:
        cifar10_sensitivity.main([f"--checkpoint_dir={checkpoint_dir}",
                                  f"--data_dir={tmp_path / 'data'}"])
    assert exit_info.value.code == 2
    assert f"No checkpoint found in {checkpoint_dir}" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # it fails before converting any data
