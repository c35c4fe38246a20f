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

from model_pruning.channel_subgraphs import lrn_over_channels, select_channels
from model_pruning.graph_edits import Edits
from model_pruning.graphdef import (Scope, check_node_names, imported, keep_reachable,
                                    masked_weight_nodes, normalize_node_names, ref_name)

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


class _KeepDense(Exception):
    """A layer's chain holds a pattern shrink does not handle; the message says which."""


def _layer_kernel(scope, node):
    """The constant kernel of a Conv2D or MatMul node, or None."""
    return scope.value(node.input[1]) if node.op in _LAYER_OPS else None


class _Chain:
    """Follows the removed output channels of one layer to the next layer, planning edits.

    `removed` maps each removed channel (in the original numbering of the current tensor) to
    the constant it holds there; channels present in the shrunk tensor are the others.
    `scope` is the graph's index, `shapes` the graph `imported` (for static shapes, dtypes).
    """

    def __init__(self, scope, shapes, output_names, layer, dead):
        self.scope = scope
        self.shapes = shapes
        self.output_names = output_names
        self.tensor = layer.name + ":0"
        self.channels = int(_layer_kernel(scope, layer).shape[-1])
        self.removed = {int(channel): 0.0 for channel in dead}
        self.edits = Edits()
        self.edits.constant(layer.name, 1).take(-1, self.present())
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
        name = ref_name(self.tensor)
        if name in self.output_names:
            raise _KeepDense(f"{name} is a graph output")
        users = self.scope.readers[self.tensor]
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
        constant = self.scope.value(node.input[other])
        self._require(constant is not None, node, "combines the chain with a non-constant")
        per_channel = self._per_channel(node, constant)
        function = _WITH_CONSTANT[node.op]
        operands = {c: constant.reshape(-1)[0] if per_channel is None else per_channel[c]
                    for c in self.removed}
        self.removed = {c: float(function(value, operands[c]) if index == 0
                                 else function(operands[c], value))
                        for c, value in self.removed.items()}
        if per_channel is not None:
            self.edits.constant(node.name, other).take(-1, self.present())

    def _pool(self, node, index):
        # Pooling a constant channel gives the same constant (padding is excluded).
        self._require(node.attr["data_format"].s in _CHANNELS_LAST
                      and node.attr["ksize"].list.i[-1] == node.attr["strides"].list.i[-1] == 1,
                      node, "is not an NHWC pool within each channel")

    def _batch_norm(self, node, index):
        self._require(index == 0 and not node.attr["is_training"].b
                      and node.attr["data_format"].s in _CHANNELS_LAST, node,
                      "is not an NHWC batch norm in inference mode")
        self._require(not any(self.scope.readers[f"{node.name}:{i}"] for i in range(1, 6)),
                      node, "has its batch statistics used")
        scale, offset, mean, variance = (self.scope.value(ref) for ref in node.input[1:5])
        self._require(all(v is not None and v.shape == (self.channels,)
                          for v in (scale, offset, mean, variance)), node,
                      "has non-constant or non-per-channel parameters")
        epsilon = node.attr["epsilon"].f
        self.removed = {c: float((value - mean[c]) / np.sqrt(variance[c] + epsilon) * scale[c]
                                 + offset[c]) for c, value in self.removed.items()}
        for index_of_parameter in range(1, 5):
            self.edits.constant(node.name, index_of_parameter).take(0, self.present())

    def _lrn(self, node, index):
        self._require(index == 0, node, "does not normalize the chain")
        present, values = self.present(), dict(self.removed)
        self.removed = {c: 0.0 for c, value in values.items() if value == 0.0}
        if len(self.removed) < len(values):
            self.notes.append(f"{_channels(len(values) - len(self.removed))} re-created as "
                              f"constants at {node.name} (LRN mixes them into their neighbours)")
        dtype, wanted = self.shapes.get_tensor_by_name(node.name + ":0").dtype, self.present()
        self.edits.replace_tensor(node.name + ":0", lambda scope: lrn_over_channels(
            scope, node, dtype, present, wanted, values))

    def _reshape(self, node, index):
        before = self.shapes.get_tensor_by_name(self.tensor).shape
        after = self.shapes.get_tensor_by_name(node.name + ":0").shape
        shape = self.scope.value(node.input[1])
        self._require(index == 0 and before.rank == 4 and None not in before.as_list()[1:]
                      and before[-1] == self.channels and after.rank == 2
                      and after[-1] == before[1:].num_elements()
                      and shape is not None and shape.size == 2, node,
                      "is not a constant flatten of [N, H, W, C] into [N, H*W*C]")
        positions = before[1] * before[2]
        if shape[-1] != -1:
            self.edits.constant(node.name, 1).set(np.array(
                [shape[0], positions * len(self.present())], shape.dtype))
        self.removed = {position * self.channels + c: value
                        for position in range(positions) for c, value in self.removed.items()}
        self.channels *= positions

    def _layer(self, node, index):
        kernel = _layer_kernel(self.scope, node)
        input_axis = 2 if node.op == "Conv2D" else 0
        self._require(index == 0 and kernel is not None and _layer_problem(node) is None
                      and kernel.shape[input_axis] == self.channels, node,
                      "does not take the chain as the input of a constant kernel")
        nonzero = {c: value for c, value in self.removed.items() if value != 0.0}
        bias = _bias_after(self.scope, node, kernel.shape[-1])
        padded = (node.op == "Conv2D" and node.attr["padding"].s != b"VALID"
                  and kernel.shape[:2] != (1, 1))
        if nonzero and (padded or bias is None):
            self.notes.append(f"{_channels(len(nonzero))} re-created as constants before "
                              f"{node.name}")
            present = self.present()
            self.removed = {c: 0.0 for c in self.removed if c not in nonzero}
            self._regather(present, self.present(), nonzero)
        elif nonzero:
            bias_key, bias_shape = bias
            rows = np.moveaxis(kernel, input_axis, 0)[sorted(nonzero)].astype(np.float64)
            per_row = rows.reshape(len(nonzero), -1, kernel.shape[-1]).sum(axis=1)
            fold = np.array([nonzero[c] for c in sorted(nonzero)]) @ per_row
            self.edits.constant(*bias_key).add(fold.reshape(bias_shape))
        self.edits.constant(node.name, 1).take(input_axis, self.present())
        self.consumer = node.name

    def _regather(self, present, wanted, values):
        """Plans giving the readers of the current tensor its `wanted` channels instead of the
        `present` ones, the removed ones holding their constant `values`."""
        tensor = self.shapes.get_tensor_by_name(self.tensor)
        source = tensor.op.name if tensor.value_index == 0 else self.tensor
        base, rank, dtype = f"{tensor.op.name}/shrink_regather", tensor.shape.rank, tensor.dtype
        self.edits.replace_tensor(self.tensor, lambda scope: select_channels(
            scope, base, source, rank, dtype, present, wanted, values))


def _channels(count):
    return f"{count} channel{'' if count == 1 else 's'}"


def _layer_problem(node):
    """Why a Conv2D or MatMul cannot be shrunk whatever its neighbours, or None."""
    if node.op == "Conv2D" and node.attr["data_format"].s not in _CHANNELS_LAST:
        return f"data_format {node.attr['data_format'].s.decode()} is not supported"
    if node.op == "MatMul" and (node.attr["transpose_a"].b or node.attr["transpose_b"].b):
        return "a transposed MatMul is not supported"
    return None


def _bias_after(scope, layer, channels):
    """((node name, input index), shape) of the constant bias added right after `layer`."""
    users = scope.readers[layer.name + ":0"]
    if len(users) != 1:
        return None
    node, index = users[0]
    if node.op not in ("BiasAdd", "Add", "AddV2") or (
            node.op == "BiasAdd" and (index != 0
                                      or node.attr["data_format"].s not in _CHANNELS_LAST)):
        return None
    bias = scope.value(node.input[1 - index])
    if bias is None or bias.size != channels or bias.shape[-1] != channels:
        return None
    return (node.name, 1 - index), bias.shape


def _plan_layer(scope, shapes, output_node_names, layer, edits, notes):
    """Plans the shrinking of one layer into `edits`, or notes why it stays as it is."""
    kernel = _layer_kernel(scope, layer)
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
        chain = _Chain(scope, shapes, output_node_names, layer, dead)
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


def _flops(scope, shapes, node):
    """Multiply-adds x 2 of a Conv2D or MatMul per example, or None if the size is unknown."""
    kernel_size = _layer_kernel(scope, node).size
    if node.op == "MatMul":
        return 2 * kernel_size
    positions = shapes.get_tensor_by_name(node.name + ":0").shape[1:3]
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
    scope, shapes = Scope(shrunk.node), imported(shrunk)
    layers = [node for node in shrunk.node if _layer_kernel(scope, node) is not None]
    before = {node.name: (_layer_kernel(scope, node).shape, _flops(scope, shapes, node))
              for node in layers}
    edits, notes = Edits(), collections.defaultdict(list)
    for layer in layers:
        _plan_layer(scope, shapes, output_node_names, layer, edits, notes)
    edits.apply(scope)
    keep_reachable(shrunk, output_node_names)
    for node in shrunk.node:
        if "_output_shapes" in node.attr:  # stale once channels are gone
            del node.attr["_output_shapes"]
    after, after_shapes = Scope(shrunk.node), imported(shrunk)
    report = [LayerShrink(name, list(shape), list(_layer_kernel(after, after.by_name[name]).shape),
                          flops, _flops(after, after_shapes, after.by_name[name]),
                          "; ".join(notes[name]))
              for name, (shape, flops) in before.items() if name in after.by_name]
    return ShrinkResult(shrunk, report)
