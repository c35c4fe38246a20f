"""inspect_checkpoint: each masked weight's nonzeros from the checkpoint's masks and weights,
and the schedule's target at its step, checked against numpy."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from model_pruning import inspect_checkpoint
from tests.test_strip_cli import error_lines, run_without_tensorflow

STEP = 15
HPARAMS = ("initial_sparsity=0.1,target_sparsity=0.8,sparsity_function_begin_step=10,"
           "sparsity_function_end_step=20,sparsity_function_exponent=2.0")


def checkpoint_values():
    """{variable name: value} of a model with two masked layers at step STEP.

    conv/weights has zeros where its mask is 1, so mask * weight has fewer nonzeros than the
    mask; fc/mask is 90% zeros.
    """
    rng = np.random.RandomState(0)
    conv_weights = rng.randn(3, 3, 2, 4).astype(np.float32)
    conv_weights[0, 0] = 0.0
    return {
        "conv/weights": conv_weights,
        "conv/biases": rng.randn(4).astype(np.float32),
        "conv/mask": (rng.rand(3, 3, 2, 4) > 0.5).astype(np.float32),
        "conv/threshold": np.float32(0.3),
        "fc/weights": rng.randn(10, 6).astype(np.float32),
        "fc/mask": (rng.rand(10, 6) > 0.9).astype(np.float32),
        "fc/threshold": np.float32(1.2),
        "global_step": np.int64(STEP),
    }


def save(values, prefix):
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=value)
                     for name, value in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return tf.compat.v1.train.Saver(variables).save(session, prefix)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("train")
    return directory, save(checkpoint_values(), str(directory / "model.ckpt"))


def inspect(capsys, *args):
    status = inspect_checkpoint.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_each_masked_weight_shows_the_nonzeros_of_mask_times_weight(checkpoint, capsys):
    directory, prefix = checkpoint
    status, out, _ = inspect(capsys, prefix)
    assert status == 0
    values = checkpoint_values()
    rows = {}
    for layer in ["conv", "fc"]:
        effective = values[f"{layer}/mask"] * values[f"{layer}/weights"]
        rows[layer] = np.count_nonzero(effective), effective.size
        shape = "x".join(map(str, effective.shape))
        assert re.search(rf"^{layer}/weights +{shape} +{rows[layer][0]}/{rows[layer][1]} +"
                         rf"{1 - rows[layer][0] / rows[layer][1]:.2%}$", out, re.M), out
    assert np.count_nonzero(values["conv/mask"]) > rows["conv"][0]  # the weight's zeros count
    nonzeros, size = map(sum, zip(*rows.values()))
    assert re.search(rf"^all 2 +{nonzeros}/{size} +{1 - nonzeros / size:.2%}$", out, re.M)
    assert out.startswith(f"checkpoint {prefix}\n")


def numpy_schedule(step, initial, target, begin, end, exponent):
    progress = np.clip((step - begin) / (end - begin), 0.0, 1.0)
    return target + (initial - target) * (1.0 - progress) ** exponent


def test_schedule_target_at_the_checkpoints_step(checkpoint, capsys):
    _, prefix = checkpoint
    status, out, _ = inspect(capsys, prefix, f"--pruning_hparams={HPARAMS}")
    assert status == 0
    target = numpy_schedule(STEP, initial=0.1, target=0.8, begin=10, end=20, exponent=2.0)
    assert f"step {STEP}: schedule target {target:.2%} (from 10.00% at step 10 to 80.00% " \
           f"at step 20; masks updated every 10 steps from step 0)" in out


def test_without_hparams_the_target_is_unknown(checkpoint, capsys):
    _, prefix = checkpoint
    assert f"step {STEP}: schedule target unknown (pass --pruning_hparams" in \
        inspect(capsys, prefix)[1]


def test_a_directory_means_its_latest_checkpoint_and_nothing_is_written(checkpoint, capsys):
    directory, prefix = checkpoint
    before = {path: os.stat(directory / path).st_mtime_ns for path in os.listdir(directory)}
    status, out, _ = inspect(capsys, directory)
    assert status == 0 and out.startswith(f"checkpoint {prefix}\n")
    assert {path: os.stat(directory / path).st_mtime_ns
            for path in os.listdir(directory)} == before


def test_a_mask_without_a_weight_of_its_shape_is_shown_alone(tmp_path, capsys):
    values = {"fc/mask": np.float32([[1, 0], [0, 0]]), "fc/biases": np.float32([1, 2])}
    prefix = save(values, str(tmp_path / "model.ckpt"))
    status, out, _ = inspect(capsys, prefix)
    assert status == 0
    assert re.search(r"^fc/mask \(the mask alone: no weight of its shape beside it\) +2x2 +1/4 +"
                     r"75.00%$", out, re.M), out
    assert "step unknown (no global_step in the checkpoint)" in out


def test_pair_masks_takes_the_one_variable_of_the_masks_scope_and_shape():
    shapes = {"a/mask": [2, 3], "a/weights": [2, 3], "a/biases": [3],
              "a/weights/Momentum": [2, 3], "mask": [4], "kernel": [4], "other/kernel": [4],
              "b/mask": [5], "b/x": [5], "b/y": [5]}
    assert inspect_checkpoint.pair_masks(shapes) == [
        ("a/weights", "a/mask"), (None, "b/mask"), ("kernel", "mask")]


@pytest.mark.parametrize("arguments, message", [
    (lambda directory, prefix: [directory / "nowhere"],
     r"No checkpoint at .*/nowhere: it is neither a directory nor a checkpoint prefix "
     r"\(.*/nowhere.index does not exist\)"),
    (lambda directory, prefix: [prefix, "--pruning_hparams=target_sparsity=x"],
     r"Could not parse hparam 'target_sparsity': 'x' is not a valid float"),
], ids=["missing", "bad hparams"])
def test_errors_are_one_line(checkpoint, capsys, arguments, message):
    status, _, err = inspect(capsys, *arguments(*checkpoint))
    assert status == 1
    [line] = error_lines(err)
    assert re.fullmatch(f"inspect_checkpoint: error: {message}", line), line


def test_a_truncated_index_is_a_one_line_error(checkpoint, tmp_path, capsys):
    _, prefix = checkpoint
    (tmp_path / "model.ckpt.index").write_bytes(open(prefix + ".index", "rb").read()[:20])
    status, _, err = inspect(capsys, tmp_path / "model.ckpt")
    assert status == 1
    assert error_lines(err) == [f"inspect_checkpoint: error: Checkpoint {tmp_path}/model.ckpt "
                                f"cannot be read: {tmp_path}/model.ckpt.index: file is too "
                                "short to be an sstable"]


def test_help_needs_no_tensorflow():
    status, out, err = run_without_tensorflow("model_pruning.inspect_checkpoint", "--help")
    assert status == 0, err
    assert out.startswith("usage: inspect_checkpoint [-h] [--pruning_hparams PRUNING_HPARAMS]")
