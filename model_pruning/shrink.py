"""Shrink a stripped graph: remove the output channels whose weights are all masked.

Filter and neuron pruning (`block_dims_map=[conv1:-1x1]`, or the taylor criterion) leave whole
kernel columns at zero after `strip_pruning_vars_fn`, yet each such channel still costs a full
convolution. `shrink_graph_def` removes the channel from the layer that produces it (kernel
column, bias, batch-norm parameters) and the matching input slice of the layer that consumes
it, so the graph computes less and gives the same outputs:

    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    shrunk, layers = shrink_graph_def(stripped, ["logits"])

A removed channel is not zero downstream: it holds its bias b, then relu(b), and so on. Shrink
follows that per-channel constant along the chain and, at the consumer,
* folds it into the consumer's bias when the consumer is a MatMul, a VALID or 1x1 Conv2D, and
  a bias follows it (a padded conv sees the constant only partly at the borders);
* otherwise re-creates the channel as a constant just before the consumer.
LRN sums squares over a window of channel positions, so removing even an all-zero channel
would shift the windows: LRN is rewritten to sum the remaining channels at their original
positions, removed ones counting with their constant. A removed channel whose constant is not
zero comes out of LRN input-dependent, so from there on it is re-created and kept.

Chains understood, from a Conv2D (NHWC) or MatMul with a constant kernel to the next one:
Identity, Relu, Relu6, BiasAdd / Add / AddV2 / Sub / Mul with a per-channel or scalar constant,
FusedBatchNorm in inference mode, MaxPool, AvgPool, LRN, and a Reshape that flattens
[N, H, W, C] into [N, H*W*C] for a MatMul. A layer whose chain holds anything else, feeds
several ops or reaches a graph output is kept dense, and its report says why.
"""

import collections

import numpy as np
import tensorflow as tf

from model_pruning.strip_pruning_vars_lib import (check_node_names, keep_reachable,
                                                  masked_weight_nodes, normalize_node_names)

LayerShrink = collections.namedtuple(
    "LayerShrink", ["name", "shape_before", "shape_after", "flops_before", "flops_after", "note"])
LayerShrink.__doc__ = """One Conv2D or MatMul with a constant kernel: kernel shapes, FLOPs per
example (2 per multiply-add; None if the output size is unknown) and what shrink did."""

ShrinkResult = collections.namedtuple("ShrinkResult", ["graph_def", "layers"])

_LAYER_OPS = ("Conv2D", "MatMul")
_ELEMENTWISE = {
    "Identity": lambda value: value,
    "Relu": lambda value: max(value, 0.0),
    "Relu6": lambda value: min(max(value, 0.0), 6.0),
}
_WITH_CONSTANT = {"BiasAdd": np.add, "Add": np.add, "AddV2": np.add, "Sub": np.subtract,
                  "Mul": np.multiply}
_BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_CHANNELS_LAST = (b"", b"NHWC")


def _node_name(ref):
    return ref.lstrip("^").split(":")[0]


def _tensor_id(ref):
    """`a` -> `a:0`; `a:1` stays."""
    return ref if ":" in ref else ref + ":0"


class _KeepDense(Exception):
    """A layer's chain holds a pattern shrink does not handle; the message says which."""


class _Graph:
    """The nodes of a GraphDef, the users of each tensor, constants and static shapes."""

    def __init__(self, graph_def):
        self.graph_def = graph_def
        self.nodes = {node.name: node for node in graph_def.node}
        self.users = collections.defaultdict(list)  # tensor id -> [(node, input index)]
        self.references = collections.Counter()  # node name -> references, control ones too
        for node in graph_def.node:
            for index, ref in enumerate(node.input):
                self.references[_node_name(ref)] += 1
                if not ref.startswith("^"):
                    self.users[_tensor_id(ref)].append((node, index))
        self._tf_graph = tf.Graph()
        with self._tf_graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")

    def tensor(self, tensor_id):
        return self._tf_graph.get_tensor_by_name(tensor_id)

    def const_path(self, ref):
        """The nodes from `ref` through Identity nodes to a Const, or None if it is no Const."""
        path = []
        node = self.nodes.get(_node_name(ref))
        while node is not None and node.op == "Identity":
            path.append(node)
            node = self.nodes.get(_node_name(node.input[0]))
        return path + [node] if node is not None and node.op == "Const" else None

    def value(self, ref):
        path = self.const_path(ref)
        return None if path is None else tf.make_ndarray(path[-1].attr["value"].tensor)

    def layer_kernel(self, node):
        """The constant kernel of a Conv2D or MatMul node, or None."""
        return self.value(node.input[1]) if node.op in _LAYER_OPS else None


class _Edits:
    """Changes planned in the original channel numbering, applied together at the end.

    Constant inputs, keyed by (node name, input index): `sets` replace the value, `adds` are
    added to it, then `takes` keep the given indices along an axis. `regathers` map a tensor
    id, and `lrns` an LRN node name, to (channels of the input after shrinking, channels the
    users need, constant value of each removed channel).
    """

    def __init__(self):
        self.sets, self.adds, self.takes, self.regathers, self.lrns = {}, {}, {}, {}, {}

    def take(self, key, axis, kept):
        self.takes.setdefault(key, []).append((axis, list(kept)))

    def add(self, key, value):
        self.adds[key] = self.adds.get(key, 0.0) + value

    def merge(self, other):
        for key, value in other.adds.items():
            self.add(key, value)
        for key, takes in other.takes.items():
            self.takes.setdefault(key, []).extend(takes)
        self.sets.update(other.sets)
        self.regathers.update(other.regathers)
        self.lrns.update(other.lrns)


class _Chain:
    """Follows the removed output channels of one layer to the next layer, planning edits.

    `removed` maps each removed channel (in the original numbering of the current tensor) to
    the constant it holds there; channels present in the shrunk tensor are the others.
    """

    def __init__(self, graph, output_names, layer, dead):
        self.graph = graph
        self.output_names = output_names
        self.tensor = layer.name + ":0"
        self.channels = int(graph.layer_kernel(layer).shape[-1])
        self.removed = {int(channel): 0.0 for channel in dead}
        self.edits = _Edits()
        self.edits.take((layer.name, 1), -1, self.present())
        self.notes = []
        self.consumer = None

    def present(self):
        return [c for c in range(self.channels) if c not in self.removed]

    def follow(self):
        """Plans the edits up to the consumer layer. Raises _KeepDense."""
        handlers = {"LRN": self._lrn, "Reshape": self._reshape, "MaxPool": self._pool,
                    "AvgPool": self._pool, **{op: self._layer for op in _LAYER_OPS},
                    **{op: self._elementwise for op in _ELEMENTWISE},
                    **{op: self._with_constant for op in _WITH_CONSTANT},
                    **{op: self._batch_norm for op in _BATCH_NORMS}}
        while self.removed and self.consumer is None:
            node, index = self._only_user()
            handler = handlers.get(node.op)
            if handler is None:
                raise _KeepDense(f"{node.name} ({node.op}) is not an op shrink understands")
            handler(node, index)
            self.tensor = node.name + ":0"

    def _only_user(self):
        name = _node_name(self.tensor)
        if name in self.output_names:
            raise _KeepDense(f"{name} is a graph output")
        users = self.graph.users[self.tensor]
        if len(users) != 1:
            names = ", ".join(node.name for node, _ in users) or "nothing"
            raise _KeepDense(f"{self.tensor} feeds {len(users)} ops ({names})")
        return users[0]

    def _require(self, condition, node, what):
        if not condition:
            raise _KeepDense(f"{node.name} ({node.op}) {what}")

    def _elementwise(self, node, index):
        function = _ELEMENTWISE[node.op]
        self.removed = {c: function(value) for c, value in self.removed.items()}

    def _per_channel(self, node, value):
        """A constant input as one value per channel; None when it is a single value."""
        if value.size == 1:
            return None
        self._require(value.shape[-1] == self.channels and value.size == self.channels, node,
                      f"has a constant of shape {list(value.shape)}, not one value per channel")
        return value.reshape(-1)

    def _with_constant(self, node, index):
        if node.op == "BiasAdd":
            self._require(index == 0 and node.attr["data_format"].s in _CHANNELS_LAST, node,
                          "is not a channels-last bias of the chain")
        other = 1 - index
        constant = self.graph.value(node.input[other])
        self._require(constant is not None, node, "combines the chain with a non-constant")
        per_channel = self._per_channel(node, constant)
        function = _WITH_CONSTANT[node.op]
        operands = {c: constant.reshape(-1)[0] if per_channel is None else per_channel[c]
                    for c in self.removed}
        self.removed = {c: float(function(value, operands[c]) if index == 0
                                 else function(operands[c], value))
                        for c, value in self.removed.items()}
        if per_channel is not None:
            self.edits.take((node.name, other), -1, self.present())

    def _pool(self, node, index):
        # Pooling a constant channel gives the same constant (padding is excluded).
        self._require(node.attr["data_format"].s in _CHANNELS_LAST
                      and node.attr["ksize"].list.i[-1] == node.attr["strides"].list.i[-1] == 1,
                      node, "is not an NHWC pool within each channel")

    def _batch_norm(self, node, index):
        self._require(index == 0 and not node.attr["is_training"].b
                      and node.attr["data_format"].s in _CHANNELS_LAST, node,
                      "is not an NHWC batch norm in inference mode")
        self._require(not any(self.graph.users[f"{node.name}:{i}"] for i in range(1, 6)), node,
                      "has its batch statistics used")
        scale, offset, mean, variance = (self.graph.value(ref) for ref in node.input[1:5])
        self._require(all(v is not None and v.shape == (self.channels,)
                          for v in (scale, offset, mean, variance)), node,
                      "has non-constant or non-per-channel parameters")
        epsilon = node.attr["epsilon"].f
        self.removed = {c: float((value - mean[c]) / np.sqrt(variance[c] + epsilon) * scale[c]
                                 + offset[c]) for c, value in self.removed.items()}
        for index_of_parameter in range(1, 5):
            self.edits.take((node.name, index_of_parameter), 0, self.present())

    def _lrn(self, node, index):
        self._require(index == 0, node, "does not normalize the chain")
        present, values = self.present(), dict(self.removed)
        self.removed = {c: 0.0 for c, value in values.items() if value == 0.0}
        if len(self.removed) < len(values):
            self.notes.append(f"{_channels(len(values) - len(self.removed))} re-created as "
                              f"constants at {node.name} (LRN mixes them into their neighbours)")
        self.edits.lrns[node.name] = (present, self.present(), values)

    def _reshape(self, node, index):
        before = self.graph.tensor(self.tensor).shape
        after = self.graph.tensor(node.name + ":0").shape
        shape = self.graph.value(node.input[1])
        self._require(index == 0 and before.rank == 4 and None not in before.as_list()[1:]
                      and before[-1] == self.channels and after.rank == 2
                      and after[-1] == before[1:].num_elements()
                      and shape is not None and shape.size == 2, node,
                      "is not a constant flatten of [N, H, W, C] into [N, H*W*C]")
        positions = before[1] * before[2]
        if shape[-1] != -1:
            self.edits.sets[(node.name, 1)] = np.array(
                [shape[0], positions * len(self.present())], shape.dtype)
        self.removed = {position * self.channels + c: value
                        for position in range(positions) for c, value in self.removed.items()}
        self.channels *= positions

    def _layer(self, node, index):
        kernel = self.graph.layer_kernel(node)
        input_axis = 2 if node.op == "Conv2D" else 0
        self._require(index == 0 and kernel is not None and _layer_problem(node) is None
                      and kernel.shape[input_axis] == self.channels, node,
                      "does not take the chain as the input of a constant kernel")
        nonzero = {c: value for c, value in self.removed.items() if value != 0.0}
        bias = _bias_after(self.graph, node, kernel.shape[-1])
        padded = (node.op == "Conv2D" and node.attr["padding"].s != b"VALID"
                  and kernel.shape[:2] != (1, 1))
        if nonzero and (padded or bias is None):
            self.notes.append(f"{_channels(len(nonzero))} re-created as constants before "
                              f"{node.name}")
            present = self.present()
            self.removed = {c: 0.0 for c in self.removed if c not in nonzero}
            self.edits.regathers[self.tensor] = (present, self.present(), nonzero)
        elif nonzero:
            bias_key, bias_shape = bias
            rows = np.moveaxis(kernel, input_axis, 0)[sorted(nonzero)].astype(np.float64)
            per_row = rows.reshape(len(nonzero), -1, kernel.shape[-1]).sum(axis=1)
            fold = np.array([nonzero[c] for c in sorted(nonzero)]) @ per_row
            self.edits.add(bias_key, fold.reshape(bias_shape))
        self.edits.take((node.name, 1), input_axis, self.present())
        self.consumer = node.name


def _channels(count):
    return f"{count} channel{'' if count == 1 else 's'}"


def _layer_problem(node):
    """Why a Conv2D or MatMul cannot be shrunk whatever its neighbours, or None."""
    if node.op == "Conv2D" and node.attr["data_format"].s not in _CHANNELS_LAST:
        return f"data_format {node.attr['data_format'].s.decode()} is not supported"
    if node.op == "MatMul" and (node.attr["transpose_a"].b or node.attr["transpose_b"].b):
        return "a transposed MatMul is not supported"
    return None


def _bias_after(graph, layer, channels):
    """((node name, input index), shape) of the constant bias added right after `layer`."""
    users = graph.users[layer.name + ":0"]
    if len(users) != 1:
        return None
    node, index = users[0]
    if node.op not in ("BiasAdd", "Add", "AddV2") or (
            node.op == "BiasAdd" and (index != 0
                                      or node.attr["data_format"].s not in _CHANNELS_LAST)):
        return None
    bias = graph.value(node.input[1 - index])
    if bias is None or bias.size != channels or bias.shape[-1] != channels:
        return None
    return (node.name, 1 - index), bias.shape


def _unique_name(names, base):
    name, suffix = base, 0
    while name in names:
        suffix += 1
        name = f"{base}_{suffix}"
    names.add(name)
    return name


def _new_node(graph, names, base, op, inputs, **attrs):
    """Appends a node named after `base` to the graph.

    Attrs are DataTypes, arrays (tensors), bytes, bools or lists of ints.
    """
    node = tf.compat.v1.NodeDef(name=_unique_name(names, base), op=op)
    node.input.extend(inputs)
    for key, value in attrs.items():
        if isinstance(value, tf.DType):
            node.attr[key].type = value.as_datatype_enum
        elif isinstance(value, np.ndarray):
            node.attr[key].tensor.CopyFrom(tf.make_tensor_proto(value))
        elif isinstance(value, bytes):
            node.attr[key].s = value
        elif isinstance(value, bool):
            node.attr[key].b = value
        else:
            node.attr[key].list.i.extend(value)
    graph.graph_def.node.append(node)
    return node.name


def _constant(graph, names, base, value):
    return _new_node(graph, names, base, "Const", [], dtype=tf.as_dtype(value.dtype),
                     value=value)


def _write_constant(graph, names, node, index, value):
    """Gives input `index` of `node` the constant `value`: in place when nothing else reads
    the Const (or the Identity nodes before it), else as a new Const."""
    path = graph.const_path(node.input[index])
    if all(graph.references[step.name] == 1 for step in path):
        path[-1].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    else:
        node.input[index] = _constant(graph, names, f"{node.name}/shrunk_input_{index}", value)


def _select_channels(graph, names, base, source, rank, dtype, present, wanted, values):
    """A new tensor holding `wanted` channels made from `source` (of rank 4 or 2), whose last
    axis holds `present`; returns its name.

    The channels are moved by a 1x1 Conv2D (MatMul for rank 2) with a 0/1 kernel and the
    missing ones get their constant from a BiasAdd. For finite activations this is exact
    (products by 1 and 0, sums with zeros) and on CPU several times faster than a GatherV2 on
    the last axis.
    """
    position = {channel: i for i, channel in enumerate(present)}
    selection = np.zeros([len(present), len(wanted)], dtype.as_numpy_dtype)
    for column, channel in enumerate(wanted):
        if channel in position:
            selection[position[channel], column] = 1
    if rank == 4:
        selected = _new_node(graph, names, base + "/select", "Conv2D",
                             [source, _constant(graph, names, base + "/selection",
                                                selection[None, None])],
                             T=dtype, strides=[1, 1, 1, 1], padding=b"VALID",
                             data_format=b"NHWC")
    else:
        selected = _new_node(graph, names, base + "/select", "MatMul",
                             [source, _constant(graph, names, base + "/selection", selection)],
                             T=dtype, transpose_a=False, transpose_b=False)
    constants = np.array([0.0 if c in position else values[c] for c in wanted],
                         dtype.as_numpy_dtype)
    if not constants.any():
        return selected
    return _new_node(graph, names, base + "/constants", "BiasAdd",
                     [selected, _constant(graph, names, base + "/values", constants)],
                     T=dtype, data_format=b"NHWC")


def _redirect(graph, tensor_id, ref, first_new_node):
    """Points every data input that reads `tensor_id` at `ref`, except in the nodes appended
    from position `first_new_node` on (those that compute `ref` from it)."""
    for node in graph.graph_def.node[:first_new_node]:
        for index, input_ref in enumerate(node.input):
            if not input_ref.startswith("^") and _tensor_id(input_ref) == tensor_id:
                node.input[index] = ref


def _insert_regather(graph, names, tensor_id, present, wanted, values):
    """Gives the users of `tensor_id` the `wanted` channels instead of `present`."""
    first_new_node = len(graph.graph_def.node)
    tensor = graph.tensor(tensor_id)
    source = tensor.op.name if tensor.value_index == 0 else tensor_id
    selected = _select_channels(graph, names, f"{tensor.op.name}/shrink_regather", source,
                                tensor.shape.rank, tensor.dtype, present, wanted, values)
    _redirect(graph, tensor_id, selected, first_new_node)


def _rewrite_lrn(graph, names, lrn, present, wanted, values):
    """Replaces `lrn` by the same normalization computed from the `present` channels only.

    LRN divides channel j by (bias + alpha * s_j)^beta, where s_j sums the squares of the
    channels within depth_radius positions of j. A removed channel still counts there with
    its constant squared, at its original position; removing it outright would shift the
    window. So s is a 1x1 Conv2D of the squares with a band kernel plus those constants,
    and the output holds the `wanted` channels.
    """
    first_new_node = len(graph.graph_def.node)
    dtype = graph.tensor(lrn.name + ":0").dtype
    numpy_dtype = dtype.as_numpy_dtype
    radius, bias = lrn.attr["depth_radius"].i, lrn.attr["bias"].f
    alpha, beta = lrn.attr["alpha"].f, lrn.attr["beta"].f
    band = np.abs(np.subtract.outer(present, wanted)) <= radius
    constant_squares = np.array([sum(value ** 2 for c, value in values.items()
                                     if abs(c - channel) <= radius) for channel in wanted])
    base = f"{lrn.name}/shrunk"
    square = _new_node(graph, names, base + "/square", "Square", [lrn.input[0]], T=dtype)
    sums = _new_node(graph, names, base + "/window_sums", "Conv2D",
                     [square, _constant(graph, names, base + "/band",
                                        (alpha * band).astype(numpy_dtype)[None, None])],
                     T=dtype, strides=[1, 1, 1, 1], padding=b"VALID", data_format=b"NHWC")
    denominator = _new_node(
        graph, names, base + "/denominator", "BiasAdd",
        [sums, _constant(graph, names, base + "/offset",
                         (bias + alpha * constant_squares).astype(numpy_dtype))],
        T=dtype, data_format=b"NHWC")
    # exp(-beta * log(d)) is d^-beta; the Pow kernel is about 3x slower on CPU.
    log = _new_node(graph, names, base + "/log", "Log", [denominator], T=dtype)
    exponent = _new_node(graph, names, base + "/times_minus_beta", "Mul",
                         [log, _constant(graph, names, base + "/minus_beta",
                                         np.array(-beta, numpy_dtype))], T=dtype)
    scale = _new_node(graph, names, base + "/scale", "Exp", [exponent], T=dtype)
    numerator = lrn.input[0]
    if present != wanted:
        numerator = _select_channels(graph, names, base, numerator, 4, dtype, present, wanted,
                                     values)
    output = _new_node(graph, names, base + "/output", "Mul", [numerator, scale], T=dtype)
    _redirect(graph, lrn.name + ":0", output, first_new_node)


def _apply(graph, edits):
    names = set(graph.nodes)
    for key in sorted(set(edits.sets) | set(edits.adds) | set(edits.takes)):
        node = graph.nodes[key[0]]
        value = edits.sets.get(key)
        if value is None:
            value = graph.value(node.input[key[1]])
        if key in edits.adds:
            value = (value + edits.adds[key]).astype(value.dtype)
        for axis, kept in edits.takes.get(key, []):
            value = np.take(value, kept, axis=axis)
        _write_constant(graph, names, node, key[1], value)
    for tensor_id in sorted(edits.regathers):
        _insert_regather(graph, names, tensor_id, *edits.regathers[tensor_id])
    for name in sorted(edits.lrns):
        _rewrite_lrn(graph, names, graph.nodes[name], *edits.lrns[name])


def _plan_layer(graph, output_node_names, layer, edits, notes):
    """Plans the shrinking of one layer into `edits`, or notes why it stays as it is."""
    kernel = graph.layer_kernel(layer)
    channels = kernel.shape[-1]
    dead = np.flatnonzero(~kernel.reshape(-1, channels).any(axis=0))
    problem = _layer_problem(layer)
    if not len(dead):
        notes[layer.name].append("no output channel is fully masked")
        return
    if len(dead) == channels:
        problem = "every output channel is masked (the output is constant)"
    try:
        if problem:
            raise _KeepDense(problem)
        chain = _Chain(graph, output_node_names, layer, dead)
        chain.follow()
    except _KeepDense as reason:
        notes[layer.name].append(f"kept dense ({len(dead)} of {channels} output channels are "
                                 f"masked): {reason}")
        return
    edits.merge(chain.edits)
    notes[layer.name].insert(0, "; ".join([f"removed {len(dead)} of {channels} output channels"]
                                          + chain.notes))
    if chain.consumer is not None:
        notes[chain.consumer].append(f"removed {len(chain.removed)} of {chain.channels} input "
                                     f"rows fed by {layer.name}")


def _flops(graph, node):
    """Multiply-adds x 2 of a Conv2D or MatMul per example, or None if the size is unknown."""
    kernel_size = graph.layer_kernel(node).size
    if node.op == "MatMul":
        return 2 * kernel_size
    positions = graph.tensor(node.name + ":0").shape[1:3]
    return 2 * positions.num_elements() * kernel_size if positions.is_fully_defined() else None


def shrink_graph_def(graph_def, output_node_names):
    """Removes fully masked output channels of conv and fc layers; outputs stay the same.

    Args:
      graph_def: a stripped GraphDef (from `strip_pruning_vars_fn`); not modified.
      output_node_names: list of output node names (or one comma-separated string).
    Returns:
      ShrinkResult(graph_def, layers): the shrunk GraphDef, reduced to the outputs' sub-graph,
      and one LayerShrink per Conv2D or MatMul with a constant kernel, in graph order.
    Raises:
      ValueError: if an output node is missing or the graph still multiplies masks.
    """
    output_node_names = normalize_node_names(output_node_names)
    check_node_names(output_node_names, (node.name for node in graph_def.node))
    if any(node.op == "Mul" for _, node in masked_weight_nodes(graph_def)):
        raise ValueError("graph_def still computes mask * weight: strip it first with "
                         "strip_pruning_vars_fn")
    shrunk = tf.compat.v1.GraphDef()
    shrunk.CopyFrom(graph_def)
    graph = _Graph(shrunk)
    layers = [node for node in shrunk.node if graph.layer_kernel(node) is not None]
    before = {node.name: (graph.layer_kernel(node).shape, _flops(graph, node)) for node in layers}
    edits, notes = _Edits(), collections.defaultdict(list)
    for layer in layers:
        _plan_layer(graph, output_node_names, layer, edits, notes)
    _apply(graph, edits)
    keep_reachable(shrunk, output_node_names)
    for node in shrunk.node:
        if "_output_shapes" in node.attr:  # stale once channels are gone
            del node.attr["_output_shapes"]
    after = _Graph(shrunk)
    report = [LayerShrink(name, list(shape), list(after.layer_kernel(after.nodes[name]).shape),
                          flops, _flops(after, after.nodes[name]), "; ".join(notes[name]))
              for name, (shape, flops) in before.items() if name in after.nodes]
    return ShrinkResult(shrunk, report)
