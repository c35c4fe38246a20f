"""The index of a GraphDef that the graph tools share, and the names they use.

Freezing (`freeze`), folding the masks (`fold`), `shrink` and `export` are passes over a
GraphDef, as in TensorFlow's graph_transforms tool. What they have in common is here:

* names: the reference syntax (`ref_name`, `tensor_id`, `unique_name`), contrib's masked
  weight names, and the checks of the node names a user passes;
* the index: `Scope`, the nodes of the graph or of one function body by name and by the
  tensors they read, and `GraphIndex`, every scope of a GraphDef and who calls each function;
* passes over a whole GraphDef: `keep_reachable` (the outputs' sub-graph), `prune_library`
  and `check_graph_loads`.
"""

import collections
import difflib
import re

import numpy as np
import tensorflow as tf

# Contrib found masked weights by a name containing `masked_weight`; that also matches the
# `.../masked_weight/Enter` nodes of TF1 loops, so match the last name component instead.
MASKED_WEIGHT = re.compile(r"(^|/)masked_weight(_\d+)?$")
# The op types that define a variable; a frozen graph has none.
VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")


def ref_name(ref):
    """The node (or function argument) a reference names: `^a`, `a`, `a:1`, `a:out:1` -> `a`."""
    return ref.lstrip("^").split(":")[0]


def tensor_id(ref):
    """`a` -> `a:0`; `a:1` stays."""
    return ref if ":" in ref else ref + ":0"


def unique_name(taken, base):
    """`base`, or the first of `base_1`, `base_2`, ... that is not in `taken`."""
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _names(names, what, normalize, kind, example):
    """A list of names from a list or a comma-separated string, each passed to `normalize`.

    Raises:
      ValueError: when no name is left.
    """
    if isinstance(names, str):
        names = names.split(",")
    names = [normalize(name.strip()) for name in names if name.strip()]
    if not names:
        raise ValueError(f"{what} is empty: need at least 1 {kind} name "
                         f"(a list, or comma-separated like '{example}')")
    return names


def normalize_node_names(names, what="output_node_names"):
    """A list of node names from a list or a comma-separated string; drops `:0` and `^`.

    Raises:
      ValueError: when no name is left.
    """
    return _names(names, what, ref_name, "node", "logits,probabilities")


def normalize_tensor_names(names, what="input_node_names"):
    """A list of tensor names (`node:index`, `node` meaning `node:0`) from a list or a
    comma-separated string.

    Raises:
      ValueError: when no name is left.
    """
    return _names(names, what, tensor_id, "tensor", "IteratorGetNext:0,lengths")


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


def tensor_value(tensor):
    """The array a TensorProto holds; a read-only view of its bytes when it has them."""
    content = tensor.tensor_content
    if not content:
        return tf.make_ndarray(tensor)
    dtype = tf.as_dtype(tensor.dtype).as_numpy_dtype
    return np.frombuffer(content, dtype).reshape(tf.TensorShape(tensor.tensor_shape).as_list())


def called_functions(node):
    """Names of the functions a node calls, directly or through a function attr."""
    names = [node.op]
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(func.name for func in value.list.func)
    return names


class Scope:
    """The nodes of the top-level graph or of one function body, indexed, and the reference
    syntax there.

    In the graph an output reads `node:index`; in a function body it reads
    `node:output_arg:index`, and a bare name may be one of the function's arguments.

    `by_name`, `readers` (tensor id -> [(node, input index)]) and `references` (node name ->
    how many inputs name it, control ones too) are read when the scope is made and again by
    `reindex`; `add`, `remove` and `rewrite_refs` keep them current, an edit of a node's
    inputs made directly does not.
    """

    def __init__(self, nodes, function=None):
        self.nodes = nodes
        self.function = function
        self.reindex()

    def reindex(self):
        self.by_name = {}
        self.readers = collections.defaultdict(list)
        self.references = collections.Counter()
        for node in self.nodes:
            self._index(node)

    def _index(self, node):
        self.by_name[node.name] = node
        for index, ref in enumerate(node.input):
            self.references[ref_name(ref)] += 1
            if not ref.startswith("^"):
                self.readers[tensor_id(ref)].append((node, index))

    @property
    def name(self):
        return self.function.signature.name if self.function else "the graph"

    def add(self, node):
        """Appends a copy of the NodeDef `node`, indexed; returns the copy."""
        self.nodes.append(node)
        self._index(self.nodes[-1])
        return self.nodes[-1]

    def remove(self, name):
        """Deletes the node `name`."""
        index = next(i for i, node in enumerate(self.nodes) if node.name == name)
        del self.nodes[index]
        self.reindex()

    def arg_index(self, name):
        """The position of the function argument `name`, or None."""
        if self.function is None:
            return None
        names = [arg.name for arg in self.function.signature.input_arg]
        return names.index(name) if name in names else None

    @staticmethod
    def output_index(ref):
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
        """Every reference in the scope, as it is now: node inputs and the function's returns."""
        for node in self.nodes:
            yield from node.input
        if self.function is not None:
            yield from self.function.ret.values()
            yield from self.function.control_ret.values()

    def consumers(self, name):
        """The references to `name`, as they are now."""
        return [ref for ref in self.refs() if ref_name(ref) == name]

    def rewrite_refs(self, rewrite):
        """Replaces every reference `r` by `rewrite(r)`."""
        for node in self.nodes:
            for i, ref in enumerate(node.input):
                node.input[i] = rewrite(ref)
        if self.function is not None:
            for key, ref in list(self.function.ret.items()):
                self.function.ret[key] = rewrite(ref)
        self.reindex()

    def const_path(self, ref):
        """The nodes from `ref` through Identity nodes to a Const, or None if it is no Const."""
        path = []
        node = self.by_name.get(ref_name(ref))
        while node is not None and node.op == "Identity":
            path.append(node)
            node = self.by_name.get(ref_name(node.input[0]))
        return path + [node] if node is not None and node.op == "Const" else None

    def value(self, ref):
        """The array `ref` reads from a Const (through Identity nodes), or None."""
        path = self.const_path(ref)
        return None if path is None else tensor_value(path[-1].attr["value"].tensor)


class GraphIndex:
    """Every scope of a GraphDef, and which nodes call each function."""

    def __init__(self, graph_def):
        self.graph = Scope(graph_def.node)
        self.functions = {f.signature.name: Scope(f.node_def, f)
                          for f in graph_def.library.function}
        self.callers = {}  # function name -> [(scope, node)]
        for scope in self.all():
            for node in scope.nodes:
                for function_name in called_functions(node):
                    self.callers.setdefault(function_name, []).append((scope, node))

    def all(self):
        return [self.graph, *self.functions.values()]


def masked_weight_nodes(graph_def):
    """(scope name, node) for every masked weight in the graph ("") and its functions, by name.

    Before stripping these are `Mul` nodes, after it `Const` nodes holding mask * weight.
    """
    return [(scope.function.signature.name if scope.function else "", node)
            for scope in GraphIndex(graph_def).all() for node in scope.nodes
            if node.op in ("Mul", "Const") and MASKED_WEIGHT.search(node.name)]


def reachable_nodes(graph_def, output_node_names, colocations=False):
    """Names of the top-level nodes the outputs need, through data and control inputs, and
    with `colocations` through colocation entries too, as `extract_sub_graph` follows them."""
    inputs = {node.name: [ref_name(ref) for ref in node.input] for node in graph_def.node}
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


def prune_library(graph_def):
    """Drops the functions that no remaining node calls, and their gradients."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    reachable, pending = set(), [graph_def.node]
    while pending:
        for node in pending.pop():
            for name in called_functions(node):
                if name in functions and name not in reachable:
                    reachable.add(name)
                    pending.append(functions[name].node_def)
    kept = [f for f in graph_def.library.function if f.signature.name in reachable]
    gradients = [g for g in graph_def.library.gradient if g.function_name in reachable]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(gradients)


def one_line(error):
    """The first informative line of an error message (TensorFlow's run errors start with
    headers such as "Graph execution error:")."""
    lines = [line.strip() for line in str(error).splitlines()]
    informative = [line for line in lines
                   if line and not line.endswith(":") and not line.startswith("Node:")]
    return informative[0] if informative else type(error).__name__


def imported(graph_def):
    """`graph_def` imported into a fresh tf.Graph: its tensors, with static shapes and dtypes."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph


def check_graph_loads(graph_def):
    """Imports `graph_def` into a fresh tf.Graph.

    Raises:
      ValueError: in one line naming what TensorFlow rejects (e.g. a node colocated with a
        node the graph does not have), if the graph would not load.
    """
    try:
        imported(graph_def)
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f"The graph would not load: {one_line(error)}") from None
