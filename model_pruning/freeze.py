"""Freeze a checkpoint into a GraphDef: variables become constants.

`graph_def_from_checkpoint` finds the checkpoint (the latest one of a directory, or a given
prefix), imports its meta graph into a private tf.Graph and replaces every variable the outputs
need by a constant read from the checkpoint. A training graph that reads its input through
tf.data or a queue is frozen with `input_node_names`: those tensors become placeholders and
the input pipeline is left out.

    frozen = graph_def_from_checkpoint("/tmp/train", ["logits"],
                                       input_node_names=["IteratorGetNext:0"])

`find_checkpoint`, `open_checkpoint` and `read_tensor` find and read checkpoints with errors
of one line, for `inspect_checkpoint` too.
"""

import gc
import logging
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from model_pruning.graphdef import (VARIABLE_OPS, check_node_names, normalize_node_names,
                                    normalize_tensor_names, one_line, reachable_nodes, ref_name,
                                    tensor_id, unique_name)

_LOG = logging.getLogger(__name__)

# Op types of the training input pipeline: tf.data datasets and iterators, queues, readers.
_INPUT_PIPELINE_OP = re.compile(r"Dataset|Iterator|Queue|Reader")


def checkpoint_path(checkpoint_dir, checkpoint=None):
    """The checkpoint prefix to use: `checkpoint` if given (as is, or inside
    `checkpoint_dir`), else the latest checkpoint of `checkpoint_dir`.

    Raises:
      ValueError: naming the directory and what it holds when no checkpoint is found, or
        when the checkpoint has no meta graph to freeze.
    """
    prefix = find_checkpoint(checkpoint_dir, checkpoint)
    if not tf.io.gfile.exists(prefix + ".meta"):
        raise ValueError(f"Checkpoint {prefix} has no meta graph {prefix}.meta (was it saved "
                         "with write_meta_graph=False?); freezing needs the saved graph")
    return prefix


def find_checkpoint(checkpoint_dir, checkpoint=None):
    """`checkpoint` (as is, or inside `checkpoint_dir`) if given, else the latest checkpoint
    of `checkpoint_dir`.

    Raises:
      ValueError: naming the directory and what it holds when no checkpoint is found.
    """
    if not checkpoint:
        return _latest_checkpoint(checkpoint_dir)
    candidates = [checkpoint]
    if checkpoint_dir and not os.path.isabs(checkpoint):
        candidates.append(os.path.join(checkpoint_dir, checkpoint))
    prefix = next((p for p in candidates if tf.io.gfile.exists(p + ".index")
                   or tf.io.gfile.exists(p + ".meta")), None)
    if prefix is None:
        raise ValueError(f"Checkpoint {checkpoint!r} not found: none of "
                         f"{', '.join(p + '.index' for p in candidates)} exists")
    return prefix


def _latest_checkpoint(checkpoint_dir):
    if not checkpoint_dir:
        raise ValueError("No checkpoint_dir given: pass the training directory, e.g. "
                         "--checkpoint_dir=/tmp/train (or a prefix with --checkpoint)")
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is not None:
        return latest
    if not tf.io.gfile.isdir(checkpoint_dir):
        holds = "it does not exist"
    else:
        entries = sorted(tf.io.gfile.listdir(checkpoint_dir))
        holds = f"it holds {', '.join(entries)}" if entries else "it is empty"
        prefixes = [e[:-len(".index")] for e in entries if e.endswith(".index")]
        if prefixes:
            holds += (f"; it has no 'checkpoint' state file, pass one prefix with "
                      f"--checkpoint, e.g. {prefixes[-1]}")
    raise ValueError(f"Could not find a checkpoint at: {checkpoint_dir} ({holds})")


def open_checkpoint(prefix):
    """A reader of the checkpoint `prefix` (`tf.train.load_checkpoint`).

    Raises:
      ValueError: in one line, when its index cannot be read (missing, truncated).
    """
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"Checkpoint {prefix} cannot be read: {prefix}.index: "
                         f"{one_line(error)}") from None


def read_tensor(reader, prefix, key):
    """The value of `key` in the checkpoint, copied out of TensorFlow's memory.

    Raises:
      ValueError: in one line, when the data files are truncated or corrupt.
    """
    try:
        return np.array(reader.get_tensor(key))
    except (tf.errors.OpError, IndexError) as error:  # a truncated .data file: IndexError
        raise ValueError(f"Checkpoint {prefix} cannot be read: tensor {key}: "
                         f"{one_line(error)}") from None


def _checkpoint_keys(graph, saver):
    """Variable name -> checkpoint key, for each variable `saver` restores whole.

    Read from the saver's restore ops (an assign of output i of a RestoreV2 op), so renamed
    variables map right; sliced (partitioned) ones are left out.
    """
    if saver is None:
        return {}
    scope = saver.saver_def.restore_op_name.rpartition("/")[0] + "/"
    keys = {}
    for op in graph.get_operations():
        if op.type not in ("Assign", "AssignVariableOp") or not op.name.startswith(scope):
            continue
        value = op.inputs[1]
        while value.op.type == "Identity":
            value = value.op.inputs[0]
        if value.op.type != "RestoreV2":
            continue
        names, slices = (tf.get_static_value(tensor) for tensor in value.op.inputs[1:3])
        if names is not None and slices is not None and not slices[value.value_index]:
            keys[op.inputs[0].op.name] = names[value.value_index].decode()
    return keys


class _CheckpointValues:
    """Stands in for the session of `convert_variables_to_constants`, which only calls
    `run` on it: returns each variable's value read from the checkpoint.

    Restoring into a session and fetching the values would hold them twice (in the session
    and fetched) while the constants are built, a third copy.
    """

    def __init__(self, reader, prefix, keys):
        self._reader = reader
        self._prefix = prefix
        self._keys = keys

    def run(self, fetches):
        # A resource variable is fetched as `<name>/Read/ReadVariableOp:0`. Each value is
        # copied out of TensorFlow's memory, whose allocator (with oneDNN) keeps what is freed
        # for its own later use, so the values' memory is returned once the constants exist.
        return [read_tensor(self._reader, self._prefix,
                            self._keys[ref_name(name).removesuffix("/Read/ReadVariableOp")])
                for name in fetches]


def _placeholders(graph, tensor_names, shapes):
    """{tensor name: Placeholder NodeDef} replacing each named tensor of `graph`: its dtype,
    and its shape in `shapes` (default: its static shape).

    The placeholder of output 0 takes the node's name, so it is fed as the tensor was; that
    of output k is named `<node>_<k>` (made unique).
    """
    if shapes is not None and len(shapes) != len(tensor_names):
        raise ValueError(f"input_shapes gives {len(shapes)} shapes for the "
                         f"{len(tensor_names)} input_node_names {', '.join(tensor_names)}")
    check_node_names([name.rpartition(":")[0] for name in tensor_names],
                     (op.name for op in graph.get_operations()), kind="input")
    taken = {op.name for op in graph.get_operations()}
    placeholders = {}
    for number, name in enumerate(tensor_names):
        node_name, _, index = name.rpartition(":")
        outputs = graph.get_operation_by_name(node_name).outputs
        if not index.isdigit() or int(index) >= len(outputs):
            raise ValueError(f"Input tensor {name!r} is not in the graph: {node_name} has "
                             f"{len(outputs)} outputs, {node_name}:0 to "
                             f"{node_name}:{len(outputs) - 1}")
        tensor = outputs[int(index)]
        shape = tensor.shape if shapes is None else tf.TensorShape(shapes[number])
        if tensor.shape.rank is not None and shape.rank != tensor.shape.rank:
            raise ValueError(f"input_shapes gives {name} the shape {shape.as_list()}; the "
                             f"tensor has rank {tensor.shape.rank} (shape {tensor.shape})")
        placeholder = tf.compat.v1.NodeDef(op="Placeholder", name=node_name)
        if index != "0":
            placeholder.name = unique_name(taken, f"{node_name}_{index}")
            taken.add(placeholder.name)
        placeholder.attr["dtype"].type = tensor.dtype.as_datatype_enum
        placeholder.attr["shape"].shape.CopyFrom(shape.as_proto())
        placeholders[name] = placeholder
        _LOG.info("Input %s becomes the placeholder %s: %s %s", name, placeholder.name,
                  tensor.dtype.name, shape)
    return placeholders


def _replace_by_placeholders(graph_def, placeholders):
    """Makes the readers of each named tensor read its placeholder instead, in place.

    For output 0 the node itself becomes the placeholder (its inputs, and what only they
    needed, drop out of the outputs' sub-graph); other outputs get new nodes.
    """
    renamed = {name: placeholder.name for name, placeholder in placeholders.items()
               if not name.endswith(":0")}
    for node in graph_def.node:
        for i, ref in enumerate(node.input):
            if not ref.startswith("^") and tensor_id(ref) in renamed:
                node.input[i] = renamed[tensor_id(ref)]
    in_place = {placeholder.name: placeholder for name, placeholder in placeholders.items()
                if name.endswith(":0")}
    for node in graph_def.node:
        if node.name in in_place:
            node.CopyFrom(in_place[node.name])
    graph_def.node.extend(placeholders[name] for name in renamed)


def graph_def_from_checkpoint(checkpoint_dir, output_node_names, checkpoint=None,
                              input_node_names=None, input_shapes=None):
    """Freezes a checkpoint into a GraphDef of the outputs' sub-graph.

    The meta graph is imported into a private tf.Graph, so the caller's default graph is
    untouched and repeated calls do not accumulate. Variables the saver restores whole are
    read straight from the checkpoint, so the values are never held in a session as well.

    A training checkpoint reads its input from a pipeline (tf.data iterator, queue); name the
    tensors it yields in `input_node_names` and they become placeholders, and the pipeline,
    no longer needed, is left out.

    Args:
      checkpoint_dir: directory whose latest checkpoint is used.
      output_node_names: list of output node names (or one comma-separated string).
      checkpoint: optional checkpoint prefix to use instead of the latest one.
      input_node_names: tensors to replace by placeholders, `node` (output 0) or
        `node:index` (list or comma-separated string), e.g. `IteratorGetNext:0`.
      input_shapes: one shape per input, a list of dims with None for a free one (e.g.
        `[[None, 24, 24, 3]]`); default: each tensor's shape in the graph.
    Returns:
      The frozen GraphDef: variables replaced by constants.
    Raises:
      ValueError: when no checkpoint is found or it cannot be read, no output is given, or an
        output or input is missing.
    """
    output_node_names = normalize_node_names(output_node_names)
    if input_node_names is not None:
        input_node_names = normalize_tensor_names(input_node_names)
    prefix = checkpoint_path(checkpoint_dir, checkpoint)
    reader = open_checkpoint(prefix)
    _LOG.info("Reading the graph %s.meta", prefix)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        except (ValueError, DecodeError) as error:
            raise ValueError(f"Checkpoint {prefix} cannot be read: {prefix}.meta (truncated?): "
                             f"{one_line(error)}") from None
    check_node_names(output_node_names, (op.name for op in graph.get_operations()))
    graph_def = graph.as_graph_def()
    if input_node_names is not None:
        _replace_by_placeholders(graph_def, _placeholders(graph, input_node_names, input_shapes))
        _drop_control_inputs_on_input_pipeline(graph_def)
    # The variables freezing will fetch: it keeps colocated nodes too.
    needed = reachable_nodes(graph_def, output_node_names, colocations=True)
    variables = [node.name for node in graph_def.node
                 if node.name in needed and node.op in VARIABLE_OPS]
    _LOG.info("Freezing %d variables of %s", len(variables), prefix)
    keys = _checkpoint_keys(graph, saver)
    if all(name in keys for name in variables):  # else restore into a session, as the saver does
        frozen = _freeze(_CheckpointValues(reader, prefix, keys), graph_def, output_node_names)
    else:
        with tf.compat.v1.Session(graph=graph) as session:
            if saver is not None:
                try:
                    saver.restore(session, prefix)
                except tf.errors.OpError as error:
                    raise ValueError(f"Checkpoint {prefix} cannot be restored: "
                                     f"{one_line(error)}") from None
            frozen = _freeze(session, graph_def, output_node_names)
    _warn_if_reading_input_pipeline(frozen)
    return frozen


class _WithoutDeprecationWarnings(logging.Filter):
    """Drops TensorFlow's "... is deprecated and will be removed" log records."""

    def filter(self, record):
        return "is deprecated and will be removed" not in str(record.msg)


def _freeze(session, graph_def, output_node_names):
    """`convert_variables_to_constants`, then a collection of the reference cycles it leaves:
    they hold the returned GraphDef, which would otherwise outlive the caller's last use
    until the next garbage collection.

    It is TensorFlow's only public way to freeze a TF1 graph, and deprecated: its warning
    is dropped.
    """
    deprecation = _WithoutDeprecationWarnings()
    tf.get_logger().addFilter(deprecation)
    try:
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            session, graph_def, output_node_names)
    finally:
        tf.get_logger().removeFilter(deprecation)
    gc.collect()
    return frozen


def _is_input_pipeline(node):
    """True for tf.data datasets and iterators, queues and TF1 readers."""
    return bool(_INPUT_PIPELINE_OP.search(node.op))


def _drop_control_inputs_on_input_pipeline(graph_def):
    """Removes the control inputs by which model nodes wait for input pipeline nodes: once
    its inputs are placeholders, the model is fed and never waits for training input."""
    pipeline = {node.name for node in graph_def.node if _is_input_pipeline(node)}
    for node in graph_def.node:
        if node.name in pipeline:
            continue
        kept = [ref for ref in node.input
                if not (ref.startswith("^") and ref_name(ref) in pipeline)]
        if len(kept) < len(node.input):
            del node.input[:]
            node.input.extend(kept)


def _warn_if_reading_input_pipeline(graph_def):
    """Warns, naming the tensors to feed instead, when model nodes read input pipeline nodes."""
    pipeline = {node.name for node in graph_def.node if _is_input_pipeline(node)}
    reads = sorted({tensor_id(ref) for node in graph_def.node if node.name not in pipeline
                    for ref in node.input
                    if not ref.startswith("^") and ref_name(ref) in pipeline})
    if reads:
        _LOG.warning("The outputs read the training input pipeline at %s; to feed the model "
                     "instead, pass input_node_names=%s", ", ".join(reads), ",".join(reads))
