"""Coupled channel groups: the masked kernels whose output channels must be pruned together.

A channel *space* is a set of tensors whose last axis indexes the same channels. A Conv2D or
MatMul whose kernel is a masked weight starts one; ops that keep channels (activations, bias,
batch norm, pooling, padding, global pooling, dropout) carry it on; an add of two activations
(a residual add) joins two spaces into one; a depthwise conv joins its input's space to its
output's, its kernel's axis 2 indexing the channels. The masked weights of one space form a
`ChannelGroup`: channel c is kept or removed in every member at once. A space ends at each
Conv2D or MatMul that reads it, which will lose input rows, not output channels; a flatten of
[N, H, W, C] into a MatMul ends it too. A concat along the channels keeps each slice's space
as it is as long as the concatenated channels only reach consumers through ops that keep
channels.

Anything else keeps the weights of a space dense, and a `DenseWeight` says which op stopped
it: an op with no rule here, an op used in a way its rule does not cover (a channel
multiplier of 2, a pool across channels, NCHW), a concat whose output is coupled further, an
activation that no masked weight produces joined into the space, or a space no Conv2D or
MatMul reads at all (the logits: its channels are the model's outputs).

    groups, dense = find_channel_groups()
    for group in groups:
        print(group.channels, [(weight.op.name, axis) for weight, axis in group.members])

The rules (`OP_RULES`, one handler per kind of op) read the graph as a GraphDef through
`graphdef.Scope`, with static shapes from a tf.Graph, so one discovery serves a training graph
(`find_channel_groups`) and a frozen GraphDef (`find_channel_groups_in_graph_def`). In a
training graph the gradients (ops under a `gradients/` name scope) and ops that only look at a
tensor's shape or summarize it are not uses of its channels; a regularizer reading a masked
weight is not a use of the kernel either.
"""

import collections
import re

import numpy as np
import tensorflow as tf

from model_pruning import graphdef
from model_pruning.graphdef import Scope, ref_name, tensor_id

ChannelGroup = collections.namedtuple("ChannelGroup", ["members", "channels"])
ChannelGroup.__doc__ = """Masked weights that share `channels` channels.

`members`: tuple of (weight, axis), in the order of `pruning.get_weights()`; `axis` indexes the
group's channels in the weight's value: -1 for the output channels of a Conv2D or MatMul
kernel, 2 for the channels of a depthwise kernel [kh, kw, C, 1]."""

DenseWeight = collections.namedtuple("DenseWeight", ["weight", "reason"])
DenseWeight.__doc__ = """A masked weight whose channels cannot be pruned as a group, and why
(one line naming the op that stopped its space)."""

# The collections `pruning.apply_mask` registers a masked weight in, in parallel order.
_WEIGHTS, _MASKED_WEIGHTS = "kernel", "masked_weights"
# tf.gradients and the optimizers put every op of the backward pass under this name scope.
_GRADIENT_SCOPE = re.compile(r"(^|/)gradients(_\d+)?/")
# Ops that read a tensor's shape or summarize it: they do not care which channels it holds.
_OBSERVERS = frozenset(["Shape", "ShapeN", "Size", "Rank", "HistogramSummary", "ScalarSummary",
                        "TensorSummary", "TensorSummaryV2", "ImageSummary"])
# What else may read a masked weight besides the kernel slot of a layer: a weight regularizer.
_WEIGHT_OBSERVERS = _OBSERVERS | {"L2Loss"}
# Ops a masked weight may pass through on its way to a kernel slot.
_KERNEL_PASSES = ("Identity", "ReadVariableOp", "Cast")
_CHANNELS_LAST = (b"", b"NHWC")
_LAYERS = ("Conv2D", "MatMul", "DepthwiseConv2dNative")
# The ops a dropout keep-mask is made of: a random tensor of the activation's shape compared
# with the rate. Shape ops end the search: a shape is not a use of the channels.
_RANDOM_OPS = frozenset(["RandomUniform", "RandomStandardNormal", "StatelessRandomUniformV2",
                         "StatelessRandomGetKeyCounter"])
_RANDOM_MASK_OPS = _RANDOM_OPS | _OBSERVERS | {
    "Const", "Identity", "Cast", "GreaterEqual", "Greater", "Less", "LessEqual", "Floor",
    "Add", "AddV2", "Sub", "Mul", "RealDiv"}


def _weight_anchor(index):
    """The union-find element that stands for the weight of position `index`."""
    return ("weight", index)


class _Discovery:
    """The union-find over tensors (ids like `conv/Conv2D:0`) and weights, and what the rules
    found about each: filled by `_kernel_uses` and `OP_RULES`, read by `result`.

    Args:
      scope: a `graphdef.Scope` of the graph.
      shapes: a tf.Graph with the same node names, for static shapes.
      weights: one list per masked weight, in order: the names of its masked weight nodes.
      output_node_names: nodes whose outputs are the graph's outputs (none for training).
    """

    def __init__(self, scope, shapes, weights, output_node_names=()):
        self.scope = scope
        self.shapes = shapes
        self.output_node_names = frozenset(output_node_names)
        self.parent = {}
        self.reached = set()
        self.pending = collections.deque()
        self.reasons = []  # (element, (why its space stays dense, the op that said so or None))
        self.consumed = set()  # tensors read as the input of a consumer
        self.operand_checks = []  # (node, operand ref): a non-reached operand must be a parameter
        self.required = []  # (anchor, node, ref): a tensor a masked weight needs reached
        self.concats = {}  # concat output -> (concat node, [its reached slices])
        self.axes = {}  # weight index -> axis
        self.weight_nodes = weights
        for index, names in enumerate(weights):
            self.find(_weight_anchor(index))
            for name in names:
                self._kernel_uses(index, name)
        while self.pending:
            tensor = self.pending.popleft()
            for node, input_index in self.readers(tensor):
                OP_RULES.get(node.op, _unknown)(self, node, input_index)

    # The union-find.

    def find(self, element):
        self.parent.setdefault(element, element)
        root = element
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[element] != root:
            self.parent[element], element = root, self.parent[element]
        return root

    def join(self, *elements):
        roots = [self.find(element) for element in elements]
        for root in roots[1:]:
            if root != roots[0]:
                self.parent[root] = roots[0]

    # What the rules record.

    def reach(self, tensor):
        """`tensor` carries the channels of a space: its readers will be visited."""
        self.find(tensor)
        if tensor not in self.reached:
            self.reached.add(tensor)
            self.pending.append(tensor)
            if ref_name(tensor) in self.output_node_names:
                self.stop(tensor, f"{ref_name(tensor)} is a graph output")

    def stop(self, element, reason, node=None):
        """The space of `element` stays dense, for `reason`; if `node`, the op that stopped it,
        leads to no layer, the space holds the model's outputs instead (see `_dense_roots`)."""
        self.find(element)
        self.reasons.append((element, (reason, node)))

    def consume(self, tensor):
        self.consumed.add(tensor)

    def readers(self, tensor):
        """(node, input index) of the ops that use the channels of `tensor`."""
        return [(node, index) for node, index in self.scope.readers[tensor]
                if node.op not in _OBSERVERS and not _GRADIENT_SCOPE.search(node.name)]

    def shape(self, ref):
        return self.shapes.get_tensor_by_name(tensor_id(ref)).shape

    def channels(self, ref):
        """The static size of the last axis of `ref`, or None."""
        shape = self.shape(ref)
        return shape[-1] if shape.rank else None

    def value(self, ref):
        return self.scope.value(ref)

    # The kernel side: where a masked weight is used.

    def _kernel_uses(self, index, name):
        """Starts the spaces the masked weight node `name` (weight `index`) produces."""
        anchor = _weight_anchor(index)
        users = self.readers(name + ":0")
        if not users and not self.scope.readers[name + ":0"]:
            self.stop(anchor, f"nothing reads its masked weight {name}")
        for node, input_index in users:
            if node.op in _KERNEL_PASSES:
                self._kernel_uses(index, node.name)
            elif node.op in _WEIGHT_OBSERVERS - _OBSERVERS:
                continue
            elif node.op in ("Conv2D", "MatMul") and input_index == 1:
                self._layer_kernel(index, node)
            elif node.op == "DepthwiseConv2dNative" and input_index == 1:
                self._depthwise_kernel(index, node)
            else:
                self.stop(anchor, f"its masked weight feeds {node.name} ({node.op}), which "
                                  "is not the kernel slot of a Conv2D, MatMul or depthwise conv")

    def _set_axis(self, index, axis, node):
        if self.axes.setdefault(index, axis) != axis:
            self.stop(_weight_anchor(index), f"{node.name} ({node.op}) uses it with its "
                                             f"channels on axis {axis}, another layer on axis "
                                             f"{self.axes[index]}")

    def _layer_kernel(self, index, node):
        anchor, output = _weight_anchor(index), node.name + ":0"
        self._set_axis(index, -1, node)
        self.join(anchor, output)
        self.reach(output)
        if node.op == "Conv2D" and node.attr["data_format"].s not in _CHANNELS_LAST:
            self.stop(anchor, f"{node.name} (Conv2D) has data_format "
                              f"{node.attr['data_format'].s.decode()}; only NHWC is understood")
        if node.op == "MatMul" and (node.attr["transpose_a"].b or node.attr["transpose_b"].b):
            self.stop(anchor, f"{node.name} (MatMul) is transposed")

    def _depthwise_kernel(self, index, node):
        anchor, output = _weight_anchor(index), node.name + ":0"
        self._set_axis(index, 2, node)
        self.join(anchor, output)
        self.reach(output)
        multiplier = self.shape(node.input[1])[-1]
        if multiplier != 1:
            self.stop(anchor, f"{node.name} (DepthwiseConv2dNative) has channel multiplier "
                              f"{multiplier}: its output channels are not its input channels")
        elif node.attr["data_format"].s not in _CHANNELS_LAST:
            self.stop(anchor, f"{node.name} (DepthwiseConv2dNative) has data_format "
                              f"{node.attr['data_format'].s.decode()}; only NHWC is understood")
        else:
            self.join(anchor, tensor_id(node.input[0]))
            self.required.append((anchor, node, node.input[0]))

    # The result.

    def _is_parameter(self, ref):
        """True for an operand the same for every example and position: a scalar or one value
        per channel ([C], [1, 1, 1, C]), or a dropout keep-mask."""
        shape = self.shape(ref)
        if shape.rank is not None and all(size == 1 for size in shape.as_list()[:-1]):
            return True
        return self._is_random_mask(ref)

    def _is_random_mask(self, ref):
        seen, pending, random = set(), [ref_name(ref)], False
        while pending:
            name = pending.pop()
            node = self.scope.by_name.get(name)
            if node is None or node.op not in _RANDOM_MASK_OPS:
                return False
            random = random or node.op in _RANDOM_OPS
            if name in seen or node.op in _OBSERVERS:
                continue
            seen.add(name)
            pending.extend(ref_name(r) for r in node.input if not r.startswith("^"))
        return random

    def _check_operands(self):
        for node, ref in self.operand_checks:
            if tensor_id(ref) in self.reached or self._is_parameter(ref):
                continue
            producer = self.scope.by_name.get(ref_name(ref))
            kind = f" ({producer.op})" if producer is not None else ""
            self.stop(node.name + ":0", f"{node.name} ({node.op}) combines its channels with "
                                        f"{ref_name(ref)}{kind}, which no masked weight produces")
        for anchor, node, ref in self.required:
            if tensor_id(ref) not in self.reached:
                self.stop(anchor, f"{node.name} ({node.op}) filters the channels of "
                                  f"{ref_name(ref)}, which no masked weight produces")

    def _layer_inputs(self):
        """The names of the nodes whose outputs reach a Conv2D, MatMul or depthwise conv."""
        found = set()
        pending = [node.name for node in self.scope.nodes if node.op in _LAYERS]
        while pending:
            node = self.scope.by_name.get(pending.pop())
            if node is None or _GRADIENT_SCOPE.search(node.name):
                continue
            for ref in node.input:
                if not ref.startswith("^") and ref_name(ref) not in found:
                    found.add(ref_name(ref))
                    pending.append(ref_name(ref))
        return found

    def _by_root(self, pairs):
        """root -> [value] from (element, value) pairs, in order."""
        grouped = collections.defaultdict(list)
        for element, value in pairs:
            grouped[self.find(element)].append(value)
        return grouped

    def _dense_roots(self):
        """(root -> the reason its space is dense, root -> the indices of its weights)."""
        members = self._by_root((_weight_anchor(index), index) for index in self.axes)
        # An op that stops a space but leads to no layer (softmax, a loss, an arg max) is where
        # the model's outputs end; one that leads to a layer cuts a space the layer would need.
        layer_inputs = self._layer_inputs()
        reasons, ends = collections.defaultdict(list), collections.defaultdict(list)
        for root, found in self._by_root(self.reasons).items():
            for reason, node in found:
                if node is None or node.name in layer_inputs:
                    reasons[root].append(reason)
                else:
                    ends[root].append(f"{node.name} ({node.op})")
        dense = {root: found[0] for root, found in reasons.items()}
        consumed = {self.find(tensor) for tensor in self.consumed}
        composites = collections.defaultdict(list)  # root -> its concat nodes
        slices = collections.defaultdict(list)  # slice root -> (concat node, composite root)
        for output, (node, parts) in self.concats.items():
            composite = self.find(output)
            composites[composite].append(node)
            for part in parts:
                slices[self.find(part)].append((node, composite))
        for composite, nodes in composites.items():
            if composite not in dense and (composite in members or len(nodes) > 1):
                dense[composite] = (f"the channels {nodes[0].name} ({nodes[0].op}) concatenates "
                                    "are coupled further: a concat whose output is coupled is "
                                    "not split into groups")
        for root in {self.find(tensor) for tensor in self.reached} - set(dense):
            end = ends[root][0] if ends[root] else None
            if root not in consumed and root not in slices:
                dense[root] = ("its channels are the model's outputs: no Conv2D or MatMul reads "
                               "them" + (f" (they reach {end})" if end else ""))
            elif end:
                dense[root] = (f"its channels are also the model's outputs: they reach {end}, "
                               "which no Conv2D or MatMul follows")
        pending = [root for root in composites if root in dense]
        while pending:
            composite = pending.pop()
            for part, part_slices in slices.items():
                for node, outer in part_slices:
                    if outer == composite and part not in dense:
                        dense[part] = (f"its channels go through {node.name} ({node.op}), "
                                       f"whose output is dense: {dense[composite]}")
                        if part in composites:
                            pending.append(part)
        return dense, members

    def result(self, weights):
        """([ChannelGroup], [DenseWeight]) with `weights[i]` standing for weight i."""
        self._check_operands()
        dense, members = self._dense_roots()
        groups, dense_weights = [], {}
        for root, indices in members.items():
            sizes = {index: self.shape(self.weight_nodes[index][0])[self.axes[index]]
                     for index in indices}
            if root not in dense and len(set(sizes.values())) > 1:
                dense[root] = f"its kernels disagree on the number of channels: {sizes}"
            if root in dense:
                dense_weights.update((index, dense[root]) for index in indices)
            else:
                groups.append((sorted(indices), int(next(iter(sizes.values())))))
        for index in range(len(weights)):
            if index not in self.axes and index not in dense_weights:
                reasons = [reason for element, (reason, _) in self.reasons
                           if element == _weight_anchor(index)]
                dense_weights[index] = reasons[0] if reasons else (
                    "its masked weight is the kernel of no Conv2D, MatMul or depthwise conv")
        return ([ChannelGroup(tuple((weights[index], self.axes[index]) for index in indices),
                              channels) for indices, channels in sorted(groups)],
                [DenseWeight(weights[index], dense_weights[index])
                 for index in sorted(dense_weights)])


# The rules: one handler per kind of op, called for each op that reads a tensor of a space
# (at input `index`); each joins the tensors that keep the channels, or ends the space.

def _unknown(d, node, index):
    _unsupported(d, node, index, "reads its channels, and channel groups have no rule for it")


def _elementwise(d, node, index):
    """Output channel c is made from channel c of each operand (an operand of one value per
    channel or one value in all is a parameter, like a bias or batch norm's scale)."""
    if node.op in ("BiasAdd", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3") and \
            node.attr["data_format"].s not in _CHANNELS_LAST:
        return _unsupported(d, node, index, f"has data_format "
                                            f"{node.attr['data_format'].s.decode()}")
    if node.op in ("Select", "SelectV2") and index == 0:
        return _unknown(d, node, index)
    ref, output = node.input[index], node.name + ":0"
    if d.channels(ref) is None or d.channels(ref) != d.channels(output):
        return _unsupported(d, node, index, f"broadcasts {ref_name(ref)} over the channels")
    d.join(tensor_id(ref), output)
    d.reach(output)
    d.operand_checks.extend((node, other) for other in node.input
                            if other != ref and not other.startswith("^"))


def _unsupported(d, node, index, why):
    d.stop(tensor_id(node.input[index]), f"{node.name} ({node.op}) {why}", node)


def _keeps_channels(d, node, index):
    """Joins the output to the data input, which must be input 0."""
    if index != 0:
        return _unknown(d, node, index)
    d.join(tensor_id(node.input[0]), node.name + ":0")
    d.reach(node.name + ":0")


def _pool(d, node, index):
    """MaxPool, AvgPool: within each channel. LRN: mixes neighbouring channels into each
    channel's scale, but a masked channel is zero and keeps its place, so masks are fine."""
    if node.op != "LRN" and (node.attr["data_format"].s not in _CHANNELS_LAST
                             or node.attr["ksize"].list.i[-1] != 1
                             or node.attr["strides"].list.i[-1] != 1):
        return _unsupported(d, node, index, "is not an NHWC pool within each channel")
    _keeps_channels(d, node, index)


def _last_axis_kept(d, node, axes):
    """True if no axis in `axes` (possibly negative) is the input's last one."""
    rank = d.shape(node.input[0]).rank
    return rank is not None and all(int(axis) % rank != rank - 1 for axis in axes)


def _reduce(d, node, index):
    """Mean, Max or Sum over spatial (non-channel) axes: global pooling."""
    axes = d.value(node.input[1]) if index == 0 else None
    if axes is None or not _last_axis_kept(d, node, np.reshape(axes, -1)):
        return _unsupported(d, node, index, "does not reduce over constant non-channel axes")
    _keeps_channels(d, node, index)


def _squeeze(d, node, index):
    axes = list(node.attr["squeeze_dims"].list.i)
    kept = _last_axis_kept(d, node, axes) if axes else d.channels(node.input[0]) not in (None, 1)
    if not kept:
        return _unsupported(d, node, index, "may squeeze the channel axis")
    _keeps_channels(d, node, index)


def _pad(d, node, index):
    paddings = d.value(node.input[1]) if index == 0 else None
    if paddings is None or paddings[-1].any():
        return _unsupported(d, node, index, "does not pad by a constant outside the channels")
    _keeps_channels(d, node, index)


def _reshape(d, node, index):
    """Keeps the channels if it keeps the size of the last axis; a flatten of [N, H, W, C] into
    [N, H*W*C] is fine when only MatMuls read it (their rows are sliced by shrink)."""
    ref, output = node.input[0], node.name + ":0"
    before, after = d.shape(ref), d.shape(output)
    if index != 0 or before.rank is None or after.rank is None:
        return _unsupported(d, node, index, "has unknown shapes")
    if before[-1] is not None and before[-1] == after[-1]:
        return _keeps_channels(d, node, index)
    flat = before[1:].num_elements()
    if not (after.rank == 2 and flat is not None and after[-1] == flat):
        return _unsupported(d, node, index, "moves the channels off the last axis")
    readers = d.readers(output)
    for reader, reader_index in readers:
        if not (reader.op == "MatMul" and reader_index == 0 and _consumer_problem(reader) is None):
            return _unsupported(d, node, index, f"flattens the channels into {reader.name} "
                                                f"({reader.op}), which is not a MatMul")
    if readers:
        d.consume(tensor_id(ref))


def _concat(d, node, index):
    """Along the channels: the output is a space of its own made of slices (see `result`).
    Along another axis: channel c of each input is channel c of the output."""
    values = [ref for ref in node.input[:-1] if not ref.startswith("^")]
    axis, rank = d.value(node.input[-1]), d.shape(node.name + ":0").rank
    if node.op != "ConcatV2" or index >= len(values) or axis is None or rank is None:
        return _unknown(d, node, index)
    if int(axis) % rank != rank - 1:
        return _elementwise(d, node, index)
    output = node.name + ":0"
    d.concats.setdefault(output, (node, []))[1].append(tensor_id(node.input[index]))
    d.reach(output)


def _consumer_problem(node):
    if node.op == "Conv2D" and node.attr["data_format"].s not in _CHANNELS_LAST:
        return f"has data_format {node.attr['data_format'].s.decode()}"
    if node.op == "MatMul" and node.attr["transpose_a"].b:
        return "is transposed"
    return None


def _consumer(d, node, index):
    """A Conv2D or MatMul reading the space as its input: the space ends here."""
    if index != 0:
        return _unknown(d, node, index)
    problem = _consumer_problem(node)
    if problem:
        return _unsupported(d, node, index, problem)
    d.consume(tensor_id(node.input[0]))


def _depthwise(d, node, index):
    """A depthwise conv filters each channel alone: with a channel multiplier of 1 its output
    channels are its input channels (its kernel, if masked, joins the space on axis 2)."""
    multiplier = d.shape(node.input[1])[-1]
    if index != 0:
        return _unknown(d, node, index)
    if multiplier != 1:
        return _unsupported(d, node, index, f"has channel multiplier {multiplier}: its output "
                                            "channels are not its input channels")
    if node.attr["data_format"].s not in _CHANNELS_LAST:
        return _unsupported(d, node, index, f"has data_format "
                                            f"{node.attr['data_format'].s.decode()}")
    _keeps_channels(d, node, index)


OP_RULES = {
    **dict.fromkeys(["Identity", "StopGradient", "Snapshot", "Cast", "Relu", "Relu6", "Elu",
                     "Selu", "LeakyRelu", "Sigmoid", "Tanh", "BiasAdd", "Add", "AddV2", "Sub",
                     "Mul", "RealDiv", "Maximum", "Minimum", "AddN", "Select", "SelectV2",
                     "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"], _elementwise),
    **dict.fromkeys(["MaxPool", "AvgPool", "LRN"], _pool),
    **dict.fromkeys(["Mean", "Max", "Sum"], _reduce),
    "Squeeze": _squeeze,
    **dict.fromkeys(["Pad", "PadV2", "MirrorPad"], _pad),
    "Reshape": _reshape,
    "ConcatV2": _concat,
    **dict.fromkeys(["Conv2D", "MatMul"], _consumer),
    "DepthwiseConv2dNative": _depthwise,
}


def _resolve(scope, ref):
    """The names of the nodes from `ref` back through Identity and ReadVariableOp nodes."""
    names = [ref_name(ref)]
    node = scope.by_name.get(names[-1])
    while node is not None and node.op in ("Identity", "ReadVariableOp") and node.input:
        names.append(ref_name(node.input[0]))
        node = scope.by_name.get(names[-1])
    return names


def find_channel_groups(graph=None):
    """The coupled channel groups of the masked weights of a built graph.

    Args:
      graph: a tf.Graph whose weights were masked with `apply_mask` (the masked layers,
        `masking_scope`); default: the default graph.
    Returns:
      (groups, dense): a list of `ChannelGroup`, ordered by their first member, and a list of
      `DenseWeight`. Every weight of `pruning.get_weights()` is in exactly one group or in
      `dense`, with a one-line reason naming the op that stopped its space.
    """
    graph = graph or tf.compat.v1.get_default_graph()
    weights = graph.get_collection(_WEIGHTS)
    masked_weights = graph.get_collection(_MASKED_WEIGHTS)
    if len(weights) != len(masked_weights):
        raise ValueError(f"The pruning collections hold {len(weights)} weights but "
                         f"{len(masked_weights)} masked weights; they must match")
    graph_def = graph.as_graph_def()
    scope = Scope(graph_def.node)
    index_of = {weight.name.split(":")[0]: index for index, weight in enumerate(weights)}
    kernel_nodes = [[masked.op.name] for masked in masked_weights]
    # A weight masked again under reuse (shared layers) has more masked weight nodes.
    for node in scope.nodes:
        if node.op == "Mul" and graphdef.MASKED_WEIGHT.search(node.name) and len(node.input) > 1:
            index = next((index_of[name] for name in _resolve(scope, node.input[1])
                          if name in index_of), None)
            if index is not None and node.name not in kernel_nodes[index]:
                kernel_nodes[index].append(node.name)
    return _Discovery(scope, graph, kernel_nodes).result(weights)


def find_channel_groups_in_graph_def(graph_def, output_node_names=()):
    """The coupled channel groups of the masked weights of a GraphDef, frozen or not.

    Each masked weight node (`.../masked_weight`, a Mul before stripping, a Const after) is a
    weight of its own, named by its node name.

    Args:
      graph_def: a GraphDef; not modified.
      output_node_names: the graph's outputs: a space that reaches one stays dense.
    Returns:
      (groups, dense) as `find_channel_groups`, with node names for weights, in graph order.
    """
    names = [node.name for function, node in graphdef.masked_weight_nodes(graph_def)
             if not function]
    scope = Scope(list(graph_def.node))
    return _Discovery(scope, graphdef.imported(graph_def), [[name] for name in names],
                      output_node_names).result(names)
