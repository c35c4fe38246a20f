"""Fold the masks of a frozen graph into its weights: the pass of `strip_pruning_vars_fn`.

Each `.../masked_weight` product whose two factors are frozen constants becomes one constant
holding mask * weight, and only what the outputs need is kept, so no `mask`, `threshold` or
`last_mask_update_step` node is left.

Unlike contrib, the product is computed in numpy from the frozen constants, never by running
the graph. So masked weights behind placeholders and inside while loops (dynamic_rnn, both as
TF2 functional `While` ops and as TF1 `Enter`/`Exit` frames) fold the same way, and the
caller's default graph is never touched. In a functional loop the mask and weight reach the
body as loop variables; once folded, those variables are removed from the `While` node and
from the body and cond functions.
"""

import logging

import numpy as np
import tensorflow as tf

from model_pruning.graphdef import (MASKED_WEIGHT, VARIABLE_OPS, GraphIndex, check_node_names,
                                    keep_reachable, masked_weight_nodes, normalize_node_names,
                                    prune_library, ref_name, tensor_value, unique_name)

_LOG = logging.getLogger(__name__)

_WHILE_OPS = ("While", "StatelessWhile")
_VARIABLE_OPS = VARIABLE_OPS + ("ReadVariableOp",)


def _is_masked_weight(node):
    """True for the `mask * weight` product that `apply_mask` and the masked layers create."""
    return node.op == "Mul" and bool(MASKED_WEIGHT.search(node.name))


def _loop_of(scopes, scope):
    """(caller scope, While node) when `scope` is the body of exactly one while loop."""
    callers = scopes.callers.get(scope.name, [])
    if scope.function is None or len(callers) != 1:
        return None
    caller_scope, caller = callers[0]
    if caller.op not in _WHILE_OPS or caller.attr["body"].func.name != scope.name:
        return None
    if any(len(scopes.callers.get(caller.attr[key].func.name, [])) != 1
           for key in ("body", "cond")):
        return None
    return caller_scope, caller


def _is_loop_invariant(body, index):
    """True when the loop body returns its argument `index` unchanged."""
    signature = body.function.signature
    return body.function.ret.get(signature.output_arg[index].name) == \
        signature.input_arg[index].name


def _const_value(payloads, scope, node):
    """The array a Const node holds, from the input graph when the copy left it out."""
    if scope.function is None and node.name in payloads:
        return tensor_value(payloads[node.name])
    return tensor_value(node.attr["value"].tensor)


class _NotConstant(Exception):
    """A masked weight input that is not a frozen constant; the message says why."""


def _constant_value(scopes, payloads, scope, ref, trail):
    """The array `ref` always holds, following Identity nodes, loop-invariant TF1 `Enter`
    nodes and loop-invariant arguments of functional while loops to a Const.

    Appends every (scope, name) it passes to `trail`.
    Raises _NotConstant when the value depends on anything else.
    """
    name = ref_name(ref)
    index = scope.arg_index(name)
    if index is not None:
        loop = _loop_of(scopes, scope)
        if loop is None or not _is_loop_invariant(scope, index):
            raise _NotConstant(f"{name} is an argument of function {scope.name} that is not a "
                               "loop-invariant argument of a single while loop")
        trail.append((scope, name))
        caller_scope, caller = loop
        return _constant_value(scopes, payloads, caller_scope, caller.input[index], trail)
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
        return _const_value(payloads, scope, node)
    if node.op == "Identity" or (node.op == "Enter" and node.attr["is_constant"].b):
        return _constant_value(scopes, payloads, scope, node.input[0], trail)
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


def _frame_enters(scope, path):
    """The TF1 `Enter` nodes a path passed, innermost frame first."""
    return [scope.by_name[name] for path_scope, name in path
            if path_scope is scope and name in scope.by_name
            and scope.by_name[name].op == "Enter"]


def _enter_frames(scope, const_name, enters):
    """Re-creates the loop-invariant `enters` (innermost first) as a chain from the constant,
    and points the constant's consumers at its end.

    A TF1 loop frame only accepts a value through an Enter, so the constant is placed outside
    all frames (where the mask and weight were) and entered like they were.
    """
    consumers_read = unique_name(scope.by_name, f"{const_name}/folded_enter")
    scope.rewrite_refs(lambda ref: scope.retarget(ref, consumers_read)
                       if ref_name(ref) == const_name else ref)
    source = const_name
    for depth, enter in enumerate(reversed(enters)):
        chained = tf.compat.v1.NodeDef()
        chained.CopyFrom(enter)
        chained.name = consumers_read if depth == len(enters) - 1 else \
            unique_name(scope.by_name, f"{consumers_read}/outer_{depth}")
        chained.ClearField("input")
        chained.input.append(source)
        scope.add(chained)
        source = chained.name


def _fold(scopes, payloads, scope, node, trail, folded):
    """Replaces one masked weight by its constant product. Raises _NotConstant.

    `folded` maps the (mask, weight) constants already folded in this scope to the product's
    name: a cell called once per time step (static_rnn) multiplies the same pair several
    times, and the copies become Identity nodes of the first so the weight is stored once.
    """
    paths = [[] for _ in range(2)]
    data_inputs = [ref for ref in node.input if not ref.startswith("^")]
    factors = [_constant_value(scopes, payloads, scope, ref, path)
               for ref, path in zip(data_inputs, paths)]
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
                           if ref_name(ref) == node.name else ref)
    for path in paths:
        trail.extend(path)


def _drop_loop_var(scopes, body, arg_name):
    """Removes a loop variable that nothing reads any more from its while loop.

    Returns False (and changes nothing) while something still reads it.
    """
    index = body.arg_index(arg_name)
    loop = _loop_of(scopes, body)
    if index is None or loop is None:
        return False
    caller_scope, caller = loop
    cond = scopes.functions[caller.attr["cond"].func.name]
    cond_arg = cond.function.signature.input_arg[index].name
    passthrough = body.function.signature.output_arg[index].name
    body_reads = [key for key, ref in body.function.ret.items()
                  if ref == arg_name and key != passthrough]
    body_reads += [ref for node in body.nodes for ref in node.input
                   if ref_name(ref) == arg_name]
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
        if ref_name(ref) != caller.name or ref.startswith("^"):
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
                scope.remove(name)
                changed = True


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


def folded_weights(graph_def):
    """(name, array) of every masked weight a stripped graph holds as a constant."""
    return [(node.name, tensor_value(node.attr["value"].tensor))
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
    scopes = GraphIndex(graph_def)
    trail, folded = [], {}
    masked_weights = [(scope, node) for scope in scopes.all() for node in scope.nodes
                      if _is_masked_weight(node)]
    for number, (scope, node) in enumerate(masked_weights, start=1):
        _LOG.info("Folding masked weight %d/%d: %s", number, len(masked_weights), node.name)
        try:
            _fold(scopes, payloads, scope, node, trail, folded)
        except _NotConstant as reason:
            _LOG.warning("Masked weight %s in %s was left as is: %s", node.name, scope.name,
                         reason)
    if not masked_weights:
        _LOG.warning("The graph has no masked weight to fold (no Mul node named "
                     "'.../masked_weight'); it is only reduced to the outputs' sub-graph")
    _remove_dead(scopes, trail)
    keep_reachable(graph_def, output_node_names)
    prune_library(graph_def)
    _restore_payloads(graph_def, payloads)
    return graph_def
