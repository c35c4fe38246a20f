"""Sparse TFLite export and the size a 90%-sparse model really has after stripping."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from model_pruning import export, strip_pruning_vars
from model_pruning.fold import strip_pruning_vars_fn
from tests.test_strip_pruning_vars import (fc_model_with_apply_mask, prune_and_freeze,
                                           run_graph_def, save_pruned_checkpoints)


def scaled_weight(name, shape):
    """Glorot-initialized, so that activations keep their scale from layer to layer."""
    return tf.compat.v1.get_variable(name, shape,
                                     initializer=tf.compat.v1.glorot_uniform_initializer())


def conv_fc_model():
    """The TF notes' conv+fc net: 3.27M weights, nearly all in the first fc layer."""
    images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1], name="input")
    net = images
    for i, depth in enumerate([32, 64]):
        with tf.compat.v1.variable_scope(f"conv{i}"):
            kernel = model_pruning.apply_mask(
                scaled_weight("weights", [5, 5, net.shape[-1], depth]))
            net = tf.nn.relu(tf.nn.conv2d(net, kernel, 1, "SAME"))
            net = tf.nn.max_pool2d(net, 2, 2, "SAME")
    net = tf.reshape(net, [-1, 7 * 7 * 64])
    for i, units in enumerate([1024, 10]):
        with tf.compat.v1.variable_scope(f"fc{i}"):
            net = tf.matmul(net, model_pruning.apply_mask(
                scaled_weight("weights", [net.shape[-1], units])))
    tf.identity(net, name="output")
    # A 90%-sparse ReLU net shrinks its input ~50x; this scale brings outputs to O(1), where
    # a 1e-5 tolerance means something.
    inputs = np.random.RandomState(1).uniform(0, 50, [4, 28, 28, 1]).astype(np.float32)
    return {"input": inputs}


def wide_fc_model():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, 64], name="input")
    with tf.compat.v1.variable_scope("fc"):
        masked = model_pruning.apply_mask(scaled_weight("weights", [64, 512]))
    tf.identity(tf.matmul(inputs, masked), name="output")
    return {"input": np.random.RandomState(2).uniform(-1, 1, [4, 64]).astype(np.float32)}


def run_tflite(model, inputs):
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=model)
    input_detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(input_detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def sparse_conv_fc():
    frozen, feeds, products = prune_and_freeze(conv_fc_model, 0.9)
    assert sum(p.size for p in products) >= 3_000_000
    return frozen, strip_pruning_vars_fn(frozen, ["output"]), feeds


def test_stripped_graph_of_90_percent_sparse_model_compresses_over_3x(sparse_conv_fc):
    """With the report's fast gzip level (level 6 reaches 4x)."""
    frozen, stripped, _ = sparse_conv_fc
    dense_gzip = strip_pruning_vars.gzip_size(frozen.SerializeToString())
    stripped_gzip = strip_pruning_vars.gzip_size(stripped.SerializeToString())
    assert stripped_gzip <= dense_gzip / 3, (stripped_gzip, dense_gzip)


def test_sparse_tflite_is_5x_smaller_and_matches_tf(sparse_conv_fc):
    _, stripped, feeds = sparse_conv_fc
    dense = export.to_tflite(stripped, ["output"], sparse=False)
    sparse = export.to_tflite(stripped, ["output"])
    assert len(sparse) <= 0.2 * len(dense), (len(sparse), len(dense))
    expected = run_graph_def(stripped, feeds)
    assert 0.1 < np.abs(expected).max() < 10
    np.testing.assert_allclose(run_tflite(sparse, feeds["input"]), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(run_tflite(dense, feeds["input"]), expected, atol=1e-5, rtol=0)


def test_float16_tflite_is_smaller_and_stays_close():
    frozen, feeds, _ = prune_and_freeze(wide_fc_model, 0.5)
    stripped = strip_pruning_vars_fn(frozen, ["output"])
    float32 = export.to_tflite(stripped, ["output"])
    float16 = export.to_tflite(stripped, ["output"], float16=True)
    assert len(float16) < 0.8 * len(float32), (len(float16), len(float32))
    expected = run_graph_def(stripped, feeds)
    np.testing.assert_allclose(run_tflite(float16, feeds["input"]), expected,
                               rtol=1e-2, atol=1e-2)


def test_placeholder_inputs_are_found_from_the_outputs():
    graph = tf.Graph()
    with graph.as_default():
        used = tf.compat.v1.placeholder(tf.float32, [None, 2], name="used")
        tf.compat.v1.placeholder(tf.float32, [None, 2], name="unused")
        tf.identity(used * 2.0, name="output")
    assert export.placeholder_inputs(graph.as_graph_def(), ["output"]) == ["used"]


def test_to_tflite_leaves_the_default_graph_alone():
    frozen, feeds, _ = prune_and_freeze(fc_model_with_apply_mask, 0.5)
    with tf.Graph().as_default() as caller_graph:
        model = export.to_tflite(frozen, ["output"])
        assert caller_graph.get_operations() == []
    np.testing.assert_allclose(run_tflite(model, feeds["input"]),
                               run_graph_def(frozen, feeds), atol=1e-5)


def test_to_tflite_errors_name_the_problem():
    graph = tf.Graph()
    with graph.as_default():
        tf.identity(tf.ones([2]), name="output")
    with pytest.raises(ValueError, match="depend on no Placeholder; pass input_names"):
        export.to_tflite(graph.as_graph_def(), ["output"])
    with pytest.raises(ValueError, match=r"Input node 'outpt' is not in the graph\. "
                                         r"Close names: output"):
        export.to_tflite(graph.as_graph_def(), ["output"], input_names=["outpt"])


def test_cli_writes_sparse_tflite(tmp_path, capsys):
    directory = tmp_path / "train"
    feeds = save_pruned_checkpoints(str(directory), [0.9])
    assert strip_pruning_vars.main([f"--checkpoint_dir={directory}", "--output_node_names=output",
                                    f"--output_dir={tmp_path}", "--output_format=tflite",
                                    "--float16"]) == 0
    assert "tflite file:" in capsys.readouterr().out
    model = (tmp_path / "pruning_stripped.tflite").read_bytes()
    assert run_tflite(model, feeds["input"]).shape == (8, 3)
