"""Sparse TFLite export of a stripped graph.

A stripped graph stores its zeros densely, so only a sparse format makes the model smaller:
`to_tflite` converts with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`, which keeps mostly-zero
weight tensors in a compressed sparse layout (a 90%-sparse conv+fc net: 13.1 MB -> 1.98 MB).
`float16=True` also stores the weights as float16, as the TF-MOT pruning guide does.

    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    open("model.tflite", "wb").write(to_tflite(stripped, ["logits"]))
"""

import tensorflow as tf

from model_pruning.graphdef import check_node_names, normalize_node_names, reachable_nodes


def placeholder_inputs(graph_def, output_names):
    """Names of the Placeholder nodes the outputs depend on, in graph order."""
    output_names = normalize_node_names(output_names, "output_names")
    check_node_names(output_names, (node.name for node in graph_def.node))
    needed = reachable_nodes(graph_def, output_names)
    return [node.name for node in graph_def.node
            if node.name in needed and node.op == "Placeholder"]


def to_tflite(graph_def, output_names, input_names=None, sparse=True, float16=False):
    """Converts a frozen GraphDef to a TFLite flatbuffer.

    The graph is imported inside a wrapped function's own graph, so the caller's default
    graph is untouched.

    Args:
      graph_def: a frozen GraphDef, normally the output of `strip_pruning_vars_fn`.
      output_names: output node names (list or comma-separated string).
      input_names: input node names; default: the placeholders the outputs depend on.
      sparse: store mostly-zero weights in TFLite's sparse format.
      float16: store weights as float16 (they are dequantized to float32 at load time).
    Returns:
      The model as bytes.
    Raises:
      ValueError: on a missing node or when the outputs depend on no placeholder.
    """
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

    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    tensor = wrapped.graph.get_tensor_by_name
    function = wrapped.prune(feeds=[tensor(name + ":0") for name in input_names],
                             fetches=[tensor(name + ":0") for name in output_names])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], wrapped)
    optimizations = []
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if float16:
        optimizations.append(tf.lite.Optimize.DEFAULT)
        converter.target_spec.supported_types = [tf.float16]
    converter.optimizations = optimizations
    return converter.convert()
