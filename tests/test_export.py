"""Sparse TFLite export and the size a 90%-sparse model really has after stripping."""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from model_pruning import export, strip_pruning_vars
from model_pruning.fold import strip_pruning_vars_fn
from tests.test_strip_pruning_vars import (fc_model_with_apply_mask,
                                           prune_and_freeze, pruning_var_names, run_graph_def,
                                           save_pruned_checkpoints)


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


def tflite_interpreter(model, **options):
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=model, **options)


def run_tflite(model, inputs, **options):
    interpreter = tflite_interpreter(model, **options)
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


# TFLite's XNNPACK delegate refuses the hybrid (dynamic-range) kernels whose weights a DENSIFY
# op makes; `to_tflite` says so.
WITHOUT_XNNPACK = {"experimental_op_resolver_type":
                   tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def converted(*args, **kwargs):
    """(`export.to_tflite(*args, **kwargs)`, the interpreter options to run it with): none, or
    without XNNPACK when the export warned that the default delegate refuses the model, which
    is then checked to be true."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = export.to_tflite(*args, **kwargs)
    if not [w for w in caught if issubclass(w.category, export.DefaultDelegateWarning)]:
        return model, {}
    with pytest.raises(RuntimeError, match="failed to prepare"):
        tflite_interpreter(model).allocate_tensors()
    return model, WITHOUT_XNNPACK


def calibration_images(count=32):
    return np.random.RandomState(3).uniform(0, 50, [count, 28, 28, 1]).astype(np.float32)


def kernels(model):
    """{dtype name: [shape of each conv or fc kernel]} and the shapes stored sparse, of the
    kernels (rank 2 or 4 constants) of a TFLite model, from the interpreter's tensor details."""
    details = [d for d in tflite_interpreter(model).get_tensor_details()
               if len(d["shape"]) in (2, 4) and d["shape"][0] > 1]
    sparse = sorted(tuple(d["shape"]) for d in details if d["sparsity_parameters"])
    return {tuple(d["shape"]): d["dtype"].__name__ for d in details}, sparse


CONV_FC_KERNELS = [(10, 1024), (32, 5, 5, 1), (64, 5, 5, 32), (1024, 3136)]


def test_int8_sparse_tflite_keeps_every_kernel_sparse_and_is_under_8_percent_of_dense(
        sparse_conv_fc):
    """Full-integer quantization keeps conv and fc kernels sparse: int8 values and uint8 or
    uint16 indices, 3 bytes per nonzero at most, against 4 per weight of the dense model."""
    _, stripped, feeds = sparse_conv_fc
    dense = export.to_tflite(stripped, ["output"], sparse=False)
    int8, run_options = converted(stripped, ["output"], quantize="int8",
                                  representative_data=calibration_images())
    assert len(int8) <= 0.08 * len(dense), (len(int8), len(dense))
    dtypes, sparse = kernels(int8)
    assert sparse == CONV_FC_KERNELS
    assert {dtypes[shape] for shape in CONV_FC_KERNELS} == {"int8"}
    interpreter = tflite_interpreter(int8)
    assert [d["dtype"] for d in interpreter.get_input_details()
            + interpreter.get_output_details()] == [np.float32, np.float32]
    expected = run_graph_def(stripped, feeds)
    np.testing.assert_allclose(run_tflite(int8, feeds["input"], **run_options), expected,
                               atol=0.05 * np.abs(expected).max(), rtol=0)


def quantization_scales(model):
    """{kernel shape: number of quantization scales} of a TFLite model's conv and fc kernels."""
    return {tuple(d["shape"]): len(d["quantization_parameters"]["scales"])
            for d in tflite_interpreter(model).get_tensor_details()
            if tuple(d["shape"]) in CONV_FC_KERNELS}


def test_int8_per_tensor_has_one_scale_per_kernel_and_a_smaller_file(sparse_conv_fc):
    _, stripped, feeds = sparse_conv_fc
    options = {"quantize": "int8", "representative_data": calibration_images()}
    per_channel, _ = converted(stripped, ["output"], **options)
    per_tensor, run_options = converted(stripped, ["output"], per_channel=False, **options)
    # Per channel: one scale per output channel (the last axis of a TFLite conv kernel is
    # its input depth, the first its outputs); fully-connected kernels too from TF 2.17 or
    # so, one scale on 2.12-2.16.
    scales = quantization_scales(per_channel)
    assert {shape: scales[shape] for shape in CONV_FC_KERNELS if len(shape) == 4} == {
        shape: shape[0] for shape in CONV_FC_KERNELS if len(shape) == 4}
    assert all(scales[shape] in (1, shape[0]) for shape in CONV_FC_KERNELS if len(shape) == 2)
    assert quantization_scales(per_tensor) == {shape: 1 for shape in CONV_FC_KERNELS}
    assert len(per_tensor) < len(per_channel)
    expected = run_graph_def(stripped, feeds)
    np.testing.assert_allclose(run_tflite(per_tensor, feeds["input"], **run_options), expected,
                               atol=0.05 * np.abs(expected).max(), rtol=0)


def test_dynamic_range_tflite_keeps_kernels_sparse_and_runs(sparse_conv_fc):
    """Weights of 1,024 values or more become int8; the 800-value first conv stays float. On
    TF 2.21 XNNPACK refuses it, and the export says so."""
    _, stripped, feeds = sparse_conv_fc
    sparse_float = export.to_tflite(stripped, ["output"])
    dynamic, run_options = converted(stripped, ["output"], quantize="dynamic")
    assert len(dynamic) <= 0.55 * len(sparse_float), (len(dynamic), len(sparse_float))
    dtypes, sparse = kernels(dynamic)
    assert sparse == CONV_FC_KERNELS
    assert dtypes[(32, 5, 5, 1)] == "float32"
    assert {dtypes[shape] for shape in CONV_FC_KERNELS[:1] + CONV_FC_KERNELS[2:]} == {"int8"}
    expected = run_graph_def(stripped, feeds)
    np.testing.assert_allclose(run_tflite(dynamic, feeds["input"], **run_options),
                               expected, atol=0.05 * np.abs(expected).max(), rtol=0)


@pytest.fixture(scope="module")
def wide_fc():
    frozen, feeds, _ = prune_and_freeze(wide_fc_model, 0.5)
    return strip_pruning_vars_fn(frozen, ["output"]), feeds


WIDE_FC_EXAMPLES = np.random.RandomState(4).uniform(-1, 1, [16, 64]).astype(np.float32)


@pytest.mark.parametrize("data", [
    WIDE_FC_EXAMPLES,
    {"input": WIDE_FC_EXAMPLES},
    WIDE_FC_EXAMPLES[:, None],  # each entry a batch of one
    WIDE_FC_EXAMPLES.astype(np.float64),
    lambda: ([example[None]] for example in WIDE_FC_EXAMPLES),  # TF's own convention
], ids=["array", "dict", "batches", "float64", "callable"])
def test_representative_data_forms_give_the_same_model(wide_fc, data):
    stripped, _ = wide_fc
    reference = export.to_tflite(stripped, ["output"], quantize="int8",
                                 representative_data=WIDE_FC_EXAMPLES)
    assert export.to_tflite(stripped, ["output"], quantize="int8",
                            representative_data=data) == reference


@pytest.mark.parametrize("data, message", [
    (WIDE_FC_EXAMPLES[:, :60], r"representative_data\['input'\] has shape 16x60; input "
                               r"'input' of shape \?x64 takes examples of 64 \(or batches of "
                               r"\?x64\) along the first axis"),
    (WIDE_FC_EXAMPLES[0], r"has shape 64; input 'input' of shape \?x64 takes examples of 64"),
    (WIDE_FC_EXAMPLES[:0], r"representative_data\['input'\] holds 0 examples; input 'input' "
                           r"needs at least 1"),
    (WIDE_FC_EXAMPLES.astype(str), r"representative_data\['input'\] is of dtype <U\d+; input "
                                   r"'input' takes float32"),
    ({"images": WIDE_FC_EXAMPLES}, r"representative_data has an entry 'images' that is no "
                                   r"input of the model \(its inputs: input\)"),
    ({}, r"representative_data has no entry for input 'input' \(its entries: none\); give one "
         r"array per input node, keyed by its name"),
], ids=["shape", "no example axis", "empty", "dtype", "extra key", "missing key"])
def test_representative_data_errors_name_the_input(wide_fc, data, message):
    stripped, _ = wide_fc
    with pytest.raises(ValueError, match=message):
        export.to_tflite(stripped, ["output"], quantize="int8", representative_data=data)


def two_input_graph_def():
    """Inputs `scope/a` and `b` to outputs `out/sum` and `product`."""
    graph = tf.Graph()
    with graph.as_default():
        first = tf.compat.v1.placeholder(tf.float32, [None, 3], name="scope/a")
        second = tf.compat.v1.placeholder(tf.float32, [None, 3], name="b")
        weights = tf.constant(np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5)
        tf.identity(tf.matmul(first + second, weights), name="out/sum")
        tf.identity(tf.matmul(first * second, weights), name="product")
    return graph.as_graph_def()


def test_one_array_for_a_model_of_two_inputs_is_an_error():
    with pytest.raises(ValueError, match=r"representative_data is one array but the model has "
                                         r"2 inputs \(scope/a, b\): pass a dict"):
        export.to_tflite(two_input_graph_def(), ["out/sum"], quantize="int8",
                         representative_data=np.ones([4, 3], np.float32))


@pytest.mark.parametrize("options, message", [
    ({"quantize": "uint8"}, r"quantize='uint8'; allowed: None, 'dynamic', 'int8'"),
    ({"quantize": "dynamic", "float16": True},
     r"float16 and quantize='dynamic' exclude each other"),
    ({"quantize": "int8"}, r"quantize='int8' needs representative_data"),
    ({"representative_data": WIDE_FC_EXAMPLES},
     r"representative_data is used only with quantize='int8', not quantize=None"),
    ({"per_channel": False}, r"per_channel=False .* needs quantize='int8' or 'dynamic'"),
])
def test_quantize_options_are_checked(wide_fc, options, message):
    stripped, _ = wide_fc
    with pytest.raises(ValueError, match=message):
        export.to_tflite(stripped, ["output"], **options)


def saved_model_outputs(export_dir, feeds):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    return {name: value.numpy() for name, value in
            signature(**{name: tf.constant(value) for name, value in feeds.items()}).items()}


def serving_meta_graph(export_dir):
    """The MetaGraphDef that TF1's loader, as TF Serving's, loads for the `serve` tag."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        return tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))


def test_saved_model_signature_gives_the_stripped_graphs_outputs(sparse_conv_fc, tmp_path):
    frozen, stripped, feeds = sparse_conv_fc
    export_dir = tmp_path / "model"
    assert export.to_saved_model(stripped, ["output"], str(export_dir)) == str(export_dir)
    outputs = saved_model_outputs(export_dir, feeds)
    assert list(outputs) == ["output"]
    np.testing.assert_allclose(outputs["output"], run_graph_def(stripped, feeds),
                               atol=1e-6, rtol=0)
    meta_graph = serving_meta_graph(export_dir)
    signature = meta_graph.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert dict(signature.inputs)["input"].name == "input:0"
    assert pruning_var_names(frozen)  # the names the check looks for
    assert pruning_var_names(meta_graph.graph_def) == []
    assert not {node.op for node in meta_graph.graph_def.node} & {
        "VariableV2", "VarHandleOp", "Assign", "AssignVariableOp"}
    assert not os.path.exists(export_dir / "variables" / "variables.index")
    assert os.listdir(tmp_path) == ["model"]  # no temporary directory left


def test_saved_model_keys_are_the_node_names(tmp_path):
    graph_def = two_input_graph_def()
    feeds = {"scope/a": np.array([[1, 2, 3]], np.float32), "b": np.full([1, 3], 0.5, np.float32)}
    export.to_saved_model(graph_def, "out/sum,product", str(tmp_path / "model"))
    outputs = saved_model_outputs(tmp_path / "model", feeds)
    assert sorted(outputs) == ["out/sum", "product"]
    for name in outputs:
        np.testing.assert_allclose(outputs[name], run_graph_def(graph_def, feeds, name),
                                   atol=1e-6, rtol=0)


def test_saved_model_keeps_an_existing_directory_unless_overwrite(wide_fc, tmp_path):
    stripped, feeds = wide_fc
    export_dir = tmp_path / "model"
    export_dir.mkdir()
    (export_dir / "precious").write_text("")
    with pytest.raises(FileExistsError, match="model already exists; pass overwrite=True"):
        export.to_saved_model(stripped, ["output"], str(export_dir))
    assert os.listdir(export_dir) == ["precious"]
    export.to_saved_model(stripped, ["output"], str(export_dir), overwrite=True)
    assert "precious" not in os.listdir(export_dir)
    np.testing.assert_allclose(saved_model_outputs(export_dir, feeds)["output"],
                               run_graph_def(stripped, feeds), atol=1e-6, rtol=0)
    assert os.listdir(tmp_path) == ["model"]


def test_saved_model_leaves_nothing_when_the_graph_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Output node 'outptu' is not in the graph"):
        export.to_saved_model(two_input_graph_def(), ["outptu"], str(tmp_path / "model"))
    assert os.listdir(tmp_path) == []


def test_int8_refuses_weights_the_converter_stores_in_blocks():
    """The fc model's 4- and 15-input layers: the converter picks 1x4 blocks for them, and
    TFLite's int8 kernel then gives zeros; without the sparse format the model is right."""
    frozen, feeds, _ = prune_and_freeze(fc_model_with_apply_mask, 0.5)
    stripped = strip_pruning_vars_fn(frozen, ["output"])
    examples = np.random.RandomState(5).uniform(-1, 1, [32, 4]).astype(np.float32)
    with pytest.raises(ValueError, match=r"The int8 converter stored fc0/MatMul.* in sparse "
                                         r"blocks, .* export without the sparse format "
                                         r"\(sparse=False; strip_pruning_vars --no_sparse\)"):
        export.to_tflite(stripped, ["output"], quantize="int8", representative_data=examples)
    dense = export.to_tflite(stripped, ["output"], sparse=False, quantize="int8",
                             representative_data=examples)
    expected = run_graph_def(stripped, feeds)
    # 8-bit steps through three layers of random normal weights: within 10% of the range.
    np.testing.assert_allclose(run_tflite(dense, feeds["input"]), expected,
                               atol=0.1 * np.abs(expected).max(), rtol=0)
