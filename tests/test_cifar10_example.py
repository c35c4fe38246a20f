"""The cifar10 example: binary reader, digits fallback, flags, and train/resume/eval runs.

Training and evaluation run as subprocesses, the way a user runs them, so this process never
switches TensorFlow to graph mode globally.
"""

import argparse
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from examples.cifar10 import (cifar10_eval, cifar10_input, cifar10_pruning, cifar10_train,
                              digits_data, flags)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRUNING_HPARAMS = (
    "name=cifar10_pruning,begin_pruning_step=10,end_pruning_step=30,target_sparsity=0.5,"
    "sparsity_function_begin_step=10,sparsity_function_end_step=20,pruning_frequency=5,"
    "threshold_method=exact")
LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")
MASKS = tuple(layer + "/mask" for layer in LAYERS)


def _random_records(num_records, seed=0):
    """(CHW uint8 images [n, 3, 32, 32], uint8 labels [n], their CIFAR-10 binary bytes)."""
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(num_records, 3, 32, 32)).astype(np.uint8)
    labels = rng.randint(0, 10, size=num_records).astype(np.uint8)
    records = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images))
    return images, labels, records


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_reader_decodes_labels_and_chw_pixels(tmp_path):
    images, labels, records = _random_records(4)
    path = _write(tmp_path / "test_batch.bin", records)
    decoded = list(cifar10_input.read_records([str(path)]).map(cifar10_input.parse_record))
    assert [int(label) for _, label in decoded] == labels.tolist()
    for (image, _), chw in zip(decoded, images):
        assert image.dtype == tf.uint8
        np.testing.assert_array_equal(image.numpy(), chw.transpose(1, 2, 0))


def _standardized(image):
    image = image.astype(np.float64)
    return (image - image.mean()) / max(image.std(), 1.0 / np.sqrt(image.size))


def test_eval_inputs_are_standardized_central_crops_in_short_final_batch(tmp_path):
    images, labels, records = _random_records(5, seed=1)
    _write(tmp_path / "test_batch.bin", records)
    with tf.Graph().as_default():
        init, batch_images, batch_labels = cifar10_input.inputs(
            "test", str(tmp_path), batch_size=2, num_examples=5)
        with tf.compat.v1.Session() as session:
            session.run(init)
            batches = [session.run([batch_images, batch_labels]) for _ in range(3)]
            with pytest.raises(tf.errors.OutOfRangeError):
                session.run(batch_labels)
    assert [len(b_labels) for _, b_labels in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), labels)
    expected = [_standardized(chw.transpose(1, 2, 0)[4:28, 4:28]) for chw in images]
    np.testing.assert_allclose(np.concatenate([b for b, _ in batches]), expected, atol=1e-4)


def test_training_inputs_are_standardized_24x24_batches(tmp_path):
    _, _, records = _random_records(20, seed=2)
    for name in cifar10_input.TRAIN_FILES:
        _write(tmp_path / name, records)
    with tf.Graph().as_default():
        images, labels = cifar10_input.distorted_inputs(str(tmp_path), batch_size=8)
        with tf.compat.v1.Session() as session:
            batch, batch_labels = session.run([images, labels])
    assert batch.shape == (8, 24, 24, 3) and batch_labels.shape == (8,)
    np.testing.assert_allclose(batch.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(batch.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_digits_conversion_keeps_every_image_in_a_fixed_stratified_split(tmp_path):
    batches_dir = digits_data.write_digits_as_cifar10(str(tmp_path / "digits"))
    counts = {name: os.path.getsize(os.path.join(batches_dir, name)) // cifar10_input.RECORD_BYTES
              for name in cifar10_input.TRAIN_FILES + cifar10_input.TEST_FILES}
    assert sum(counts.values()) == 1797
    assert cifar10_input.count_records(batches_dir, "train") == 1797 - counts["test_batch.bin"]

    def read_labels(eval_data):
        paths = cifar10_input.filenames(batches_dir, eval_data)
        return np.array([int(label) for _, label in
                         cifar10_input.read_records(paths).map(cifar10_input.parse_record)])

    per_class = np.bincount(load_digits().target)
    np.testing.assert_array_equal(np.bincount(read_labels("test")),
                                  np.round(per_class * digits_data.TEST_FRACTION))
    np.testing.assert_array_equal(np.bincount(read_labels("test")) +
                                  np.bincount(read_labels("train_eval")), per_class)

    again = digits_data.write_digits_as_cifar10(str(tmp_path / "again"))
    for name in counts:
        with open(os.path.join(batches_dir, name), "rb") as a, \
                open(os.path.join(again, name), "rb") as b:
            assert a.read() == b.read(), name


def test_digit_is_enlarged_3x_and_centred_on_a_black_canvas():
    images, labels = digits_data.digits_as_cifar_images()
    digits = load_digits()
    assert images.shape == (1797, 32, 32, 3) and labels.tolist() == digits.target.tolist()
    expected = np.kron(np.round(digits.images[7] * 255 / 16), np.ones((3, 3)))
    for channel in range(3):
        np.testing.assert_array_equal(images[7, 4:28, 4:28, channel], expected)
    inner = np.zeros((32, 32), bool)
    inner[4:28, 4:28] = True
    assert not images[:, ~inner].any()


def test_find_data_prefers_cifar10_files_and_falls_back_to_digits(tmp_path):
    _, _, records = _random_records(1)
    cifar_dir = tmp_path / "cifar" / cifar10_input.CIFAR10_SUBDIR
    cifar_dir.mkdir(parents=True)
    for name in cifar10_input.TRAIN_FILES + cifar10_input.TEST_FILES:
        _write(cifar_dir / name, records)
    assert cifar10_input.find_data(str(tmp_path / "cifar")) == (
        str(cifar_dir), f"CIFAR-10 from {cifar_dir}")

    batches_dir, description = cifar10_input.find_data(str(tmp_path / "empty"))
    assert batches_dir == str(tmp_path / "empty" / cifar10_input.DIGITS_SUBDIR)
    assert description.startswith("scikit-learn digits")

    os.remove(cifar_dir / "data_batch_3.bin")
    with pytest.raises(ValueError, match="data_batch_3.bin"):
        cifar10_input.find_data(str(tmp_path / "cifar"))


def test_model_keeps_contribs_variable_and_node_names():
    with tf.Graph().as_default() as graph:
        logits = cifar10_pruning.inference(tf.compat.v1.placeholder(tf.float32, [None, 24, 24, 3]))
        variables = {v.op.name for v in tf.compat.v1.global_variables()}
    assert logits.op.name == cifar10_pruning.LOGITS_NODE
    assert logits.get_shape().as_list() == [None, cifar10_input.NUM_CLASSES]
    assert variables == {f"{layer}/{name}" for layer in LAYERS
                         for name in ("weights", "biases", "mask", "threshold")}
    for layer in LAYERS:
        assert graph.get_operation_by_name(f"{layer}/weights/masked_weight").type == "Mul"


@pytest.mark.parametrize("argv, expected", [
    ([], False),
    (["--log_device_placement=False"], False),
    (["--log_device_placement", "false"], False),
    (["--log_device_placement=0"], False),
    (["--log_device_placement=True"], True),
    (["--log_device_placement"], True),
])
def test_train_log_device_placement_is_a_real_boolean(argv, expected):
    assert cifar10_train.parse_args(argv).log_device_placement is expected


def test_eval_run_once_false_means_false():
    assert cifar10_eval.parse_args(["--run_once=False"]).run_once is False
    assert cifar10_eval.parse_args(["--run_once"]).run_once is True


def test_boolean_flag_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="expected a boolean"):
        flags.parse_bool("maybe")


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 30-step pruned training on the digits, then a resumed run to step 40."""
    root = tmp_path_factory.mktemp("cifar10")
    common = [f"--train_dir={root / 'train'}", f"--data_dir={root / 'data'}", "--batch_size=32",
              "--log_frequency=10", f"--pruning_hparams={PRUNING_HPARAMS}", "--seed=1"]
    first = _run("examples.cifar10.cifar10_train", "--max_steps=30", *common)
    first_step = cifar10_eval.checkpoint_step(tf.train.latest_checkpoint(str(root / "train")))
    resumed = _run("examples.cifar10.cifar10_train", "--max_steps=40", *common)
    return root, first, first_step, resumed


def test_train_logs_data_loss_speed_and_sparsity(trained):
    _, first, first_step, _ = trained
    assert "data: scikit-learn digits as CIFAR-10" in first
    assert first_step == 30
    logged = re.findall(r"step (\d+): loss = [\d.]+, [\d.]+ examples/sec, "
                        r"weight sparsity = ([\d.]+)", first)
    assert [int(step) for step, _ in logged] == [10, 20, 30]
    # The schedule reaches 0.5 at step 20; the log at step 30 shows the masks of step 25.
    assert float(logged[-1][1]) == pytest.approx(0.5, abs=1e-3)


def test_train_resumes_from_the_checkpoint_in_train_dir(trained):
    root, _, _, resumed = trained
    assert "resuming from" in resumed and "model.ckpt-30" in resumed
    assert re.findall(r"step (\d+): loss", resumed) == ["40"]
    assert cifar10_eval.checkpoint_step(tf.train.latest_checkpoint(str(root / "train"))) == 40


def test_eval_prints_precision_and_each_layers_sparsity(trained):
    root, _, _, _ = trained
    output = _run("examples.cifar10.cifar10_eval", f"--checkpoint_dir={root / 'train'}",
                  f"--data_dir={root / 'data'}", f"--eval_dir={root / 'eval'}", "--run_once")
    match = re.search(r"step 40: precision @ 1 = ([\d.]+) \((\d+) examples", output)
    assert match and 0.0 <= float(match.group(1)) <= 1.0
    assert int(match.group(2)) == cifar10_input.count_records(
        str(root / "data" / cifar10_input.DIGITS_SUBDIR), "test")
    sparsity = dict(re.findall(r"(\S+/mask) sparsity = ([\d.]+)", output))
    assert sorted(sparsity) == sorted(MASKS)
    assert all(float(value) == 0.5 for value in sparsity.values())


@pytest.mark.long  # ~15 s; make compat runs it on every TensorFlow, test_strip_cli the same path
def test_exported_checkpoint_strips_to_a_sparse_tflite_model(trained):
    root, _, _, _ = trained
    export_dir, output_dir = root / "export", root / "stripped"
    _run("examples.cifar10.cifar10_export", f"--checkpoint_dir={root / 'train'}",
         f"--export_dir={export_dir}")
    output = _run("model_pruning.strip_pruning_vars", f"--checkpoint_dir={export_dir}",
                  f"--output_node_names={cifar10_pruning.LOGITS_NODE}",
                  f"--output_dir={output_dir}", "--output_format=tflite")
    table = dict(re.findall(r"(\S+)/weights/masked_weight\s.*\s([\d.]+)%", output))
    assert table == {layer: "50.00" for layer in LAYERS}
    assert os.path.getsize(output_dir / "pruning_stripped.tflite") > 0
