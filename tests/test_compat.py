"""compat: each private TensorFlow import still resolves, no other module has one, and the
tf-slim batch_norm fix works.

The import checks read compat.py as text, so a TensorFlow upgrade that moves a private
symbol fails here by name even though importing compat itself then fails everywhere.
"""

import ast
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "model_pruning"
UPDATE_OPS = tf.compat.v1.GraphKeys.UPDATE_OPS


def private_tensorflow_imports(path):
    """(module, name) for each `from tensorflow.python... import name` in a file; name is
    None for `import tensorflow.python...`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tensorflow.python"):
            yield from ((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names
                        if alias.name.startswith("tensorflow.python"))


COMPAT_IMPORTS = sorted(private_tensorflow_imports(PACKAGE_DIR / "compat.py"))


def test_compat_holds_the_private_imports_it_is_known_for():
    assert {("tensorflow.python.ops.variables", "PartitionedVariable"),
            ("tensorflow.python.ops", "rnn_cell_impl"),
            ("tensorflow.python.framework", "ops"),
            ("tensorflow.python.eager", "context")} <= set(COMPAT_IMPORTS)


def test_eager_execution_is_global_inside_a_graph_context():
    from model_pruning import compat
    with tf.Graph().as_default():
        assert not tf.executing_eagerly()
        assert compat.eager_execution_is_global()


@pytest.mark.parametrize("module, name", COMPAT_IMPORTS,
                         ids=[f"{m}.{n}" if n else m for m, n in COMPAT_IMPORTS])
def test_private_import_still_resolves(module, name):
    imported = importlib.import_module(module)
    if name is not None:
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), \
            f"TensorFlow {tf.__version__} has no {module}.{name}: update model_pruning/compat.py"


def test_compat_imports():
    importlib.import_module("model_pruning.compat")


@pytest.mark.parametrize("path", sorted(set(PACKAGE_DIR.rglob("*.py"))
                                        - {PACKAGE_DIR / "compat.py"}), ids=lambda path: path.name)
def test_no_private_tensorflow_import_outside_compat(path):
    assert list(private_tensorflow_imports(path)) == []


@pytest.mark.parametrize("name", ["BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell",
                                  "DropoutWrapper"])
def test_rnn_classes_are_tensorflow_tf1_cells(name):
    from model_pruning import compat
    assert issubclass(getattr(compat, name), compat.RNNCell)


def test_lstm_state_tuple_is_a_c_h_pair():
    from model_pruning import compat
    state = compat.LSTMStateTuple(c=1, h=2)
    assert state._fields == ("c", "h") and tuple(state) == (1, 2)


def test_is_partitioned_tells_partitioned_variables_apart():
    from model_pruning import compat
    with tf.Graph().as_default():
        with tf.compat.v1.variable_scope(
                "split", partitioner=tf.compat.v1.fixed_size_partitioner(3)):
            split = tf.compat.v1.get_variable("weights", shape=[9, 2])
        whole = tf.compat.v1.get_variable("whole", shape=[9, 2])
        assert compat.is_partitioned(split) and len(list(split)) == 3
        assert not compat.is_partitioned(whole)


# compat.batch_norm

def numpy_batch_norm(x, epsilon=0.001):
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axes)) / np.sqrt(x.var(axes) + epsilon)


@pytest.mark.parametrize("shape", [(8, 3), (4, 5, 3), (4, 5, 5, 3), (2, 3, 4, 4, 3)],
                         ids=["rank2", "rank3", "rank4", "rank5"])
def test_batch_norm_with_slim_defaults_normalizes_and_puts_updates_in_update_ops(shape):
    from model_pruning import compat
    inputs = np.random.RandomState(0).randn(*shape).astype(np.float32) * 3 + 1
    with tf.Graph().as_default():
        outputs = compat.batch_norm(inputs, is_training=True, decay=0.5)
        update_ops = tf.compat.v1.get_collection(UPDATE_OPS)
        moving_mean = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                                  "BatchNorm/moving_mean")[0]
        assert len(update_ops) == 2
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            outputs, _ = session.run([outputs, update_ops])
            moving_mean = session.run(moving_mean)
    np.testing.assert_allclose(outputs, numpy_batch_norm(inputs), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(moving_mean, 0.5 * inputs.mean(tuple(range(len(shape) - 1))),
                               rtol=1e-4, atol=1e-5)


def test_batch_norm_honours_slim_batch_norm_arg_scope():
    from model_pruning import compat
    with tf.Graph().as_default():
        with slim.arg_scope([slim.batch_norm], updates_collections=None, decay=0.5, scale=True):
            outputs = compat.batch_norm(tf.ones([4, 5, 5, 3]), is_training=True)
        moving_mean = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                                  "BatchNorm/moving_mean")[0]
        assert tf.compat.v1.get_collection(UPDATE_OPS) == []
        assert tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                           "BatchNorm/gamma")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(outputs)  # in-place update: running the output updates the mean
            np.testing.assert_allclose(session.run(moving_mean), [0.5] * 3)


def test_batch_norm_has_its_own_arg_scope_and_passes_other_collections_through():
    from model_pruning import compat
    with tf.Graph().as_default():
        with slim.arg_scope([compat.batch_norm], updates_collections=["my_updates"],
                            center=False):
            compat.batch_norm(tf.ones([4, 3]), is_training=True)
        assert len(tf.compat.v1.get_collection("my_updates")) == 2
        assert tf.compat.v1.get_collection(UPDATE_OPS) == []
        assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                               "BatchNorm/beta")


# Classic TF1 code with pruning, where TensorFlow's own tf.compat.v1.layers and
# tf.compat.v1.nn.rnn_cell work: TF 2.12-2.15, and TF 2.16+ with TF_USE_LEGACY_KERAS=1 and
# tf-keras (`make compat` runs both). With Keras 3 these tests skip.

@pytest.fixture
def tf1_graph():
    from model_pruning import compat
    if not compat.tf1_layers_and_cells_available():
        pytest.skip(f"tf.compat.v1.layers and rnn_cell need Keras 2 (TensorFlow "
                    f"{tf.__version__} runs Keras 3; set TF_USE_LEGACY_KERAS=1 with tf-keras)")
    with tf.Graph().as_default() as graph:
        yield graph


def prune_to_half(session):
    """Runs one mask update to exactly 50% sparsity at a global step past the ramp."""
    import model_pruning
    global_step = tf.compat.v1.train.get_or_create_global_step()
    pruning = model_pruning.Pruning(
        "threshold_method=exact,target_sparsity=0.5,sparsity_function_end_step=1",
        global_step=global_step)
    update = pruning.mask_update_op()
    session.run(tf.compat.v1.global_variables_initializer())
    session.run(global_step.assign(2))
    session.run(update)


def test_tf1_layers_under_masking_scope_compute_with_the_pruned_weights(tf1_graph):
    import model_pruning
    images = np.random.RandomState(0).rand(2, 6, 6, 3).astype(np.float32)
    with model_pruning.masking_scope():
        net = tf.compat.v1.layers.conv2d(images, 4, 3, name="conv")
        flat = tf.compat.v1.layers.flatten(net)
        logits = tf.compat.v1.layers.dense(flat, 5, name="fc")
    assert [m.op.name for m in model_pruning.get_masks()] == ["conv/mask", "fc/mask"]
    fc_kernel = [w for w in model_pruning.get_masked_weights() if w.op.name.startswith("fc/")]
    fc_bias = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, "fc/bias")
    with tf.compat.v1.Session() as session:
        prune_to_half(session)
        sparsity, flat, kernel, bias, logits = session.run(
            [model_pruning.get_weight_sparsity(), flat, fc_kernel[0], fc_bias[0], logits])
    np.testing.assert_allclose(sparsity, [0.5, 0.5])
    np.testing.assert_allclose(logits, flat @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_tf1_rnn_cell_wrappers_stack_the_masked_cells(tf1_graph):
    import model_pruning
    rnn_cell = tf.compat.v1.nn.rnn_cell
    cell = rnn_cell.MultiRNNCell([
        rnn_cell.DropoutWrapper(model_pruning.MaskedLSTMCell(6), output_keep_prob=0.9),
        model_pruning.MaskedGRUCell(6),
        model_pruning.MaskedBasicLSTMCell(6)])
    outputs, _ = tf.compat.v1.nn.dynamic_rnn(cell, tf.ones([2, 5, 4]), dtype=tf.float32)
    assert [m.op.name for m in model_pruning.get_masks()] == [
        "rnn/multi_rnn_cell/cell_0/masked_lstm_cell/mask",
        "rnn/multi_rnn_cell/cell_1/masked_gru_cell/gates/mask",
        "rnn/multi_rnn_cell/cell_1/masked_gru_cell/candidate/mask",
        "rnn/multi_rnn_cell/cell_2/masked_basic_lstm_cell/mask"]
    with tf.compat.v1.Session() as session:
        prune_to_half(session)
        sparsity, outputs = session.run([model_pruning.get_weight_sparsity(), outputs])
    np.testing.assert_allclose(sparsity, [0.5] * 4)
    assert outputs.shape == (2, 5, 6)


def test_tf1_lstm_cells_under_masking_scope_are_masked(tf1_graph):
    import model_pruning
    rnn_cell = tf.compat.v1.nn.rnn_cell
    with model_pruning.masking_scope():
        cell = rnn_cell.MultiRNNCell([rnn_cell.LSTMCell(6), rnn_cell.LSTMCell(6)])
        outputs, _ = tf.compat.v1.nn.dynamic_rnn(cell, tf.ones([2, 5, 4]), dtype=tf.float32)
    assert [m.op.name for m in model_pruning.get_masks()] == [
        "rnn/multi_rnn_cell/cell_0/lstm_cell/mask", "rnn/multi_rnn_cell/cell_1/lstm_cell/mask"]
    with tf.compat.v1.Session() as session:
        prune_to_half(session)
        sparsity, outputs = session.run([model_pruning.get_weight_sparsity(), outputs])
    np.testing.assert_allclose(sparsity, [0.5, 0.5])
    assert outputs.shape == (2, 5, 6)


@pytest.mark.parametrize("tensorflow_release, protobuf_release, breaks", [
    ("2.20.0", "7.36.2", True), ("2.20.0", "6.33.6", False), ("2.21.0", "7.36.2", False),
    ("2.19.1", "5.29.6", False)])
def test_protobuf_7_breaks_text_graphs_on_tensorflow_2_20_only(
        tensorflow_release, protobuf_release, breaks):
    from model_pruning import compat
    assert compat.protobuf_breaks_text_graphs(tensorflow_release, protobuf_release) is breaks
