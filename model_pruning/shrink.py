"""Shrink a stripped graph: remove the output channels whose weights are all masked.

Filter and neuron pruning (`block_dims_map=[conv1:-1x1]`, the taylor criterion, or
`channel_groups=true`) leave whole kernel columns at zero after `strip_pruning_vars_fn`, yet
each such channel still costs a full convolution. `shrink_graph_def` removes the channel from
every layer of its channel group (kernel columns, biases, batch-norm parameters, depthwise
kernels) and the matching input slice of every layer that consumes it, so the graph computes
less and gives the same outputs:

    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    shrunk, layers = shrink_graph_def(stripped, ["logits"])

Groups come from `channel_groups.find_channel_groups_in_graph_def`: the kernels a residual
add joins shrink together, and a depthwise kernel with the kernel before it; any other
Conv2D or MatMul is a group of its own. A channel is removed when every kernel of its group
has it at zero.

A removed channel is not zero downstream: it holds a constant per channel (its bias b, then
relu(b), a batch norm's offset, the sum of two such constants at a residual add, ...). Shrink
follows the channels from the group's layers through every op that reads them, computing
that constant at each tensor, and at each consumer
* folds what the removed input rows add into the consumer's bias, or into the mean of the
  batch norm right after it, when the consumer is a MatMul or a VALID or 1x1 Conv2D;
* otherwise adds it right after the consumer as a constant: one value per output channel, or
  per output position and channel for a padded conv (SAME, or VALID after a zero Pad as in
  slim's `conv2d_same`), which sees the constant only partly at the borders;
* re-creates the channel as a constant just before the consumer when that constant would
  depend on a size the static shapes leave unknown.
A depthwise conv gives 0 for a channel whose kernel is zero; a padded one re-creates a
channel holding another constant, as does a zero Pad read by anything but a VALID Conv2D.
LRN sums squares over a window of channel positions, so removing even an all-zero channel
would shift the windows: LRN is rewritten to sum the remaining channels at their original
positions, removed ones counting with their constant; a removed channel whose constant is
not zero comes out of LRN input-dependent, so from there on it is re-created and kept.

A concat along the channels is where a group's channels become slices of a wider tensor: once
every group is planned, the channels removed from its slices (at their offsets) are followed
from the concat the same way, and if that fails the groups feeding it stay dense.

Ops understood between a group's layers and its consumers: Identity, Relu, Relu6, BiasAdd /
Add / AddV2 / Sub / Mul with a per-channel or scalar constant, Add / AddV2 of two tensors of
the group (residual adds), FusedBatchNorm in inference mode, MaxPool, AvgPool, LRN, Pad,
MirrorPad, Mean / Max / Sum over other axes, Squeeze, DepthwiseConv2dNative (channel
multiplier 1), ConcatV2 along the channels, and a Reshape that flattens [N, H, W, C] into
[N, H*W*C] for a MatMul. A group whose channels reach anything else or a graph output is kept
dense, and its report says why.

`channel_multiple` keeps a multiple of that many channels in each group (some removable ones
stay, computed exactly), for shapes that suit SIMD kernels.
"""

import collections

import numpy as np
import tensorflow as tf

from model_pruning.channel_groups import find_channel_groups_in_graph_def
from model_pruning.channel_subgraphs import lrn_over_channels, select_channels
from model_pruning.graph_edits import Edits, new_constant, new_node
from model_pruning.graphdef import (Scope, check_node_names, imported, keep_reachable,
                                    masked_weight_nodes, normalize_node_names, reachable_nodes,
                                    ref_name, tensor_id)

LayerShrink = collections.namedtuple(
    "LayerShrink", ["name", "shape_before", "shape_after", "flops_before", "flops_after", "note"])
LayerShrink.__doc__ = """One Conv2D, MatMul or depthwise conv with a constant kernel: kernel
shapes, FLOPs per example (2 per multiply-add; None if the output size is unknown) and what
shrink did."""

ShrinkResult = collections.namedtuple("ShrinkResult", ["graph_def", "layers"])

_LAYER_OPS = ("Conv2D", "MatMul")
_DEPTHWISE = "DepthwiseConv2dNative"
_REPORTED_OPS = _LAYER_OPS + (_DEPTHWISE,)
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
    """A group's channels reach a pattern shrink does not handle; the message says which."""


def _layer_kernel(scope, node):
    """The constant kernel of a Conv2D or MatMul node, or None."""
    return scope.value(node.input[1]) if node.op in _LAYER_OPS else None


def _kernel(scope, node):
    """The constant kernel of a Conv2D, MatMul or depthwise conv node, or None."""
    return scope.value(node.input[1]) if node.op in _REPORTED_OPS else None


class _Space:
    """Follows removed channels from the tensors they start at to the layers that consume
    them, through every op that reads them, planning edits.

    `values[t]` maps each removed channel of tensor t (in its original numbering) to the
    constant it holds there, `sizes[t]` is the original number of channels of t; the shrunk t
    holds the others (`present(t)`). Concats along the channels are not crossed: `slices`
    lists (concat name, input index, values, size) for `_plan_concat`.

    Args:
      scope: the graph's index; shapes: the graph `imported` (static shapes, dtypes);
      output_names: graph outputs; reachable: the names of the nodes the outputs need.
    """

    def __init__(self, scope, shapes, output_names, reachable):
        self.scope = scope
        self.shapes = shapes
        self.output_names = output_names
        self.reachable = reachable
        self.values, self.sizes = {}, {}
        self.edits = Edits()
        self.notes = []
        self.consumers = []  # (layer name, removed input rows, input rows)
        self.filters = []  # (depthwise name, removed channels, channels)
        self.slices = []
        self.corrections = []  # (layer name, the constant to add to its output)
        self.pads = {}  # output of a zero Pad -> (top, left, height, width) of what it pads
        self.handled = set()
        self.waiting = {}  # add name -> (node, tensor outside the space so far)
        self.pending = collections.deque()
        self.handlers = {
            "LRN": self._lrn, "Reshape": self._reshape, "MaxPool": self._pool,
            "AvgPool": self._pool, "Pad": self._pad, "MirrorPad": self._pad,
            "Mean": self._reduce, "Max": self._reduce, "Sum": self._reduce,
            "Squeeze": self._squeeze, "ConcatV2": self._concat, _DEPTHWISE: self._depthwise,
            **{op: self._layer for op in _LAYER_OPS},
            **{op: self._elementwise for op in _ELEMENTWISE},
            **{op: self._with_constant for op in _WITH_CONSTANT},
            **{op: self._batch_norm for op in _BATCH_NORMS}}

    def start(self, tensor, values, size):
        self.values[tensor], self.sizes[tensor] = dict(values), size
        self.pending.append(tensor)

    def present(self, tensor):
        return [c for c in range(self.sizes[tensor]) if c not in self.values[tensor]]

    def follow(self):
        """Plans the edits up to every consumer. Raises _KeepDense."""
        while self.pending:
            tensor = self.pending.popleft()
            if ref_name(tensor) in self.output_names:
                raise _KeepDense(f"{ref_name(tensor)} is a graph output")
            for node, index in self.scope.readers[tensor]:
                if node.name in self.handled or node.name not in self.reachable:
                    continue
                handler = self.handlers.get(node.op)
                if handler is None:
                    raise _KeepDense(f"{node.name} ({node.op}) is not an op shrink understands")
                handler(node, index, tensor)
        if self.waiting:
            node, other = next(iter(self.waiting.values()))
            raise _KeepDense(f"{node.name} ({node.op}) adds {ref_name(other)}, which does not "
                             "hold the same channels (prune with channel_groups=true)")

    def _emit(self, node, tensor, values, size=None):
        """The output of `node` holds the channels of `tensor`: `values` are its constants."""
        self.handled.add(node.name)
        self.start(node.name + ":0", values, self.sizes[tensor] if size is None else size)

    def _require(self, condition, node, what):
        if not condition:
            raise _KeepDense(f"{node.name} ({node.op}) {what}")

    def _elementwise(self, node, index, tensor):
        function = _ELEMENTWISE[node.op]
        self._emit(node, tensor, {c: function(v) for c, v in self.values[tensor].items()})

    def _per_channel(self, node, value, size):
        """A constant input as one value per channel; None when it is a single value."""
        if value.size == 1:
            return None
        self._require(value.shape[-1] == size and value.size == size, node,
                      f"has a constant of shape {list(value.shape)}, not one value per channel")
        return value.reshape(-1)

    def _with_constant(self, node, index, tensor):
        if node.op == "BiasAdd":
            self._require(index == 0 and node.attr["data_format"].s in _CHANNELS_LAST, node,
                          "is not a channels-last bias of the group's channels")
        other = 1 - index
        constant = self.scope.value(node.input[other])
        if constant is None and node.op in ("Add", "AddV2"):
            return self._residual_add(node, index, tensor)
        self._require(constant is not None, node, "combines the channels with a non-constant")
        per_channel = self._per_channel(node, constant, self.sizes[tensor])
        function = _WITH_CONSTANT[node.op]
        operands = {c: constant.reshape(-1)[0] if per_channel is None else per_channel[c]
                    for c in self.values[tensor]}
        self._emit(node, tensor, {c: float(function(v, operands[c]) if index == 0
                                           else function(operands[c], v))
                                  for c, v in self.values[tensor].items()})
        if per_channel is not None:
            self.edits.constant(node.name, other).take(-1, self.present(tensor))

    def _residual_add(self, node, index, tensor):
        """Both operands hold the group's channels: the constants add up. Waits for the
        second operand."""
        other = tensor_id(node.input[1 - index])
        if other not in self.values:
            self.waiting[node.name] = (node, other)
            return
        self.waiting.pop(node.name, None)
        mine, theirs = self.values[tensor], self.values[other]
        self._require(mine.keys() == theirs.keys() and self.sizes[tensor] == self.sizes[other],
                      node, "adds tensors from which different channels were removed")
        self._emit(node, tensor, {c: mine[c] + theirs[c] for c in mine})

    def _pool(self, node, index, tensor):
        # Pooling a constant channel gives the same constant (padding is excluded).
        self._require(node.attr["data_format"].s in _CHANNELS_LAST
                      and node.attr["ksize"].list.i[-1] == node.attr["strides"].list.i[-1] == 1,
                      node, "is not an NHWC pool within each channel")
        self._emit(node, tensor, self.values[tensor])

    def _rank(self, tensor):
        return self.shapes.get_tensor_by_name(tensor).shape.rank

    def _reduce(self, node, index, tensor):
        axes, rank = self.scope.value(node.input[1]), self._rank(tensor)
        self._require(index == 0 and axes is not None and rank is not None
                      and all(int(axis) % rank != rank - 1 for axis in np.reshape(axes, -1)),
                      node, "does not reduce over constant axes other than the channels")
        self._emit(node, tensor, self.values[tensor])

    def _squeeze(self, node, index, tensor):
        axes, rank = list(node.attr["squeeze_dims"].list.i), self._rank(tensor)
        self._require(axes and rank is not None and all(a % rank != rank - 1 for a in axes),
                      node, "may squeeze the channel axis")
        self._emit(node, tensor, self.values[tensor])

    def _pad(self, node, index, tensor):
        paddings = self.scope.value(node.input[1])
        self._require(index == 0 and paddings is not None and not paddings[-1].any(), node,
                      "does not pad by a constant outside the channels")
        values, shape = self.values[tensor], self.shapes.get_tensor_by_name(tensor).shape
        readers = [(reader, i) for reader, i in self.scope.readers[node.name + ":0"]
                   if reader.name in self.reachable]
        if node.op == "Pad" and any(values.values()):
            # Padded with zeros a constant channel is no longer constant: fine for a VALID
            # Conv2D (its correction skips the padding, see _window), else re-created.
            if (readers and shape.rank == 4 and None not in shape[1:3]
                    and all(reader.op == "Conv2D" and i == 0
                            and reader.attr["padding"].s == b"VALID" for reader, i in readers)):
                self.pads[node.name + ":0"] = (int(paddings[1][0]), int(paddings[2][0]),
                                               shape[1], shape[2])
            else:
                values = self._recreate(node, index, tensor,
                                        {c: v for c, v in values.items() if v != 0.0})
        self._emit(node, tensor, values)

    def _depthwise(self, node, index, tensor):
        kernel, size = _kernel(self.scope, node), self.sizes[tensor]
        self._require(index == 0 and kernel is not None and kernel.shape[2:] == (size, 1)
                      and node.attr["data_format"].s in _CHANNELS_LAST, node,
                      "does not filter the channels with a constant NHWC kernel of multiplier 1")
        padded = node.attr["padding"].s != b"VALID" and kernel.shape[:2] != (1, 1)
        values, nonconstant = {}, {}
        for c, value in self.values[tensor].items():
            taps = kernel[:, :, c, 0].astype(np.float64)
            if value == 0.0 or not taps.any():
                values[c] = 0.0
            elif padded:
                nonconstant[c] = value
            else:
                values[c] = float(value * taps.sum())
        if nonconstant:  # zero padding cuts the constant at the borders
            self.notes.append(f"{_channels(len(nonconstant))} re-created as constants before "
                              f"{node.name}")
            self._recreate(node, index, tensor, nonconstant)
        self._emit(node, tensor, values)
        present = self.present(node.name + ":0")
        self.edits.constant(node.name, 1).take(2, present)
        self.filters.append((node.name, size - len(present), size))

    def _batch_norm(self, node, index, tensor):
        size = self.sizes[tensor]
        self._require(index == 0 and not node.attr["is_training"].b
                      and node.attr["data_format"].s in _CHANNELS_LAST, node,
                      "is not an NHWC batch norm in inference mode")
        self._require(not any(self.scope.readers[f"{node.name}:{i}"] for i in range(1, 6)),
                      node, "has its batch statistics used")
        scale, offset, mean, variance = (self.scope.value(ref) for ref in node.input[1:5])
        self._require(all(v is not None and v.shape == (size,)
                          for v in (scale, offset, mean, variance)), node,
                      "has non-constant or non-per-channel parameters")
        epsilon = node.attr["epsilon"].f
        self._emit(node, tensor, {
            c: float((v - mean[c]) / np.sqrt(variance[c] + epsilon) * scale[c] + offset[c])
            for c, v in self.values[tensor].items()})
        for index_of_parameter in range(1, 5):
            self.edits.constant(node.name, index_of_parameter).take(0, self.present(tensor))

    def _lrn(self, node, index, tensor):
        self._require(index == 0, node, "does not normalize the group's channels")
        present, values = self.present(tensor), dict(self.values[tensor])
        zeros = {c: 0.0 for c, value in values.items() if value == 0.0}
        if len(zeros) < len(values):
            self.notes.append(f"{_channels(len(values) - len(zeros))} re-created as "
                              f"constants at {node.name} (LRN mixes them into their neighbours)")
        self._emit(node, tensor, zeros)
        dtype = self.shapes.get_tensor_by_name(tensor).dtype
        wanted = self.present(node.name + ":0")
        self.edits.replace_tensor(node.name + ":0", lambda scope: lrn_over_channels(
            scope, node, dtype, present, wanted, values))

    def _reshape(self, node, index, tensor):
        size = self.sizes[tensor]
        before = self.shapes.get_tensor_by_name(tensor).shape
        after = self.shapes.get_tensor_by_name(node.name + ":0").shape
        shape = self.scope.value(node.input[1])
        self._require(index == 0 and before.rank == 4 and None not in before.as_list()[1:]
                      and before[-1] == size and after.rank == 2
                      and after[-1] == before[1:].num_elements()
                      and shape is not None and shape.size == 2, node,
                      "is not a constant flatten of [N, H, W, C] into [N, H*W*C]")
        positions = before[1] * before[2]
        if shape[-1] != -1:
            self.edits.constant(node.name, 1).set(np.array(
                [shape[0], positions * len(self.present(tensor))], shape.dtype))
        self._emit(node, tensor, {position * size + c: value for position in range(positions)
                                  for c, value in self.values[tensor].items()},
                   size * positions)

    def _concat(self, node, index, tensor):
        values = _data_inputs(node)[:-1]
        axis, rank = self.scope.value(_data_inputs(node)[-1]), self._rank(node.name + ":0")
        self._require(index < len(values) and axis is not None and rank is not None
                      and int(axis) % rank == rank - 1, node,
                      "does not concatenate along the channels")
        self.slices.append((node.name, index, dict(self.values[tensor]), self.sizes[tensor]))

    def _layer(self, node, index, tensor):
        kernel, size = _layer_kernel(self.scope, node), self.sizes[tensor]
        input_axis = 2 if node.op == "Conv2D" else 0
        self._require(index == 0 and kernel is not None and _layer_problem(node) is None
                      and kernel.shape[input_axis] == size, node,
                      "does not take the channels as the input of a constant kernel")
        values = self.values[tensor]
        nonzero = {c: value for c, value in values.items() if value != 0.0}
        window = self._window(node, tensor, kernel) if nonzero else None
        if window is False:
            self.notes.append(f"{_channels(len(nonzero))} re-created as constants before "
                              f"{node.name}")
            values = self._recreate(node, index, tensor, nonzero)
        elif nonzero:
            # What the removed rows add to the output: the kernel rows weighted by the
            # constants, summed over the taps that fall inside the input.
            rows = np.moveaxis(kernel, input_axis, 0)[sorted(nonzero)].astype(np.float64)
            weighted = np.tensordot([nonzero[c] for c in sorted(nonzero)], rows, axes=1)
            if window is None:
                fold = weighted.reshape(-1, kernel.shape[-1]).sum(axis=0)
            else:  # one value per output position: the padding cuts the window at the borders
                fold = np.einsum("ai,bj,abo->ijo", *window, weighted)[None]
            bias = _bias_after(self.scope, node, kernel.shape[-1]) if window is None else None
            if bias is not None:
                bias_key, bias_shape, sign = bias
                self.edits.constant(*bias_key).add(sign * fold.reshape(bias_shape))
            else:
                self.notes.append(f"{_channels(len(nonzero))} folded into a constant added "
                                  f"after {node.name}")
                self.corrections.append((node.name, fold))
        self.edits.constant(node.name, 1).take(
            input_axis, [c for c in range(size) if c not in values])
        self.consumers.append((node.name, len(values), size))
        self.handled.add(node.name)

    def _window(self, node, tensor, kernel):
        """Where the taps of Conv2D `node` fall inside its input `tensor` (before a zero Pad
        the conv reads): None if everywhere (a MatMul, a VALID or 1x1 conv), else
        ([kernel rows, output rows], [kernel columns, output columns]) of bools; False if the
        static shapes do not say."""
        if node.op != "Conv2D":
            return None
        padding = node.attr["padding"].s
        if tensor in self.pads:
            top, left, height, width = self.pads[tensor]
        elif padding == b"VALID" or kernel.shape[:2] == (1, 1):
            return None
        elif padding != b"SAME":
            return False
        else:
            top = left = None
            height, width = self.shapes.get_tensor_by_name(tensor).shape[1:3]
        out_height, out_width = self.shapes.get_tensor_by_name(node.name + ":0").shape[1:3]
        if None in (height, width, out_height, out_width):
            return False
        strides, dilations = node.attr["strides"].list.i, node.attr["dilations"].list.i or [1] * 4

        def inside(taps, outputs, size, stride, dilation, start):
            if start is None:  # SAME pads the total it needs, the smaller half first
                start = max((outputs - 1) * stride + (taps - 1) * dilation + 1 - size, 0) // 2
            position = (np.arange(outputs)[None] * stride + np.arange(taps)[:, None] * dilation
                        - start)
            return ((position >= 0) & (position < size)).astype(np.float64)

        return (inside(kernel.shape[0], out_height, height, strides[1], dilations[1], top),
                inside(kernel.shape[1], out_width, width, strides[2], dilations[2], left))

    def _recreate(self, node, index, tensor, constants):
        """Plans input `index` of `node` reading `tensor` with the removed channels
        `constants` (channel -> value) back; returns the values of the channels still
        removed there."""
        if not constants:
            return self.values[tensor]
        present = self.present(tensor)
        remaining = {c: v for c, v in self.values[tensor].items() if c not in constants}
        wanted = [c for c in range(self.sizes[tensor]) if c not in remaining]
        shape = self.shapes.get_tensor_by_name(tensor)
        base, rank, dtype = f"{ref_name(tensor)}/shrink_regather", shape.shape.rank, shape.dtype
        self.edits.replace_input(node.name, index, lambda scope, source: select_channels(
            scope, base, source, rank, dtype, present, wanted, constants))
        return remaining


def _data_inputs(node):
    return [ref for ref in node.input if not ref.startswith("^")]


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
    """((node name, input index), shape, sign) of what a constant added to the output of
    `layer` folds into: the constant bias added right after it (sign 1), or the mean of the
    inference batch norm right after it (sign -1: normalizing x + d with mean m is
    normalizing x with mean m - d). None if there is neither."""
    users = scope.readers[layer.name + ":0"]
    if len(users) != 1:
        return None
    node, index = users[0]
    if node.op in _BATCH_NORMS:
        mean = scope.value(node.input[3])
        if (index == 0 and not node.attr["is_training"].b
                and node.attr["data_format"].s in _CHANNELS_LAST
                and mean is not None and mean.shape == (channels,)):
            return (node.name, 3), mean.shape, -1.0
        return None
    if node.op not in ("BiasAdd", "Add", "AddV2") or (
            node.op == "BiasAdd" and (index != 0
                                      or node.attr["data_format"].s not in _CHANNELS_LAST)):
        return None
    bias = scope.value(node.input[1 - index])
    if bias is None or bias.size != channels or bias.shape[-1] != channels:
        return None
    return (node.name, 1 - index), bias.shape, 1.0


def _kernel_readers(scope, name):
    """The Conv2D, MatMul and depthwise nodes that read the constant `name` (through Identity
    nodes) as their kernel."""
    found, pending = [], [name]
    while pending:
        for node, index in scope.readers[pending.pop() + ":0"]:
            if node.op == "Identity":
                pending.append(node.name)
            elif node.op in _REPORTED_OPS and index == 1:
                found.append(node)
    return found


def _groups(graph_def, scope, output_node_names):
    """[(producers, depthwise nodes)]: each group's Conv2D / MatMul nodes (whose outputs hold
    its channels) and depthwise nodes, from `find_channel_groups_in_graph_def`; every other
    Conv2D or MatMul with a constant kernel is a group of its own. In graph order."""
    groups, grouped = [], set()
    for group in find_channel_groups_in_graph_def(graph_def, output_node_names)[0]:
        nodes = [node for weight, _ in group.members for node in _kernel_readers(scope, weight)]
        producers = [node for node in nodes if node.op in _LAYER_OPS]
        if producers:
            groups.append((producers, [node for node in nodes if node.op == _DEPTHWISE]))
            grouped.update(node.name for node in nodes)
    groups += [([node], []) for node in scope.nodes
               if _layer_kernel(scope, node) is not None and node.name not in grouped]
    position = {node.name: i for i, node in enumerate(scope.nodes)}
    return sorted(groups, key=lambda group: position[group[0][0].name])


def _removable(scope, producers, depthwise):
    """(channels, removable channels): those all of the group's kernels have at zero."""
    kernels = [_layer_kernel(scope, node) for node in producers]
    channels = kernels[0].shape[-1]
    zero = np.ones(channels, bool)
    for kernel in kernels:
        zero &= ~kernel.reshape(-1, kernel.shape[-1]).any(axis=0) \
            if kernel.shape[-1] == channels else False
    for node in depthwise:
        kernel = _kernel(scope, node)
        zero &= ~np.moveaxis(kernel, 2, 0).reshape(kernel.shape[2], -1).any(axis=1) \
            if kernel.shape[2] == channels else False
    return channels, [int(c) for c in np.flatnonzero(zero)]


_Plan = collections.namedtuple("_Plan", ["producers", "depthwise", "channels", "removed",
                                         "rounding", "space", "problem"])
_Plan.__doc__ = """What shrink does with one group: its Conv2D / MatMul `producers` and
`depthwise` nodes, its number of `channels`, the channels `removed`, what `rounding` to a
multiple kept (text, or None), the `space` that follows them (None when the group stays
dense) and the `problem` that keeps it dense."""


def _plan_group(scope, shapes, output_node_names, reachable, producers, depthwise, multiple):
    """Plans the shrinking of one group; a _Plan whose `space` is None when it stays dense,
    `problem` saying why (None when no channel is removable)."""
    channels, removable = _removable(scope, producers, depthwise)
    removed = removable[(-(channels - len(removable))) % multiple:]
    rounding = (f"{len(removable) - len(removed)} more kept for a multiple of {multiple}"
                if len(removed) < len(removable) else None)
    plan = _Plan(producers, depthwise, channels, removed, rounding, None, None)
    if not removed:
        return plan
    problem = next(filter(None, map(_layer_problem, producers)), None)
    if len(removed) == channels:
        problem = "every output channel is masked (the output is constant)"
    try:
        if problem:
            raise _KeepDense(problem)
        space = _Space(scope, shapes, output_node_names, reachable)
        for node in producers:
            space.start(node.name + ":0", {c: 0.0 for c in removed}, channels)
            space.edits.constant(node.name, 1).take(-1, space.present(node.name + ":0"))
        space.follow()
    except _KeepDense as reason:
        return plan._replace(problem=str(reason))
    return plan._replace(space=space)


def _plan_concat(scope, shapes, output_node_names, reachable, concat, slices):
    """The _Space following the channels removed from the `slices` (input index -> (values,
    size)) of `concat` from its output. Raises _KeepDense."""
    sizes = [shapes.get_tensor_by_name(tensor_id(ref)).shape[-1]
             for ref in _data_inputs(concat)[:-1]]
    if None in sizes:
        raise _KeepDense(f"{concat.name} (ConcatV2) has inputs of unknown channel counts")
    offsets = np.cumsum([0] + sizes)
    space = _Space(scope, shapes, output_node_names, reachable)
    space.start(concat.name + ":0", {offsets[index] + c: value
                                     for index, (values, _) in slices.items()
                                     for c, value in values.items()}, int(offsets[-1]))
    space.follow()
    if space.slices:
        raise _KeepDense(f"its channels reach {space.slices[0][0]} (ConcatV2) after "
                         f"{concat.name}: a concat of a concat is not supported")
    return space


def _plan_concats(scope, shapes, output_node_names, reachable, plans):
    """{concat name: _Space} for the concats the planned groups reach. A group feeding a concat
    that cannot be followed stays dense: its plan in `plans` is replaced."""
    while True:
        slices, feeders = collections.defaultdict(dict), collections.defaultdict(set)
        for i, plan in enumerate(plans):
            for name, index, values, size in plan.space.slices if plan.space else ():
                slices[name][index] = (values, size)
                feeders[name].add(i)
        spaces, failed = {}, {}
        for name in sorted(slices):
            try:
                spaces[name] = _plan_concat(scope, shapes, output_node_names, reachable,
                                            scope.by_name[name], slices[name])
            except _KeepDense as reason:
                for i in feeders[name]:
                    failed.setdefault(i, f"its channels go through {name} (ConcatV2): {reason}")
        if not failed:
            return spaces
        for i, problem in failed.items():
            plans[i] = plans[i]._replace(space=None, problem=problem)


def _plan_correction(edits, shapes, name, correction):
    """Plans adding the constant `correction` (channels last, in the original numbering of
    the output channels of layer `name`) to that output, once `edits` hold every group's."""
    for axis, kept in edits.constant(name, 1).takes:
        if axis == -1:
            correction = np.take(correction, kept, axis=-1)
    dtype = shapes.get_tensor_by_name(name + ":0").dtype
    value = correction.astype(dtype.as_numpy_dtype)
    edits.replace_tensor(name + ":0", lambda scope: new_node(
        scope, f"{name}/shrink_constants", "AddV2",
        [name, new_constant(scope, f"{name}/shrink_constants/values", value)], T=dtype))


def _note_consumers(space, source, notes):
    for name, removed, size in space.filters:
        notes[name].append(f"removed {removed} of {size} channels fed by {source}")
    for name, removed, size in space.consumers:
        notes[name].append(f"removed {removed} of {size} input rows fed by {source}")


def _note_plan(plan, notes):
    """Writes what became of one group into `notes` (layer name -> [text])."""
    names = [node.name for node in plan.producers]
    members = names + [node.name for node in plan.depthwise]
    if not plan.removed:
        for name in names:
            notes[name].append(f"no output channel removed: {plan.rounding}" if plan.rounding
                               else "no output channel is fully masked")
        return
    if plan.space is None:
        for name in members:
            notes[name].append(f"kept dense ({len(plan.removed)} of {plan.channels} output "
                               f"channels are masked): {plan.problem}")
        return
    group = f" (a group of {len(members)} kernels)" if len(members) > 1 else ""
    text = "; ".join([f"removed {len(plan.removed)} of {plan.channels} output channels{group}"]
                     + [plan.rounding] * bool(plan.rounding) + plan.space.notes)
    for name in names:
        notes[name].insert(0, text)
    _note_consumers(plan.space, ", ".join(names), notes)


def _flops(scope, shapes, node):
    """Multiply-adds x 2 of a Conv2D, MatMul or depthwise conv per example, or None if the
    size is unknown."""
    kernel_size = _kernel(scope, node).size
    if node.op == "MatMul":
        return 2 * kernel_size
    positions = shapes.get_tensor_by_name(node.name + ":0").shape[1:3]
    return 2 * positions.num_elements() * kernel_size if positions.is_fully_defined() else None


def shrink_graph_def(graph_def, output_node_names, channel_multiple=1):
    """Removes fully masked output channels of conv and fc layers and of their channel groups;
    outputs stay the same.

    Args:
      graph_def: a stripped GraphDef (from `strip_pruning_vars_fn`); not modified.
      output_node_names: list of output node names (or one comma-separated string).
      channel_multiple: each group keeps a multiple of this many channels (or all of them).
    Returns:
      ShrinkResult(graph_def, layers): the shrunk GraphDef, reduced to the outputs' sub-graph,
      and one LayerShrink per Conv2D, MatMul or depthwise conv with a constant kernel, in
      graph order.
    Raises:
      ValueError: if an output node is missing, the graph still multiplies masks or
        channel_multiple is not a positive int.
    """
    output_node_names = normalize_node_names(output_node_names)
    check_node_names(output_node_names, (node.name for node in graph_def.node))
    if isinstance(channel_multiple, bool) or not isinstance(channel_multiple, int) \
            or channel_multiple < 1:
        raise ValueError(f"channel_multiple must be a positive int, got {channel_multiple!r}")
    if any(node.op == "Mul" for _, node in masked_weight_nodes(graph_def)):
        raise ValueError("graph_def still computes mask * weight: strip it first with "
                         "strip_pruning_vars_fn")
    shrunk = tf.compat.v1.GraphDef()
    shrunk.CopyFrom(graph_def)
    scope, shapes = Scope(shrunk.node), imported(shrunk)
    reachable = reachable_nodes(shrunk, output_node_names)
    before = {node.name: (_kernel(scope, node).shape, _flops(scope, shapes, node))
              for node in shrunk.node if _kernel(scope, node) is not None}
    plans = [_plan_group(scope, shapes, output_node_names, reachable, producers, depthwise,
                         channel_multiple)
             for producers, depthwise in _groups(shrunk, scope, output_node_names)]
    concats = _plan_concats(scope, shapes, output_node_names, reachable, plans)
    edits, notes = Edits(), collections.defaultdict(list)
    for plan in plans:
        _note_plan(plan, notes)
        if plan.space is not None:
            edits.merge(plan.space.edits)
    spaces = [plan.space for plan in plans if plan.space is not None]
    for name, space in sorted(concats.items()):
        edits.merge(space.edits)
        _note_consumers(space, name, notes)
    for space in spaces + [space for _, space in sorted(concats.items())]:
        for name, correction in space.corrections:
            _plan_correction(edits, shapes, name, correction)
    edits.apply(scope)
    keep_reachable(shrunk, output_node_names)
    for node in shrunk.node:
        if "_output_shapes" in node.attr:  # stale once channels are gone
            del node.attr["_output_shapes"]
    after, after_shapes = Scope(shrunk.node), imported(shrunk)
    report = [LayerShrink(name, list(shape), list(_kernel(after, after.by_name[name]).shape),
                          flops, _flops(after, after_shapes, after.by_name[name]),
                          "; ".join(notes[name]))
              for name, (shape, flops) in before.items() if name in after.by_name]
    return ShrinkResult(shrunk, report)
