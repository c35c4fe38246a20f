"""Every Python block of README.md runs as written, each in its own process.

A block may use a name that stands for the user's own folders; `PRELUDES` defines those names
in a few visible lines, and `EPILOGUES` checks what the block left behind.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from examples.cifar10 import cifar10_pruning

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")

# A dense resnet_v1_50 checkpoint (what the user's training without pruning wrote; on Keras 3
# its slim.batch_norm needs model_pruning's fix).
DENSE_RESNET_CHECKPOINT = textwrap.dedent("""
    import tempfile
    import tensorflow as tf
    import tf_slim as slim
    from tf_slim.nets import resnet_v1
    import model_pruning
    train_dir, dense_checkpoint_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        with slim.arg_scope(resnet_v1.resnet_arg_scope()):
            resnet_v1.resnet_v1_50(tf.zeros([1, 64, 64, 3]), num_classes=10)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, dense_checkpoint_dir + "/model.ckpt")
""")
# The cifar10 example's model, saved as initialised, and random evaluation data.
CIFAR10_CHECKPOINT = textwrap.dedent("""
    import tempfile
    import numpy as np
    import tensorflow as tf
    from examples.cifar10 import cifar10_pruning
    trained_checkpoint_dir, output_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
    eval_images = np.random.RandomState(0).rand(64, 24, 24, 3).astype(np.float32)
    eval_labels = np.random.RandomState(1).randint(0, 10, 64)
    with tf.Graph().as_default():
        cifar10_pruning.inference(tf.zeros([1, 24, 24, 3]))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, trained_checkpoint_dir + "/model.ckpt")
""")
PRELUDES = {"dense_checkpoint_dir": DENSE_RESNET_CHECKPOINT,
            "trained_checkpoint_dir": CIFAR10_CHECKPOINT}

# Prints the sparsity of every mask of the checkpoint the block trained into `train_dir`.
MASKS_IN_TRAIN_DIR = textwrap.dedent("""
    reader = tf.train.load_checkpoint(train_dir)
    for name in sorted(reader.get_variable_to_shape_map()):
        if name.endswith("/mask"):
            print("MASK", name, 1.0 - reader.get_tensor(name).mean())
""")
EPILOGUES = {"train_dir": MASKS_IN_TRAIN_DIR,
             "output_dir": 'print("PNG", os.path.exists(output_dir + "/sensitivity.png"))\n'}


def python_blocks():
    """(first line number, dedented code) of each ```python block, indented ones included."""
    with open(README) as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r"^( *)```python\n(.*?)^\1```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, textwrap.dedent(match.group(2))))
    return blocks


BLOCKS = python_blocks()


def run_block(code, names):
    script = "".join(PRELUDES[n] for n in sorted(PRELUDES) if n in names) + code + "".join(
        EPILOGUES[n] for n in sorted(EPILOGUES) if n in names)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_readme_has_the_blocks_this_test_expects():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_written(line, code):
    names = set(re.findall(r"\w+", code))
    output = run_block(code, names)
    # What the blocks print or leave behind must be what they promise.
    for values in re.findall(r"sparsity of conv1 and softmax_linear: (.*)", output):
        assert [float(v) for v in values.split(", ")] == pytest.approx([0.9, 0.9], abs=0.01)
    if "train_dir" in names:
        masks = re.findall(r"MASK (\S+) ([\d.]+)", output)
        assert len(masks) == 54  # resnet_v1_50's conv and fc kernels
        # histogram keeps every weight above a bin edge: at most the target, short of it by
        # at most one bin's share of the weights (bins are max|w| / 255 wide, so a weight
        # with outliers has coarse ones; a few short training runs came within 2 points).
        for name, sparsity in masks:
            assert 0.8 - 0.03 <= float(sparsity) <= 0.8 + 1e-6, name
    if "channel_groups" in names and "shrink_graph_def" in names:
        # Every kernel of the residual unit halved, inputs and outputs aside.
        assert re.findall(r"^(\S+) (\[.*\]) -> (\[.*\])$", output, re.M) == [
            ("stem/Conv2D", "[3, 3, 3, 32]", "[3, 3, 3, 16]"),
            ("unit/conv1/Conv2D", "[3, 3, 32, 16]", "[3, 3, 16, 8]"),
            ("unit/conv2/Conv2D", "[3, 3, 16, 32]", "[3, 3, 8, 16]"),
            ("logits/Conv2D", "[1, 1, 32, 10]", "[1, 1, 16, 10]")]
    if "to_saved_model" in names:
        assert "(2, 10)" in output  # the SavedModel's signature ran on two examples
        int8, dense = map(int, re.search(r"(\d+) bytes int8, (\d+) bytes dense float",
                                         output).groups())
        assert int8 < dense / 4  # 90% sparse, one byte per value: ~0.17x
    if "trained_checkpoint_dir" in names:
        # The example's five masked weights and the sweep, each at nine sparsities.
        rows = re.findall(r"^\| (\S+/weights|all weights \(sweep\)) \|(.*)$", output, re.M)
        assert len(rows) == 6 and all(rest.count("|") == 10 for _, rest in rows)  # size + 9
        assert re.search(r"overall sparsity [\d.]+% with weight_sparsity_map=\[\^conv1/weights\$:",
                         output)
        assert "PNG True" in output


def test_readme_strip_commands_name_a_node_of_the_example_graph():
    with open(README) as f:
        named = re.findall(r"--output_node_names=(\S+)", f.read())
    assert named
    with tf.Graph().as_default() as graph:
        cifar10_pruning.inference(tf.zeros([1, 24, 24, 3]))
        for name in named:
            for node in name.split(","):
                assert graph.get_operation_by_name(node)
