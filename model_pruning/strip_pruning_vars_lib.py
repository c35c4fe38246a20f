"""Strip pruning variables: freeze a checkpoint, then fold every mask into its weight.

`graph_def_from_checkpoint` freezes a checkpoint (variables become constants);
`strip_pruning_vars_fn` replaces each `.../masked_weight` product by one constant holding
mask * weight and keeps only what the outputs need, so no `mask`, `threshold` or
`last_mask_update_step` node is left.

Unlike contrib, the product is computed in numpy from the frozen constants, never by running
the graph. So masked weights behind placeholders and inside while loops (dynamic_rnn, both as
TF2 functional `While` ops and as TF1 `Enter`/`Exit` frames) fold the same way, and the
caller's default graph is never touched. A training graph that reads its input through
tf.data or a queue is frozen with `input_node_names`: those tensors become placeholders and
the input pipeline is left out.

    frozen = graph_def_from_checkpoint("/tmp/train", ["logits"],
                                       input_node_names=["IteratorGetNext:0"])
    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    check_graph_loads(stripped)
"""

import difflib
import gc
import logging
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

_LOG = logging.getLogger(__name__)

# Contrib found masked weights by a name containing `masked_weight`; that also matches the
# `.../masked_weight/Enter` nodes of TF1 loops, so match the last name component instead.
_MASKED_WEIGHT = re.compile(r"(^|/)masked_weight(_\d+)?$")
_WHILE_OPS = ("While", "StatelessWhile")
_VARIABLE_DEFINITION_OPS = ("VarHandleOp", "VariableV2", "Variable")
_VARIABLE_OPS = _VARIABLE_DEFINITION_OPS + ("ReadVariableOp",)
# Op types of the training input pipeline: tf.data datasets and iterators, queues, readers.
_INPUT_PIPELINE_OP = re.compile(r"Dataset|Iterator|Queue|Reader")


def _is_masked_weight(node):
    """True for the `mask * weight` product that `apply_mask` and the masked layers create."""
    return node.op == "Mul" and bool(_MASKED_WEIGHT.search(node.name))


def _ref_name(ref):
    """The node (or function argument) a reference names: `^a`, `a`, `a:1`, `a:out:1` -> `a`."""
    return ref.lstrip("^").split(":")[0]


class _Scope:
    """The nodes of the top-level graph or of one function body, and its reference syntax.

    In the graph an output reads `node:index`; in a function body it reads
    `node:output_arg:index`, and a bare name may be one of the function's arguments.
    """

    def __init__(self, nodes, function=None):
        self.nodes = nodes
        self.function = function
        self.reindex()

    def reindex(self):
        self.by_name = {node.name: node for node in self.nodes}

    @property
    def name(self):
        return self.function.signature.name if self.function else "the graph"

    def arg_index(self, name):
        if self.function is None:
            return None
        names = [arg.name for arg in self.function.signature.input_arg]
        return names.index(name) if name in names else None

    def output_index(self, ref):
        """The output index a data reference reads."""
        parts = ref.split(":")
        return int(parts[-1]) if len(parts) > 1 else 0

    def retarget(self, ref, name, index=None):
        """`ref` re-pointed at output `index` (default: the same index) of node `name`, whose
        outputs form one list named `output` (Const, Identity, Enter, While)."""
        if ref.startswith("^"):
            return "^" + name
        index = self.output_index(ref) if index is None else index
        if self.function is None:
            return name if index == 0 else f"{name}:{index}"
        return f"{name}:output:{index}"

    def refs(self):
        """Every reference in the scope: node inputs, and the function's returns."""
        for node in self.nodes:
            yield from node.input
        if self.function is not None:
            yield from self.function.ret.values()
            yield from self.function.control_ret.values()

    def consumers(self, name):
        return [ref for ref in self.refs() if _ref_name(ref) == name]

    def rewrite_refs(self, rewrite):
        """Replaces every reference `r` by `rewrite(r)`."""
        for node in self.nodes:
            for i, ref in enumerate(node.input):
                node.input[i] = rewrite(ref)
        if self.function is not None:
            for key, ref in list(self.function.ret.items()):
                self.function.ret[key] = rewrite(ref)

    def remove_node(self, name):
        index = next(i for i, node in enumerate(self.nodes) if node.name == name)
        del self.nodes[index]
        self.reindex()


class _GraphScopes:
    """All scopes of a GraphDef, and which node calls each function."""

    def __init__(self, graph_def, payloads):
        self.graph = _Scope(graph_def.node)
        self.payloads = payloads
        self.functions = {f.signature.name: _Scope(f.node_def, f)
                          for f in graph_def.library.function}
        self.callers = {}
        for scope in self.all():
            for node in scope.nodes:
                for function_name in _called_functions(node):
                    self.callers.setdefault(function_name, []).append((scope, node))

    def all(self):
        return [self.graph, *self.functions.values()]

    def const_value(self, scope, node):
        """The array a Const node holds, from the input graph when the copy left it out."""
        if scope is self.graph and node.name in self.payloads:
            return _tensor_value(self.payloads[node.name])
        return _tensor_value(node.attr["value"].tensor)

    def loop_of(self, scope):
        """(caller scope, While node) when `scope` is the body of exactly one while loop."""
        callers = self.callers.get(scope.name, [])
        if scope.function is None or len(callers) != 1:
            return None
        caller_scope, caller = callers[0]
        if caller.op not in _WHILE_OPS or caller.attr["body"].func.name != scope.name:
            return None
        if any(len(self.callers.get(caller.attr[key].func.name, [])) != 1
               for key in ("body", "cond")):
            return None
        return caller_scope, caller

    def is_loop_invariant(self, body, index):
        """True when the loop body returns its argument `index` unchanged."""
        signature = body.function.signature
        return body.function.ret.get(signature.output_arg[index].name) == \
            signature.input_arg[index].name


def _called_functions(node):
    """Names of the functions a node calls, directly or through a function attr."""
    names = [node.op]
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(func.name for func in value.list.func)
    return names


class _NotConstant(Exception):
    """A masked weight input that is not a frozen constant; the message says why."""


def _constant_value(scopes, scope, ref, trail):
    """The array `ref` always holds, following Identity nodes, loop-invariant TF1 `Enter`
    nodes and loop-invariant arguments of functional while loops to a Const.

    Appends every (scope, name) it passes to `trail`.
    Raises _NotConstant when the value depends on anything else.
    """
    name = _ref_name(ref)
    index = scope.arg_index(name)
    if index is not None:
        loop = scopes.loop_of(scope)
        if loop is None or not scopes.is_loop_invariant(scope, index):
            raise _NotConstant(f"{name} is an argument of function {scope.name} that is not a "
                               "loop-invariant argument of a single while loop")
        trail.append((scope, name))
        caller_scope, caller = loop
        return _constant_value(scopes, caller_scope, caller.input[index], trail)
    node = scope.by_name.get(name)
    if node is None:
        raise _NotConstant(f"{name} is not a node of {scope.name}")
    if node.op in _VARIABLE_OPS:
        raise ValueError(
            f"input_graph_def is not frozen: {node.name} is a {node.op} node. Freeze it first "
            "with graph_def_from_checkpoint or tf.compat.v1.graph_util."
            "convert_variables_to_constants")
    trail.append((scope, name))
    if node.op == "Const":
        return scopes.const_value(scope, node)
    if node.op == "Identity" or (node.op == "Enter" and node.attr["is_constant"].b):
        return _constant_value(scopes, scope, node.input[0], trail)
    raise _NotConstant(f"its value comes from {name}, a {node.op} node")


def _control_inputs(node):
    return [ref for ref in node.input if ref.startswith("^")]


def _fold_into_const(node, factors, control_inputs):
    """Turns the product `node` into a Const holding the product of `factors` (a list, which
    it empties), keeping the node's name, dtype and device.

    The factors are released before the product is serialised, and the data is written
    straight into the node (a separate NodeDef copied in would hold it twice more), so
    folding a weight needs about three times its size at most.
    """
    value = np.multiply(*factors)
    factors.clear()
    dtype = tf.compat.v1.AttrValue()
    dtype.CopyFrom(node.attr["T"])
    node.op = "Const"
    node.ClearField("input")
    node.input.extend(control_inputs)
    node.attr.clear()
    node.attr["dtype"].CopyFrom(dtype)
    tensor = node.attr["value"].tensor
    tensor.dtype = dtype.type
    tensor.tensor_shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    tensor.tensor_content = value.tobytes()


def _tensor_value(tensor):
    """The array a TensorProto holds; a read-only view of its bytes when it has them."""
    content = tensor.tensor_content
    if not content:
        return tf.make_ndarray(tensor)
    dtype = tf.as_dtype(tensor.dtype).as_numpy_dtype
    return np.frombuffer(content, dtype).reshape(tf.TensorShape(tensor.tensor_shape).as_list())


def _frame_enters(scope, path):
    """The TF1 `Enter` nodes a path passed, innermost frame first."""
    return [scope.by_name[name] for path_scope, name in path
            if path_scope is scope and name in scope.by_name
            and scope.by_name[name].op == "Enter"]


def _unique_name(scope, base):
    name, suffix = base, 0
    while name in scope.by_name:
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _enter_frames(scope, const_name, enters):
    """Re-creates the loop-invariant `enters` (innermost first) as a chain from the constant,
    and points the constant's consumers at its end.

    A TF1 loop frame only accepts a value through an Enter, so the constant is placed outside
    all frames (where the mask and weight were) and entered like they were.
    """
    consumers_read = _unique_name(scope, f"{const_name}/folded_enter")
    scope.rewrite_refs(lambda ref: scope.retarget(ref, consumers_read)
                       if _ref_name(ref) == const_name else ref)
    source = const_name
    for depth, enter in enumerate(reversed(enters)):
        chained = tf.compat.v1.NodeDef()
        chained.CopyFrom(enter)
        chained.name = consumers_read if depth == len(enters) - 1 else \
            _unique_name(scope, f"{consumers_read}/outer_{depth}")
        chained.ClearField("input")
        chained.input.append(source)
        scope.nodes.append(chained)
        scope.reindex()
        source = chained.name


def _fold(scopes, scope, node, trail, folded):
    """Replaces one masked weight by its constant product. Raises _NotConstant.

    `folded` maps the (mask, weight) constants already folded in this scope to the product's
    name: a cell called once per time step (static_rnn) multiplies the same pair several
    times, and the copies become Identity nodes of the first so the weight is stored once.
    """
    paths = [[] for _ in range(2)]
    data_inputs = [ref for ref in node.input if not ref.startswith("^")]
    factors = [_constant_value(scopes, scope, ref, path) for ref, path in zip(data_inputs, paths)]
    enters = _frame_enters(scope, paths[1])
    if [e.attr["frame_name"].s for e in _frame_enters(scope, paths[0])] != \
            [e.attr["frame_name"].s for e in enters]:
        raise _NotConstant("its mask and weight enter different TF1 loop frames")
    sources = (scope.name, *(path[-1] for path in paths))
    if enters:  # the product's control inputs are inside the frame: the Enter chain replaces them
        _fold_into_const(node, factors, [])
        _enter_frames(scope, node.name, enters)
    elif sources in folded:
        identity = tf.compat.v1.NodeDef(name=node.name, op="Identity", device=node.device)
        identity.input.append(folded[sources] + (":output:0" if scope.function else ""))
        identity.input.extend(_control_inputs(node))
        identity.attr["T"].CopyFrom(node.attr["T"])
        node.CopyFrom(identity)
    else:
        _fold_into_const(node, factors, _control_inputs(node))
        folded[sources] = node.name
    if scope.function is not None:
        # Mul outputs are `name:z:i` inside a function body; Const and Identity ones
        # `name:output:i`.
        scope.rewrite_refs(lambda ref: scope.retarget(ref, node.name)
                           if _ref_name(ref) == node.name else ref)
    for path in paths:
        trail.extend(path)


def _drop_loop_var(scopes, body, arg_name):
    """Removes a loop variable that nothing reads any more from its while loop.

    Returns False (and changes nothing) while something still reads it.
    """
    index = body.arg_index(arg_name)
    loop = scopes.loop_of(body)
    if index is None or loop is None:
        return False
    caller_scope, caller = loop
    cond = scopes.functions[caller.attr["cond"].func.name]
    cond_arg = cond.function.signature.input_arg[index].name
    passthrough = body.function.signature.output_arg[index].name
    body_reads = [key for key, ref in body.function.ret.items()
                  if ref == arg_name and key != passthrough]
    body_reads += [ref for node in body.nodes for ref in node.input
                   if _ref_name(ref) == arg_name]
    output_reads = [ref for ref in caller_scope.consumers(caller.name)
                    if not ref.startswith("^") and caller_scope.output_index(ref) == index]
    if body_reads or cond.consumers(cond_arg) or output_reads:
        return False

    del caller.input[index]
    for attr, field in (("T", "type"), ("output_shapes", "shape")):
        values = getattr(caller.attr[attr].list, field)
        if len(values) > index:
            del values[index]
    if "_num_original_outputs" in caller.attr and caller.attr["_num_original_outputs"].i > index:
        caller.attr["_num_original_outputs"].i -= 1
    if "_read_only_resource_inputs" in caller.attr:
        kept = [i - (i > index) for i in caller.attr["_read_only_resource_inputs"].list.i
                if i != index]
        del caller.attr["_read_only_resource_inputs"].list.i[:]
        caller.attr["_read_only_resource_inputs"].list.i.extend(kept)

    def shift_output(ref):
        if _ref_name(ref) != caller.name or ref.startswith("^"):
            return ref
        old = caller_scope.output_index(ref)
        return caller_scope.retarget(ref, caller.name, old - 1) if old > index else ref

    caller_scope.rewrite_refs(shift_output)
    del body.function.ret[passthrough]
    del body.function.signature.output_arg[index]
    for function in (body.function, cond.function):
        del function.signature.input_arg[index]
        _drop_arg_entry(function.arg_attr, index)
        _drop_arg_entry(function.resource_arg_unique_id, index)
    return True


def _drop_arg_entry(per_arg, index):
    """Removes entry `index` of a map keyed by argument position and shifts the later ones."""
    entries = []
    for i in sorted(per_arg):
        if i != index:
            value = per_arg[i]
            if hasattr(value, "CopyFrom"):  # a message value dies with the map entry: copy it
                value = type(value)()
                value.CopyFrom(per_arg[i])
            entries.append((i - (i > index), value))
    per_arg.clear()
    for i, value in entries:
        if hasattr(value, "CopyFrom"):
            per_arg[i].CopyFrom(value)
        else:
            per_arg[i] = value


def _remove_dead(scopes, trail):
    """Deletes what folding left unread inside function bodies: the Identity/Const nodes on
    the followed paths, then the loop variables that carried mask and weight into loops.

    The top-level graph is left to `keep_reachable`.
    """
    changed = True
    while changed:
        changed = False
        for scope, name in reversed(trail):
            if scope.function is None:
                continue
            if scope.arg_index(name) is not None:
                changed |= _drop_loop_var(scopes, scope, name)
            elif name in scope.by_name and not scope.consumers(name):
                scope.remove_node(name)
                changed = True


def _prune_library(graph_def):
    """Drops the functions that no remaining node calls (the pruning ops' tf.cond branches)."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    reachable, pending = set(), [graph_def.node]
    while pending:
        for node in pending.pop():
            for name in _called_functions(node):
                if name in functions and name not in reachable:
                    reachable.add(name)
                    pending.append(functions[name].node_def)
    kept = [f for f in graph_def.library.function if f.signature.name in reachable]
    gradients = [g for g in graph_def.library.gradient if g.function_name in reachable]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(gradients)


def _copy_without_payloads(input_graph_def):
    """A copy of the graph whose top-level constants hold no data, and that data by name.

    The masks and weights are most of a frozen graph and are folded away, so copying them
    would only raise the peak memory by the model's size; the data of the constants that
    remain is put back by `_restore_payloads`.
    """
    graph_def = tf.compat.v1.GraphDef()
    graph_def.versions.CopyFrom(input_graph_def.versions)
    graph_def.library.CopyFrom(input_graph_def.library)
    payloads = {}
    for node in input_graph_def.node:
        copy = graph_def.node.add()
        if node.op != "Const":
            copy.CopyFrom(node)
            continue
        tensor = node.attr["value"].tensor
        payloads[node.name] = tensor
        copy.name, copy.op, copy.device = node.name, node.op, node.device
        copy.input.extend(node.input)
        for key, value in node.attr.items():
            if key != "value":
                copy.attr[key].CopyFrom(value)
        copy.attr["value"].tensor.dtype = tensor.dtype
        copy.attr["value"].tensor.tensor_shape.CopyFrom(tensor.tensor_shape)
        if node.HasField("experimental_debug_info"):
            copy.experimental_debug_info.CopyFrom(node.experimental_debug_info)
    return graph_def, payloads


def _restore_payloads(graph_def, payloads):
    """Puts the data back into the constants `_copy_without_payloads` left empty."""
    for node in graph_def.node:
        if node.name in payloads:  # only the masked weights' products were rewritten
            node.attr["value"].tensor.CopyFrom(payloads[node.name])


def reachable_nodes(graph_def, output_node_names, colocations=False):
    """Names of the top-level nodes the outputs need, through data and control inputs, and
    with `colocations` through colocation entries too, as `extract_sub_graph` follows them."""
    inputs = {node.name: [_ref_name(ref) for ref in node.input] for node in graph_def.node}
    if colocations:
        for node in graph_def.node:
            if "_class" in node.attr:  # reading a missing map entry would add it
                inputs[node.name] += [entry.decode().removeprefix("loc:@")
                                      for entry in node.attr["_class"].list.s]
    reachable, pending = set(), list(output_node_names)
    while pending:
        name = pending.pop()
        if name not in reachable:
            reachable.add(name)
            pending.extend(inputs[name])
    return reachable


def keep_reachable(graph_def, output_node_names):
    """Deletes the top-level nodes the outputs do not need, in place, and the colocation
    entries that named them.

    The nodes kept are those of `extract_sub_graph`, which would copy them all.
    """
    reachable = reachable_nodes(graph_def, output_node_names)
    nodes = graph_def.node
    end = len(nodes)
    while end > 0:  # delete each run of unreachable nodes at once, last run first
        if nodes[end - 1].name in reachable:
            end -= 1
            continue
        start = end - 1
        while start > 0 and nodes[start - 1].name not in reachable:
            start -= 1
        del nodes[start:end]
        end = start
    _drop_dangling_colocations(graph_def)


def _drop_dangling_colocations(graph_def):
    """Removes the colocation entries (`loc:@node` in attr `_class`) that name a node the
    graph does not have: TensorFlow refuses to import a node colocated with an unknown one."""
    names = {node.name for node in graph_def.node}
    for node in graph_def.node:
        if "_class" not in node.attr:
            continue
        entries = node.attr["_class"].list.s
        kept = [entry for entry in entries
                if not entry.startswith(b"loc:@") or entry[len(b"loc:@"):].decode() in names]
        if not kept:
            del node.attr["_class"]
        elif len(kept) < len(entries):
            del entries[:]
            entries.extend(kept)


def _is_input_pipeline(node):
    """True for tf.data datasets and iterators, queues and TF1 readers."""
    return bool(_INPUT_PIPELINE_OP.search(node.op))


def _tensor_id(ref):
    """`a` -> `a:0`; `a:1` stays."""
    return ref if ":" in ref else ref + ":0"


def _drop_control_inputs_on_input_pipeline(graph_def):
    """Removes the control inputs by which model nodes wait for input pipeline nodes: once
    its inputs are placeholders, the model is fed and never waits for training input."""
    pipeline = {node.name for node in graph_def.node if _is_input_pipeline(node)}
    for node in graph_def.node:
        if node.name in pipeline:
            continue
        kept = [ref for ref in node.input
                if not (ref.startswith("^") and _ref_name(ref) in pipeline)]
        if len(kept) < len(node.input):
            del node.input[:]
            node.input.extend(kept)


def _warn_if_reading_input_pipeline(graph_def):
    """Warns, naming the tensors to feed instead, when model nodes read input pipeline nodes."""
    pipeline = {node.name for node in graph_def.node if _is_input_pipeline(node)}
    reads = sorted({_tensor_id(ref) for node in graph_def.node if node.name not in pipeline
                    for ref in node.input
                    if not ref.startswith("^") and _ref_name(ref) in pipeline})
    if reads:
        _LOG.warning("The outputs read the training input pipeline at %s; to feed the model "
                     "instead, pass input_node_names=%s", ", ".join(reads), ",".join(reads))


def normalize_node_names(names, what="output_node_names"):
    """A list of node names from a list or a comma-separated string; drops `:0` and `^`.

    Raises:
      ValueError: when no name is left.
    """
    if isinstance(names, str):
        names = names.split(",")
    names = [_ref_name(name.strip()) for name in names if name.strip()]
    if not names:
        raise ValueError(f"{what} is empty: need at least 1 node name "
                         "(a list, or comma-separated like 'logits,probabilities')")
    return names


def normalize_tensor_names(names, what="input_node_names"):
    """A list of tensor names (`node:index`, `node` meaning `node:0`) from a list or a
    comma-separated string.

    Raises:
      ValueError: when no name is left.
    """
    if isinstance(names, str):
        names = names.split(",")
    names = [_tensor_id(name.strip()) for name in names if name.strip()]
    if not names:
        raise ValueError(f"{what} is empty: need at least 1 tensor name "
                         "(a list, or comma-separated like 'IteratorGetNext:0,lengths')")
    return names


def check_node_names(names, available, kind="output"):
    """Raises ValueError naming the first missing node and the closest names in the graph."""
    available = list(available)
    for name in names:
        if name in available:
            continue
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
        hint = (f"Close names: {', '.join(close)}." if close else
                f"No similar name among its {len(available)} nodes.")
        raise ValueError(f"{kind.capitalize()} node {name!r} is not in the graph. {hint}")


def masked_weight_nodes(graph_def):
    """(scope name, node) for every masked weight in the graph and its functions, by name.

    Before stripping these are `Mul` nodes, after it `Const` nodes holding mask * weight.
    """
    scopes = [("", graph_def.node)] + [(f.signature.name, f.node_def)
                                      for f in graph_def.library.function]
    return [(scope, node) for scope, nodes in scopes for node in nodes
            if node.op in ("Mul", "Const") and _MASKED_WEIGHT.search(node.name)]


def folded_weights(graph_def):
    """(name, array) of every masked weight a stripped graph holds as a constant."""
    return [(node.name, _tensor_value(node.attr["value"].tensor))
            for _, node in masked_weight_nodes(graph_def) if node.op == "Const"]


def strip_pruning_vars_fn(input_graph_def, output_node_names):
    """Folds each masked weight into a constant and keeps only the outputs' sub-graph.

    Every `.../masked_weight` product whose two factors are frozen constants (possibly passed
    into while loops) becomes a Const of mask * weight with the same name; the masks, and the
    loop variables that carried them, are then unreferenced and dropped.

    Args:
      input_graph_def: a frozen GraphDef (from `graph_def_from_checkpoint`); not modified.
      output_node_names: list of output node names (or one comma-separated string).
    Returns:
      The stripped GraphDef.
    Raises:
      ValueError: if an output node is missing, no output is given, or the graph still
        holds variables.
    """
    output_node_names = normalize_node_names(output_node_names)
    check_node_names(output_node_names, (node.name for node in input_graph_def.node))
    graph_def, payloads = _copy_without_payloads(input_graph_def)
    scopes = _GraphScopes(graph_def, payloads)
    trail, folded = [], {}
    masked_weights = [(scope, node) for scope in scopes.all() for node in scope.nodes
                      if _is_masked_weight(node)]
    for number, (scope, node) in enumerate(masked_weights, start=1):
        _LOG.info("Folding masked weight %d/%d: %s", number, len(masked_weights), node.name)
        try:
            _fold(scopes, scope, node, trail, folded)
        except _NotConstant as reason:
            _LOG.warning("Masked weight %s in %s was left as is: %s", node.name, scope.name,
                         reason)
    if not masked_weights:
        _LOG.warning("The graph has no masked weight to fold (no Mul node named "
                     "'.../masked_weight'); it is only reduced to the outputs' sub-graph")
    _remove_dead(scopes, trail)
    keep_reachable(graph_def, output_node_names)
    _prune_library(graph_def)
    _restore_payloads(graph_def, payloads)
    return graph_def


def _one_line(error):
    """The first informative line of an error message (TensorFlow's run errors start with
    headers such as "Graph execution error:")."""
    lines = [line.strip() for line in str(error).splitlines()]
    informative = [line for line in lines
                   if line and not line.endswith(":") and not line.startswith("Node:")]
    return informative[0] if informative else type(error).__name__


def check_graph_loads(graph_def):
    """Imports `graph_def` into a fresh tf.Graph.

    Raises:
      ValueError: in one line naming what TensorFlow rejects (e.g. a node colocated with a
        node the graph does not have), if the graph would not load.
    """
    try:
        with tf.Graph().as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f"The graph would not load: {_one_line(error)}") from None


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
                         f"{_one_line(error)}") from None


def read_tensor(reader, prefix, key):
    """The value of `key` in the checkpoint, copied out of TensorFlow's memory.

    Raises:
      ValueError: in one line, when the data files are truncated or corrupt.
    """
    try:
        return np.array(reader.get_tensor(key))
    except (tf.errors.OpError, IndexError) as error:  # a truncated .data file: IndexError
        raise ValueError(f"Checkpoint {prefix} cannot be read: tensor {key}: "
                         f"{_one_line(error)}") from None


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
                            self._keys[_ref_name(name).removesuffix("/Read/ReadVariableOp")])
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
            placeholder.name = _fresh_name(taken, f"{node_name}_{index}")
        placeholder.attr["dtype"].type = tensor.dtype.as_datatype_enum
        placeholder.attr["shape"].shape.CopyFrom(shape.as_proto())
        placeholders[name] = placeholder
        _LOG.info("Input %s becomes the placeholder %s: %s %s", name, placeholder.name,
                  tensor.dtype.name, shape)
    return placeholders


def _fresh_name(taken, base):
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    taken.add(name)
    return name


def _replace_by_placeholders(graph_def, placeholders):
    """Makes the readers of each named tensor read its placeholder instead, in place.

    For output 0 the node itself becomes the placeholder (its inputs, and what only they
    needed, drop out of the outputs' sub-graph); other outputs get new nodes.
    """
    renamed = {name: placeholder.name for name, placeholder in placeholders.items()
               if not name.endswith(":0")}
    for node in graph_def.node:
        for i, ref in enumerate(node.input):
            if not ref.startswith("^") and _tensor_id(ref) in renamed:
                node.input[i] = renamed[_tensor_id(ref)]
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
                             f"{_one_line(error)}") from None
    check_node_names(output_node_names, (op.name for op in graph.get_operations()))
    graph_def = graph.as_graph_def()
    if input_node_names is not None:
        _replace_by_placeholders(graph_def, _placeholders(graph, input_node_names, input_shapes))
        _drop_control_inputs_on_input_pipeline(graph_def)
    # The variables freezing will fetch: it keeps colocated nodes too.
    needed = reachable_nodes(graph_def, output_node_names, colocations=True)
    variables = [node.name for node in graph_def.node
                 if node.name in needed and node.op in _VARIABLE_DEFINITION_OPS]
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
                                     f"{_one_line(error)}") from None
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
