"""Edits of a GraphDef planned against its index and applied together.

A pass such as `shrink` decides what to change while it walks the original graph, in the
original numbering of every tensor, and changes nothing until the walk is done, so a layer it
gives up on leaves no half-made change. An `Edits` holds two kinds of edit:

* a `ConstantEdit` per constant input of a node, keyed by (node name, input index): the value
  is replaced, then an offset is added, then indices are kept along axes, in the order asked;
* a replacement per tensor, keyed by tensor id: a function that builds new nodes from the
  tensor (with `new_node`, `new_constant`) and returns what its readers read instead;
* a replacement per node input, keyed by (node name, input index): the same for one reader,
  built from what that input reads once the tensor replacements are made.

    edits = Edits()
    edits.constant("conv/Conv2D", 1).take(-1, kept_channels)
    edits.replace_tensor("relu:0", build_selection)
    edits.apply(Scope(graph_def.node))
"""

import numpy as np
import tensorflow as tf

from model_pruning.graphdef import unique_name


class ConstantEdit:
    """What becomes of one constant input: `value` (None: the present one), plus `offset`
    (None: nothing added), then each (axis, kept indices) of `takes` in turn."""

    def __init__(self):
        self.value = None
        self.offset = None
        self.takes = []

    def set(self, value):
        self.value = value

    def add(self, offset):
        self.offset = (0.0 if self.offset is None else self.offset) + offset

    def take(self, axis, kept):
        self.takes.append((axis, list(kept)))

    def merge(self, other):
        if other.value is not None:
            self.set(other.value)
        if other.offset is not None:
            self.add(other.offset)
        self.takes.extend(other.takes)

    def result(self, present):
        """The new value of a constant that holds `present`."""
        value = present if self.value is None else self.value
        if self.offset is not None:
            value = (value + self.offset).astype(value.dtype)
        for axis, kept in self.takes:
            value = np.take(value, kept, axis=axis)
        return value


class Edits:
    """Planned edits: `constants` {(node name, input index): ConstantEdit},
    `replacements` {tensor id: build(scope) -> the reference its readers read instead} and
    `input_replacements` {(node name, input index): build(scope, ref) -> the reference the
    input reads instead of `ref`}."""

    def __init__(self):
        self.constants = {}
        self.replacements = {}
        self.input_replacements = {}

    def constant(self, node_name, index):
        """The edit of input `index` of node `node_name`, made empty on first use."""
        return self.constants.setdefault((node_name, index), ConstantEdit())

    def replace_tensor(self, tensor, build):
        self.replacements[tensor] = build

    def replace_input(self, node_name, index, build):
        self.input_replacements[node_name, index] = build

    def merge(self, other):
        """Adds the edits of `other`; its replacements, and the values it sets, win."""
        for key, edit in other.constants.items():
            self.constant(*key).merge(edit)
        self.replacements.update(other.replacements)
        self.input_replacements.update(other.input_replacements)

    def apply(self, scope):
        """Makes the edits in the nodes of `scope`, as indexed when they were planned.

        The constants come first, then the tensor replacements, then the input replacements,
        each in sorted key order so the
        result does not depend on the order of planning. A Const is changed in place when
        its reader (through Identity nodes) is the only one, else the reader gets a new Const.
        """
        for (name, index) in sorted(self.constants):
            node = scope.by_name[name]
            value = self.constants[name, index].result(scope.value(node.input[index]))
            path = scope.const_path(node.input[index])
            if all(scope.references[step.name] == 1 for step in path):
                path[-1].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            else:
                node.input[index] = new_constant(scope, f"{node.name}/shrunk_input_{index}",
                                                 value)
        for tensor in sorted(self.replacements):
            readers = list(scope.readers[tensor])  # before the new nodes read it too
            replacement = self.replacements[tensor](scope)
            for node, index in readers:
                node.input[index] = replacement
        for (name, index) in sorted(self.input_replacements):
            node = scope.by_name[name]
            node.input[index] = self.input_replacements[name, index](scope, node.input[index])


def new_node(scope, base, op, inputs, **attrs):
    """Adds a node named after `base` to `scope`; returns its name.

    Attrs are DataTypes, arrays (tensors), bytes, bools or lists of ints.
    """
    node = tf.compat.v1.NodeDef(name=unique_name(scope.by_name, base), op=op)
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
    return scope.add(node).name


def new_constant(scope, base, value):
    """Adds a Const node holding the array `value`; returns its name."""
    return new_node(scope, base, "Const", [], dtype=tf.as_dtype(value.dtype), value=value)
