"""Export of a stripped graph: sparse (and quantized) TFLite, and SavedModel.

A stripped graph stores its zeros densely, so only a sparse format makes the model smaller:
`to_tflite` converts with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`, which keeps mostly-zero
conv and fully-connected kernels in a compressed sparse layout, densified once when the model
loads (a 90%-sparse conv+fc net: 13.1 MB -> 1.97 MB). `float16=True` also stores the weights
as float16, as the TF-MOT pruning guide does; `quantize="int8"` quantizes weights and
activations to int8 (1.02 MB), `quantize="dynamic"` the weights only.

`to_saved_model` writes the graph, constants only, as a SavedModel for `tf.saved_model.load`
and TF Serving.

    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    open("model.tflite", "wb").write(to_tflite(stripped, ["logits"]))
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from model_pruning import compat
from model_pruning.graphdef import check_node_names, normalize_node_names, reachable_nodes
from model_pruning.output_files import OutputDirectory

QUANTIZE_MODES = ("dynamic", "int8")


class DefaultDelegateWarning(UserWarning):
    """The installed TFLite interpreter, with its default delegate, cannot prepare a model
    that runs with its built-in kernels."""


def placeholder_inputs(graph_def, output_names):
    """Names of the Placeholder nodes the outputs depend on, in graph order."""
    output_names = normalize_node_names(output_names, "output_names")
    check_node_names(output_names, (node.name for node in graph_def.node))
    needed = reachable_nodes(graph_def, output_names)
    return [node.name for node in graph_def.node
            if node.name in needed and node.op == "Placeholder"]


def _model_nodes(graph_def, output_names, input_names):
    """(input names, output names), checked; inputs default to the outputs' placeholders."""
    output_names = normalize_node_names(output_names, "output_names")
    if input_names is None:
        input_names = placeholder_inputs(graph_def, output_names)
        if not input_names:
            raise ValueError(f"The outputs {', '.join(output_names)} depend on no Placeholder; "
                             "pass input_names to say which tensors are the model's inputs "
                             "(for a graph that reads an input pipeline, freeze it with "
                             "input_node_names)")
    else:
        input_names = normalize_node_names(input_names, "input_names")
    available = [node.name for node in graph_def.node]
    check_node_names(input_names, available, kind="input")
    check_node_names(output_names, available)
    return input_names, output_names


def _shape_text(dims):
    return "x".join("?" if d is None else str(d) for d in dims) or "scalars"


def _examples_of(name, value, shape, dtype):
    """`value` as an array of batches for the input `name` of `shape` and `dtype`; see
    `representative_dataset`."""
    value = np.asarray(value)
    what = f"representative_data[{name!r}]"
    if not np.can_cast(value.dtype, dtype.as_numpy_dtype, casting="same_kind"):
        raise ValueError(f"{what} is of dtype {value.dtype}; input {name!r} takes "
                         f"{dtype.name}")
    value = value.astype(dtype.as_numpy_dtype, copy=False)
    if shape.rank is None:
        return value if value.ndim else value[None]
    dims = shape.as_list()
    batch = dims[0] if dims and dims[0] is not None else 1
    whole_batches = value.ndim == len(dims) + 1
    expected = dims if whole_batches else dims[1:]
    got = value.shape[1:]
    if value.ndim == 0 or len(got) != len(expected) or any(
            want is not None and want != size for want, size in zip(expected, got)):
        raise ValueError(f"{what} has shape {_shape_text(value.shape)}; input {name!r} of "
                         f"shape {_shape_text(dims)} takes examples of "
                         f"{_shape_text(dims[1:])} (or batches of {_shape_text(dims)}) along "
                         "the first axis")
    if len(value) < (1 if whole_batches else batch):
        raise ValueError(f"{what} holds {len(value)} examples; input {name!r} needs at least "
                         f"{batch}, its batch size")
    if whole_batches:
        return value
    count = len(value) // batch * batch
    return value[:count].reshape((-1, batch) + got)


def representative_dataset(data, inputs):
    """TF's `representative_dataset` (a callable yielding a list of arrays, one per input)
    from `data`; `inputs` are the model's input tensors.

    `data` is such a callable (returned as is), a dict {input name: array}, or for a model of
    one input an array. An array's first axis counts the examples; an example has the input's
    shape without its batch axis (examples are then fed in batches of the input's batch size,
    1 when it is free) or with it (each entry is fed as one batch).

    Raises:
      ValueError: naming the input whose array is missing, extra, of the wrong shape or dtype.
    """
    if callable(data):
        return data
    names = [tensor.op.name for tensor in inputs]
    if not isinstance(data, dict):
        if len(inputs) != 1:
            raise ValueError(f"representative_data is one array but the model has {len(inputs)} "
                             f"inputs ({', '.join(names)}): pass a dict {{input name: array}}")
        data = {names[0]: data}
    extra = sorted(set(data) - set(names))
    if extra:
        raise ValueError(f"representative_data has an entry {extra[0]!r} that is no input of "
                         f"the model (its inputs: {', '.join(names)})")
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"representative_data has no entry for input {missing[0]!r} (its "
                         f"entries: {', '.join(sorted(data)) or 'none'}); give one array per "
                         "input node, keyed by its name")
    batches = [_examples_of(tensor.op.name, data[tensor.op.name], tensor.shape, tensor.dtype)
               for tensor in inputs]
    counts = {len(b) for b in batches}
    if len(counts) > 1:
        raise ValueError("representative_data's arrays differ in their number of batches: "
                         + ", ".join(f"{name} {len(b)}" for name, b in zip(names, batches)))

    def dataset():
        for index in range(len(batches[0])):
            yield [b[index] for b in batches]
    return dataset


def _model_function(graph_def, input_names, output_names):
    """The graph as a concrete function from the input to the output tensors, imported in a
    wrapped function's own graph, so the caller's default graph is untouched; and the
    wrapped function that holds it."""
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    tensor = wrapped.graph.get_tensor_by_name
    function = wrapped.prune(feeds=[tensor(name + ":0") for name in input_names],
                             fetches=[tensor(name + ":0") for name in output_names])
    return function, wrapped


def to_tflite(graph_def, output_names, input_names=None, sparse=True, float16=False,
              quantize=None, representative_data=None, per_channel=True):
    """Converts a frozen GraphDef to a TFLite flatbuffer.

    With `sparse`, conv and fully-connected kernels that are mostly zeros are stored sparse,
    float32 or int8 alike. `quantize="int8"` is full-integer post-training quantization:
    weights and activations int8, the ranges measured on `representative_data` (see
    `representative_dataset`; a hundred or a few hundred examples); the model still takes and
    gives float32, quantizing its inputs and dequantizing its outputs itself, and the
    conversion fails if an op has no int8 kernel. `quantize="dynamic"` stores weights of 1,024
    values or more as int8 and computes in float. A model that the installed TFLite's default
    delegate (XNNPACK) cannot prepare gets a `DefaultDelegateWarning` saying how to run it:
    with the delegate off (Python: `experimental_op_resolver_type=
    tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`). Seen for a sparse
    dynamic-range model on TF 2.21 and for a sparse int8 fully-connected layer on tf-nightly
    2.23.
    `per_channel=False` gives each quantized weight one scale and zero point instead of one
    per output channel: a smaller file (the example pruned to 90%: 0.077x the dense float
    TFLite instead of 0.083x), at the risk of precision where channels' ranges differ a lot.

    Args:
      graph_def: a frozen GraphDef, normally the output of `strip_pruning_vars_fn`.
      output_names: output node names (list or comma-separated string).
      input_names: input node names; default: the placeholders the outputs depend on.
      sparse: store mostly-zero weights in TFLite's sparse format.
      float16: store weights as float16 (they are dequantized to float32 at load time).
      quantize: None, "dynamic" or "int8".
      representative_data: with quantize="int8", the calibration examples: a callable
        returning an iterable of lists of arrays, one per input (TF's convention), a dict
        {input name: array of examples} or, for one input, an array of examples.
      per_channel: with quantize, one scale per output channel of a weight (the converter's
        default), else one per weight.
    Returns:
      The model as bytes.
    Raises:
      ValueError: on a missing node, outputs that depend on no placeholder, an unknown
        `quantize`, float16 with quantize, missing or ill-fitting representative data, or an
        int8 weight the converter stored in sparse blocks (see
        `_check_no_int8_block_sparse_weights`).
    """
    if quantize not in (None,) + QUANTIZE_MODES:
        raise ValueError(f"quantize={quantize!r}; allowed: None, 'dynamic', 'int8'")
    if float16 and quantize:
        raise ValueError(f"float16 and quantize={quantize!r} exclude each other: float16 stores "
                         "weights as float16, quantize as int8")
    if quantize == "int8" and representative_data is None:
        raise ValueError("quantize='int8' needs representative_data: examples of the model's "
                         "inputs to measure the activations' ranges on")
    if representative_data is not None and quantize != "int8":
        raise ValueError(f"representative_data is used only with quantize='int8', not "
                         f"quantize={quantize!r}")
    if not per_channel and not quantize:
        raise ValueError("per_channel=False chooses how weights are quantized: it needs "
                         "quantize='int8' or 'dynamic'")
    input_names, output_names = _model_nodes(graph_def, output_names, input_names)
    function, wrapped = _model_function(graph_def, input_names, output_names)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], wrapped)
    optimizations = []
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if float16 or quantize:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if float16:
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = representative_dataset(
            representative_data, [function.graph.get_tensor_by_name(name + ":0")
                                  for name in input_names])
        # Fail rather than leave an op in float; the inputs and outputs stay float32.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not per_channel:
        compat.quantize_per_tensor(converter)
    converter.optimizations = optimizations
    with warnings.catch_warnings():
        # TF1's input statistics for int8 inputs; the inputs here stay float32.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        model = converter.convert()
    if quantize == "int8" and sparse:
        _check_no_int8_block_sparse_weights(model)
    _warn_if_default_delegate_refuses(model)
    return model


def _warn_if_default_delegate_refuses(model):
    """Warns (DefaultDelegateWarning) when the interpreter of this TensorFlow, with its default
    delegate (XNNPACK), cannot prepare `model` (see `to_tflite`). Such a model runs with the
    built-in kernels, or can be exported without the sparse format."""
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that it moves to LiteRT
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=model)
    try:
        interpreter.allocate_tensors()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[0]
        warnings.warn(
            f"TFLite's default delegate (XNNPACK) in TensorFlow {tf.__version__} cannot prepare "
            f"this model ({reason}). It runs without it: tf.lite.Interpreter(..., "
            "experimental_op_resolver_type=tf.lite.experimental.OpResolverType."
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES); or export without the sparse format "
            "(sparse=False; strip_pruning_vars --no_sparse).", DefaultDelegateWarning,
            stacklevel=3)


def _check_no_int8_block_sparse_weights(model):
    """Raises ValueError if the converter stored an int8 weight in blocks: on a fully-connected
    layer with few inputs (e.g. 4 or 15) it picks a 1x4-block layout that TFLite 2.21's int8
    kernel then multiplies to zeros. Elsewhere it densifies the weight when the model loads."""
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that it moves to LiteRT
        warnings.simplefilter("ignore")
        details = tf.lite.Interpreter(model_content=model).get_tensor_details()
    blocked = [d["name"] for d in details
               if d["sparsity_parameters"] and len(d["sparsity_parameters"]["block_map"])]
    if blocked:
        raise ValueError(f"The int8 converter stored {', '.join(blocked)} in sparse blocks, "
                         "which TFLite's int8 fully-connected kernel computes wrongly; export "
                         "without the sparse format (sparse=False; strip_pruning_vars "
                         "--no_sparse), or with per_channel=False (--per_tensor) if that avoids "
                         "the blocks")


def _tensor_info(tensor):
    return tf.compat.v1.TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum,
                                   tensor_shape=tensor.shape.as_proto())


def write_saved_model(graph_def, output_names, directory, input_names=None):
    """Writes the graph as a SavedModel into `directory`, which must be empty or missing;
    see `to_saved_model`."""
    input_names, output_names = _model_nodes(graph_def, output_names, input_names)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    tensor = graph.get_tensor_by_name
    signature = tf.compat.v1.saved_model.build_signature_def(
        inputs={name: _tensor_info(tensor(name + ":0")) for name in input_names},
        outputs={name: _tensor_info(tensor(name + ":0")) for name in output_names},
        method_name=tf.saved_model.PREDICT_METHOD_NAME)
    with tf.compat.v1.Session(graph=graph) as session:
        builder = tf.compat.v1.saved_model.Builder(directory)
        # No variables: the builder writes no checkpoint, and loaders restore none.
        builder.add_meta_graph_and_variables(
            session, [tf.saved_model.SERVING], clear_devices=True, strip_default_attrs=True,
            signature_def_map={tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature})
        builder.save()


def to_saved_model(graph_def, output_names, export_dir, input_names=None, overwrite=False):
    """Writes a frozen GraphDef as a SavedModel of constants, tagged `serve`, with one
    signature, `serving_default` (a predict signature), from the inputs to the outputs.

    The signature's keys are the node names exactly (`softmax_linear/softmax_linear_2`
    included; `loaded.signatures["serving_default"](**{name: value})` takes them), and
    `tf.saved_model.load` returns its outputs as a dict by the same names. Device placements
    are cleared. TF Serving loads `<model base path>/<version number>`: pass such a directory.
    The directory is written beside itself and renamed, so a reader never sees part of it.

    Args:
      graph_def: a frozen GraphDef, normally the output of `strip_pruning_vars_fn`.
      output_names: output node names (list or comma-separated string).
      export_dir: the SavedModel directory to write.
      input_names: input node names; default: the placeholders the outputs depend on.
      overwrite: replace an existing `export_dir`.
    Returns:
      `export_dir`.
    Raises:
      ValueError: on a missing node or outputs that depend on no placeholder.
      FileExistsError: if `export_dir` exists and `overwrite` is False.
      OSError: if `export_dir` cannot be written.
    """
    if os.path.lexists(export_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} already exists; pass overwrite=True to replace it")
    with OutputDirectory(export_dir, overwrite) as output:
        write_saved_model(graph_def, output_names, output.temp, input_names)
        output.commit()
    return export_dir
