"""The strip_pruning_vars command line: flags, one-line errors, progress, the output file, and
the cifar10 example's own training checkpoint, which reads its images through tf.data."""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from examples.cifar10 import cifar10_pruning, cifar10_train
from model_pruning import strip_pruning_vars
from model_pruning.fold import strip_pruning_vars_fn
from model_pruning.freeze import graph_def_from_checkpoint
from tests.test_export import WITHOUT_XNNPACK, run_tflite, tflite_interpreter
from tests.test_strip_pruning_vars import (checkpoint_dir,  # noqa: F401 (a fixture)
                                           exact_config, folded_values, input_placeholder,
                                           pruning_var_names, run_graph_def, sparsities_of,
                                           weight)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def cli(*args):
    return strip_pruning_vars.main([str(arg) for arg in args])


def error_lines(stderr):
    """The lines of stderr that report an error, after checking there is no traceback."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if "error:" in line]


def read_graph_def(path):
    return tf.compat.v1.GraphDef.FromString(path.read_bytes())


def test_cli_runs_end_to_end_as_a_subprocess(checkpoint_dir, tmp_path):
    """Also what only a fresh process shows: TensorFlow's deprecation warnings (printed once
    per process) and the file mode under the user's umask."""
    directory, _ = checkpoint_dir
    result = subprocess.run(
        [sys.executable, "-m", "model_pruning.strip_pruning_vars",
         f"--checkpoint_dir={directory}", "--output_node_names=output",
         f"--output_dir={tmp_path}"],
        capture_output=True, text=True, env=ENV, timeout=120, check=False, umask=0o022)
    assert result.returncode == 0, result.stderr
    for layer in ["fc0", "fc1", "fc2"]:
        assert re.search(rf"^{layer}/weights/masked_weight +\d+x\d+ +\d+/\d+ +\d+\.\d+%$",
                         result.stdout, re.M)
    assert re.search(r"^frozen graph: [\d,]+ bytes \(weights and masks, not compressed\)$",
                     result.stdout, re.M)
    assert re.search(r"^stripped graph: [\d,]+ bytes, [\d,]+ bytes gzip-compressed$",
                     result.stdout, re.M)
    progress = [re.escape(line) for line in [
        f"Reading the graph {directory}/model.ckpt-2.meta",
        f"Freezing 6 variables of {directory}/model.ckpt-2",
        "Folding masked weight 1/3: fc0/weights/masked_weight",
        "Folding masked weight 3/3: fc2/weights/masked_weight",
        "Checking that the graph loads",
        f"Writing {tmp_path}/pruning_stripped.pb"]]
    assert re.search("\n(.*\n)*".join(progress), result.stderr), result.stderr
    assert "deprecated" not in result.stderr
    path = tmp_path / "pruning_stripped.pb"
    expected = strip_pruning_vars_fn(graph_def_from_checkpoint(directory, "output"), "output")
    assert read_graph_def(path) == expected
    assert os.listdir(tmp_path) == ["pruning_stripped.pb"]  # no temporary file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


# Runs the CLI module with `import tensorflow` made to fail. The package's __init__ imports
# TensorFlow itself, so the module is loaded under an empty stand-in for the package.
WITHOUT_TENSORFLOW = textwrap.dedent("""
    import importlib, sys, types

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "tensorflow":
                raise ImportError("TensorFlow was imported")

    sys.meta_path.insert(0, NoTensorFlow())
    package = types.ModuleType("model_pruning")
    package.__path__ = [sys.argv[1]]
    sys.modules["model_pruning"] = package
    sys.exit(importlib.import_module(sys.argv[2]).main(sys.argv[3:]))
""")


def run_without_tensorflow(module, *args):
    """(exit status, stdout, stderr) of `module`'s main(args) in a fresh Python that cannot
    import TensorFlow: flags are parsed, and their errors reported, without it (that import
    takes seconds; timing it here would only measure the machine's load)."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW,
                             os.path.join(REPO, "model_pruning"), module, *args],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("args, status, output", [
    (["--help"], 0, r"^usage: strip_pruning_vars "),
    (["--checkpoint_path=/tmp/train", "--output_node_names=logits"], 2,
     r"^strip_pruning_vars: error: unrecognized argument --checkpoint_path: did you mean "
     r"--checkpoint_dir or --checkpoint\? \(see --help\)\n$"),
    (["--output_node_names=logits"], 2,
     r"^strip_pruning_vars: error: the following arguments are required: --checkpoint_dir "),
    (["--checkpoint_dir=/tmp/train", "--output_node_names=logits", "--input_shapes=1,x,3"],
     2, r"^strip_pruning_vars: error: argument --input_shapes: '1,x,3' is not a list of "
        r"shapes: give each input's sizes comma-separated, -1 for a free one"),
], ids=["help", "contrib's --checkpoint_path", "missing flag", "bad shape"])
def test_flags_are_parsed_without_tensorflow(args, status, output):
    code, stdout, stderr = run_without_tensorflow(
        "model_pruning.strip_pruning_vars", *args)
    assert code == status, stderr
    assert re.search(output, stdout if status == 0 else stderr), stdout + stderr


def test_usage_shows_the_required_flags_as_required(capsys):
    with pytest.raises(SystemExit):
        cli("--help")
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    for flag in ["--checkpoint_dir CHECKPOINT_DIR", "--output_node_names OUTPUT_NODE_NAMES"]:
        assert re.search(rf"[^\[]{flag}", usage) and f"[{flag}" not in usage
    assert "[--checkpoint CHECKPOINT]" in usage


def copy_checkpoint(source, directory):
    """The files of checkpoint model.ckpt-2 of `source` copied into `directory`."""
    os.makedirs(directory)
    for name in os.listdir(source):
        if name.startswith("model.ckpt-2."):
            shutil.copy(os.path.join(source, name), directory)
    return os.path.join(directory, "model.ckpt-2")


@pytest.mark.parametrize("suffix, message", [
    (".index", r"Checkpoint .*/model.ckpt-2 cannot be read: .*/model.ckpt-2.index: .*sstable"),
    (".data-00000-of-00001", r"Checkpoint .*/model.ckpt-2 cannot be read: tensor fc\d/\w+: "
                             r"Read less bytes than requested"),
    (".meta", r"Checkpoint .*/model.ckpt-2 cannot be read: .*/model.ckpt-2.meta "
              r"\(truncated\?\): "),
])
def test_a_truncated_checkpoint_file_is_a_one_line_error(checkpoint_dir, tmp_path, capsys,
                                                         suffix, message):
    directory, _ = checkpoint_dir
    prefix = copy_checkpoint(directory, tmp_path / "train")
    with open(prefix + suffix, "r+b") as checkpoint_file:
        checkpoint_file.truncate(os.path.getsize(prefix + suffix) // 2)
    assert cli(f"--checkpoint_dir={tmp_path / 'train'}", "--checkpoint=model.ckpt-2",
               "--output_node_names=output", f"--output_dir={tmp_path / 'out'}") == 1
    [line] = error_lines(capsys.readouterr().err)
    assert re.fullmatch(f"strip_pruning_vars: error: {message}.*", line), line
    assert os.listdir(tmp_path / "out") == []  # the temporary file is gone


def a_file(tmp_path):
    (tmp_path / "file").write_text("")
    return {"--output_dir": tmp_path / "file"}


def an_existing_output(tmp_path):
    (tmp_path / "model.pb").write_text("")
    return {"--output_dir": tmp_path, "--filename": "model.pb"}


def a_directory_as_output(tmp_path):
    (tmp_path / "model.pb").mkdir()
    return {"--output_dir": tmp_path, "--filename": "model.pb"}


def a_read_only_directory(tmp_path):
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("needs Linux's /sys, where not even root creates files")
    return {"--output_dir": "/sys/kernel/model_pruning_test"}


@pytest.mark.parametrize("output, message", [
    (a_file, r"the output directory .*/file is a file"),
    (an_existing_output, r".*/model.pb already exists; pass --overwrite to replace it"),
    (a_directory_as_output, r".*/model.pb is a directory; choose another --filename"),
    (a_read_only_directory, r"cannot write to the output directory "
                            r"/sys/kernel/model_pruning_test: "
                            r"(Operation not permitted|Permission denied)"),
], ids=["output_dir is a file", "output exists", "output is a directory", "read-only"])
def test_output_errors_are_one_line_before_the_checkpoint_is_read(tmp_path, capsys, output,
                                                                  message):
    """The checkpoint directory does not even exist: the output is checked first."""
    flags = output(tmp_path)
    assert cli(f"--checkpoint_dir={tmp_path / 'no_such_dir'}", "--output_node_names=output",
               *(f"{flag}={value}" for flag, value in flags.items())) == 1
    stderr = capsys.readouterr().err
    [line] = error_lines(stderr)
    assert re.fullmatch(f"strip_pruning_vars: error: {message}.*", line), line
    assert stderr == line + "\n"


def test_output_file_honors_the_umask(checkpoint_dir, tmp_path):
    directory, _ = checkpoint_dir
    umask = os.umask(0o027)
    try:
        assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
                   f"--output_dir={tmp_path}") == 0
    finally:
        os.umask(umask)
    assert oct((tmp_path / "pruning_stripped.pb").stat().st_mode & 0o777) == oct(0o640)


def test_size_report_compresses_the_written_graph_only(checkpoint_dir, tmp_path, monkeypatch):
    """The frozen graph holds weights and masks, twice the model: compressing it took 2/3 of
    a 46M-weight strip. Only the stripped graph, here the file written, is compressed."""
    directory, _ = checkpoint_dir
    compressed = []
    gzip_size = strip_pruning_vars.gzip_size
    monkeypatch.setattr(strip_pruning_vars, "gzip_size",
                        lambda data: compressed.append(data) or gzip_size(data))
    assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
               f"--output_dir={tmp_path}") == 0
    assert compressed == [(tmp_path / "pruning_stripped.pb").read_bytes()]


def test_cli_writes_pbtxt(checkpoint_dir, tmp_path, capsys):
    directory, _ = checkpoint_dir
    assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
               f"--output_dir={tmp_path}", "--output_format=pbtxt") == 0
    text = (tmp_path / "pruning_stripped.pbtxt").read_text()
    parsed = text_format.Parse(text, tf.compat.v1.GraphDef())
    assert pruning_var_names(parsed) == [] and len(folded_values(parsed)) == 3
    assert "pbtxt file:" in capsys.readouterr().out


def test_cli_keeps_an_existing_output_unless_overwrite(checkpoint_dir, tmp_path, capsys):
    directory, _ = checkpoint_dir
    output = tmp_path / "model.pb"
    output.write_bytes(b"precious")
    args = [f"--checkpoint_dir={directory}", "--output_node_names=output",
            f"--output_dir={tmp_path}", "--filename=model.pb"]
    assert cli(*args) == 1
    assert "model.pb already exists; pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    assert cli(*args, "--overwrite") == 0
    assert pruning_var_names(read_graph_def(output)) == []
    assert sorted(os.listdir(tmp_path)) == ["model.pb"]


def test_cli_uses_a_given_checkpoint(checkpoint_dir, tmp_path):
    directory, _ = checkpoint_dir
    assert cli(f"--checkpoint_dir={directory}", "--checkpoint=model.ckpt-1",
               "--output_node_names=output", f"--output_dir={tmp_path}") == 0
    written = read_graph_def(tmp_path / "pruning_stripped.pb")
    assert sparsities_of(written) == pytest.approx([0.5] * 3, abs=0.04)


@pytest.mark.parametrize("args, message", [
    (["--float16"], "--float16 needs --output_format=tflite"),
    (["--input_shapes=1,4"], "--input_shapes needs --input_node_names"),
])
def test_cli_rejects_flags_that_need_another(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli("--checkpoint_dir=x", "--output_node_names=output", *args)
    assert exit_info.value.code == 2
    assert error_lines(capsys.readouterr().err) == [
        f"strip_pruning_vars: error: {message} (see --help)"]


@pytest.mark.parametrize("args, message", [
    (["--checkpoint_dir=", "--output_node_names=output"], "No checkpoint_dir given"),
    (["--output_node_names="], "output_node_names is empty"),
    (["--output_node_names=outptu"], "Output node 'outptu' is not in the graph"),
    (["--output_node_names=output", "--input_node_names=inptu"],
     "Input node 'inptu' is not in the graph. Close names: input"),
])
def test_cli_reports_errors(checkpoint_dir, tmp_path, capsys, args, message):
    directory, _ = checkpoint_dir
    if "No checkpoint_dir" not in message:
        args = [f"--checkpoint_dir={directory}", *args]
    assert cli(*args, f"--output_dir={tmp_path}") == 1
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"strip_pruning_vars: error: {message}")
    assert os.listdir(tmp_path) == []


def test_cli_says_when_there_are_no_masked_weights(tmp_path, capsys):
    graph = tf.Graph()
    with graph.as_default():
        inputs, _ = input_placeholder((2, 3))
        tf.identity(tf.matmul(inputs, weight("dense", [3, 2])), name="output")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, str(tmp_path / "train" / "model.ckpt"))
    assert cli(f"--checkpoint_dir={tmp_path / 'train'}", "--output_node_names=output",
               f"--output_dir={tmp_path}") == 0
    assert "No masked weights were found" in capsys.readouterr().out
    written = read_graph_def(tmp_path / "pruning_stripped.pb")
    assert run_graph_def(written, {"input": np.ones([1, 3], np.float32)}).shape == (1, 2)


CIFAR10_BATCH = 8
CIFAR10_HPARAMS = ("begin_pruning_step=0,sparsity_function_begin_step=0,"
                   "sparsity_function_end_step=1,target_sparsity=0.5,pruning_frequency=1,"
                   "threshold_method=exact")


@pytest.fixture(scope="module")
def cifar10_training(tmp_path_factory):
    """The cifar10 example trained 2 steps on the digits, its masks pruned to 50% at step 1.

    Trained in this process: the example builds its own tf.Graph, eager mode stays on.
    """
    root = tmp_path_factory.mktemp("cifar10")
    cifar10_train.main([f"--train_dir={root / 'train'}", f"--data_dir={root / 'data'}",
                        f"--batch_size={CIFAR10_BATCH}", "--max_steps=2", "--seed=1",
                        f"--pruning_hparams={CIFAR10_HPARAMS}"])
    return root / "train"


def run_training_graph(train_dir, images):
    """The logits of the restored training graph, its iterator's images replaced by `images`."""
    prefix = tf.train.latest_checkpoint(str(train_dir))
    with tf.Graph().as_default():
        saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        with tf.compat.v1.Session(config=exact_config()) as session:
            saver.restore(session, prefix)
            return session.run(cifar10_pruning.LOGITS_NODE + ":0",
                               {"IteratorGetNext:0": images})


def test_cifar10_training_checkpoint_strips_to_a_pb_and_tflite_that_load_and_match(
        cifar10_training, tmp_path, capsys):
    args = [f"--checkpoint_dir={cifar10_training}",
            f"--output_node_names={cifar10_pruning.LOGITS_NODE}",
            "--input_node_names=IteratorGetNext", "--input_shapes=-1,24,24,3",
            f"--output_dir={tmp_path}"]
    assert cli(*args) == 0
    assert cli(*args, "--output_format=tflite") == 0
    table = dict(re.findall(r"(\S+)/weights/masked_weight\s.*\s([\d.]+)%",
                            capsys.readouterr().out))
    assert set(table.values()) == {"50.00"} and len(table) == 5

    graph_def = read_graph_def(tmp_path / "pruning_stripped.pb")
    assert not [node.op for node in graph_def.node
                if re.search("Dataset|Iterator", node.op)]
    images = np.random.RandomState(0).randn(CIFAR10_BATCH, 24, 24, 3).astype(np.float32)
    live = run_training_graph(cifar10_training, images)
    assert np.abs(live).max() > 0.01  # the comparison is not between zeros
    # The training graph computes mask * weight when it runs, the stripped one holds it as a
    # constant: oneDNN may then sum in another order, which moves a logit by about 1 ULP.
    stripped = run_graph_def(graph_def, {"IteratorGetNext": images},
                             cifar10_pruning.LOGITS_NODE)
    np.testing.assert_allclose(stripped, live, rtol=1e-5, atol=1e-6)
    # TFLite's kernels sum in their own order: a few ULP of the 2,304-term sums.
    tflite = run_tflite((tmp_path / "pruning_stripped.tflite").read_bytes(), images[:3])
    np.testing.assert_allclose(tflite, live[:3], rtol=1e-4, atol=1e-5)


def imported_modules(command):
    """Top-level modules a command imports, from Python's -X importtime report on stderr."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("tool", ["strip_pruning_vars", "inspect_checkpoint"])
def test_help_of_the_installed_tools_does_not_import_tensorflow(tool):
    script = os.path.join(os.path.dirname(sys.executable), tool)
    commands = [[sys.executable, "-m", f"model_pruning.{tool}", "--help"]]
    if os.path.exists(script):  # the console script of an installed package
        commands.append([script, "--help"])
    for command in commands:
        modules = imported_modules(command)
        assert "model_pruning" in modules and "tensorflow" not in modules, command


def test_cli_writes_int8_tflite_calibrated_on_an_npz(cifar10_training, tmp_path, capsys):
    """The example's training checkpoint, its iterator's images the input: an int8 model with
    float32 input and output, within a few percent of the logits' range of the stripped graph."""
    images = np.random.RandomState(5).randn(48 + CIFAR10_BATCH, 24, 24, 3).astype(np.float32)
    np.savez(tmp_path / "examples.npz", IteratorGetNext=images[:48])
    assert cli(f"--checkpoint_dir={cifar10_training}",
               f"--output_node_names={cifar10_pruning.LOGITS_NODE}",
               "--input_node_names=IteratorGetNext", "--input_shapes=-1,24,24,3",
               f"--output_dir={tmp_path}", "--output_format=tflite", "--quantize=int8",
               f"--representative_data={tmp_path / 'examples.npz'}") == 0
    model = (tmp_path / "pruning_stripped.tflite").read_bytes()
    output = capsys.readouterr()
    assert re.search(rf"^tflite file: {len(model):,} bytes, ", output.out, re.M)
    # tf-nightly 2.23's XNNPACK refuses sparse int8 fc layers: the tool says so in a line.
    refused = re.search(r"^warning: TFLite's default delegate \(XNNPACK\) in TensorFlow \S+ "
                        r"cannot prepare this model", output.err, re.M)
    expected = run_training_graph(cifar10_training, images[48:])
    np.testing.assert_allclose(run_tflite(model, images[48:],
                                          **(WITHOUT_XNNPACK if refused else {})), expected,
                               atol=0.05 * np.abs(expected).max(), rtol=0)


def test_cli_says_when_int8_would_store_a_small_layer_in_blocks(checkpoint_dir, tmp_path,
                                                                 capsys):
    """The fc model's 4- and 15-input layers; see `export._check_no_int8_block_sparse_weights`."""
    directory, _ = checkpoint_dir
    np.save(tmp_path / "examples.npy", np.random.RandomState(5).uniform(-1, 1, [32, 4]))
    assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
               f"--output_dir={tmp_path / 'out'}", "--output_format=tflite", "--quantize=int8",
               f"--representative_data={tmp_path / 'examples.npy'}") == 1
    [line] = error_lines(capsys.readouterr().err)
    assert re.fullmatch(r"strip_pruning_vars: error: The int8 converter stored .*fc0.* in "
                        r"sparse blocks, which TFLite's int8 fully-connected kernel computes "
                        r"wrongly; export without the sparse format \(sparse=False; "
                        r"strip_pruning_vars --no_sparse\).*", line), line
    assert os.listdir(tmp_path / "out") == []
    assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
               f"--output_dir={tmp_path / 'out'}", "--output_format=tflite", "--quantize=int8",
               f"--representative_data={tmp_path / 'examples.npy'}", "--no_sparse") == 0
    model = (tmp_path / "out" / "pruning_stripped.tflite").read_bytes()
    assert not [d for d in tflite_interpreter(model).get_tensor_details()
                if d["sparsity_parameters"]]


def test_cli_writes_a_saved_model_directory(checkpoint_dir, tmp_path, capsys):
    directory, feeds = checkpoint_dir
    args = [f"--checkpoint_dir={directory}", "--output_node_names=output",
            f"--output_dir={tmp_path}", "--output_format=saved_model", "--filename=1"]
    assert cli(*args) == 0
    export_dir = tmp_path / "1"
    size = sum(path.stat().st_size for path in export_dir.rglob("*") if path.is_file())
    assert f"saved_model directory: {size:,} bytes\n" in capsys.readouterr().out
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    stripped = strip_pruning_vars_fn(graph_def_from_checkpoint(directory, "output"), "output")
    np.testing.assert_allclose(signature(input=tf.constant(feeds["input"]))["output"],
                               run_graph_def(stripped, feeds), atol=1e-6, rtol=0)
    assert cli(*args) == 1
    assert "/1 already exists; pass --overwrite" in capsys.readouterr().err
    assert cli(*args, "--overwrite") == 0
    assert os.listdir(tmp_path) == ["1"]  # no temporary or replaced directory left


def test_cli_refuses_a_file_where_the_saved_model_goes(tmp_path, capsys):
    (tmp_path / "model").write_text("")
    assert cli(f"--checkpoint_dir={tmp_path / 'no_such_dir'}", "--output_node_names=output",
               f"--output_dir={tmp_path}", "--filename=model", "--output_format=saved_model",
               "--overwrite") == 1
    [line] = error_lines(capsys.readouterr().err)
    assert re.fullmatch(r"strip_pruning_vars: error: .*/model is a file, not a directory; "
                        r"choose another --filename", line), line


@pytest.mark.parametrize("args, message", [
    (["--quantize=dynamic"], "--quantize needs --output_format=tflite"),
    (["--output_format=tflite", "--quantize=dynamic", "--float16"],
     "--float16 and --quantize=dynamic exclude each other"),
    (["--output_format=tflite", "--quantize=int8"],
     "--quantize=int8 needs --representative_data=FILE.npz|FILE.npy, examples of the inputs "
     "to calibrate on"),
    (["--output_format=tflite", "--quantize=dynamic", "--representative_data=x.npz"],
     "--representative_data needs --quantize=int8"),
    (["--output_format=tflite", "--quantize=int8", "--representative_data=examples.csv"],
     "--representative_data=examples.csv: need a .npz or .npy file"),
    (["--output_format=tflite", "--quantize=int8", "--representative_data=missing.npz"],
     "--representative_data=missing.npz cannot be read: No such file or directory"),
    (["--output_format=tflite", "--quantize=uint8"],
     "argument --quantize: invalid choice: 'uint8' (choose from "),
    (["--output_format=tflite", "--per_tensor"], "--per_tensor needs --quantize"),
    (["--no_sparse"], "--no_sparse needs --output_format=tflite"),
], ids=["not tflite", "float16", "no data", "data without int8", "extension", "missing file",
        "unknown mode", "per_tensor without quantize", "no_sparse without tflite"])
def test_cli_rejects_quantize_flags_in_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli("--checkpoint_dir=x", "--output_node_names=output", *args)
    assert exit_info.value.code == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"strip_pruning_vars: error: {message}"), line


@pytest.mark.parametrize("examples, message", [
    ({"images": np.ones([4, 4], np.float32)},
     r"representative_data has an entry 'images' that is no input of the model \(its inputs: "
     r"input\)"),
    ({"input": np.ones([4, 5], np.float32)},
     r"representative_data\['input'\] has shape 4x5; input 'input' of shape \?x4 takes "
     r"examples of 4"),
], ids=["wrong key", "wrong shape"])
def test_cli_reports_representative_data_that_does_not_fit_in_one_line(
        checkpoint_dir, tmp_path, capsys, examples, message):
    directory, _ = checkpoint_dir
    np.savez(tmp_path / "examples.npz", **examples)
    assert cli(f"--checkpoint_dir={directory}", "--output_node_names=output",
               f"--output_dir={tmp_path / 'out'}", "--output_format=tflite", "--quantize=int8",
               f"--representative_data={tmp_path / 'examples.npz'}") == 1
    [line] = error_lines(capsys.readouterr().err)
    assert re.fullmatch(f"strip_pruning_vars: error: {message}.*", line), line
    assert os.listdir(tmp_path / "out") == []
