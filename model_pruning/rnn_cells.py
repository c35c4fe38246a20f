"""Masked RNN cells: TensorFlow's TF1 LSTM and GRU cells with pruning masks on their kernels.

`MaskedBasicLSTMCell`, `MaskedLSTMCell` and `MaskedGRUCell` take the arguments of
`BasicLSTMCell`, `LSTMCell` and `GRUCell` and create the same variables, plus a `mask` and a
`threshold` next to each gate kernel: `<cell scope>/{kernel,bias,mask,threshold}` for the LSTMs,
`<cell scope>/gates/...` and `<cell scope>/candidate/...` for the GRU. Only those kernels are
masked; biases, peephole weights and the LSTM projection are not. The cells run with
`tf.compat.v1.nn.static_rnn`, `dynamic_rnn` and `bidirectional_dynamic_rnn`, and stack and wrap
with `MultiRNNCell` and `DropoutWrapper`, re-exported here because TF 2.21's
`tf.compat.v1.nn.rnn_cell.*` raise "not available with Keras 3":

    cell = rnn_cells.MultiRNNCell([MaskedLSTMCell(256), MaskedLSTMCell(256)])
    outputs, state = tf.compat.v1.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
"""

import contextlib

import tensorflow as tf

from model_pruning import compat, masking, pruning
from model_pruning.compat import DropoutWrapper, LSTMStateTuple, MultiRNNCell  # noqa: F401


class _MaskedKernels:
    """Mixin that runs the parent cell's own `call` with its gate kernels masked.

    The parent reads each kernel from an attribute; for the duration of `call` the attribute
    holds `pruning.apply_mask(kernel)` instead, so the cell math stays TensorFlow's. Masking on
    every call (not once in `build`) lets one cell serve several rnn loops; `apply_mask`
    registers each kernel for pruning once however many time steps call it. The product is
    built in the outermost graph, not in `dynamic_rnn`'s while-loop body (a function graph
    under TF2 control flow): computed once per run, fetchable from the `masked_weights`
    collection, and visible to the strip tool.
    """

    # (attribute the parent's call reads, variable scope of its mask inside the cell's or None)
    _MASKED_KERNELS = (("_kernel", None),)

    def build(self, inputs_shape):
        with masking.suspended():  # `call` masks the kernels, once, even inside masking_scope
            super().build(inputs_shape)

    def call(self, inputs, state):
        with self._kernels_masked():
            return super().call(inputs, state)

    @contextlib.contextmanager
    def _kernels_masked(self):
        kernels = {attribute: getattr(self, attribute) for attribute, _ in self._MASKED_KERNELS}
        # The cell's own getter records mask and threshold in `cell.weights`.
        with _outermost_graph(), \
                tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                            custom_getter=self._rnn_get_variable,
                                            auxiliary_name_scope=False):
            masked = {attribute: _apply_mask_in(kernels[attribute], subscope)
                      for attribute, subscope in self._MASKED_KERNELS}
        # object.__setattr__ skips Keras attribute tracking, which would drop and re-append the
        # kernel in `cell.trainable_weights`.
        try:
            for attribute, kernel in masked.items():
                object.__setattr__(self, attribute, kernel)
            yield
        finally:
            for attribute, kernel in kernels.items():
                object.__setattr__(self, attribute, kernel)


@contextlib.contextmanager
def _outermost_graph():
    """Enters the outermost graph, out of loop and cond bodies, unless that is eager.

    Under eager execution the cell runs in a traced function, where the product must stay to
    follow later mask updates.
    """
    with tf.init_scope():
        outermost_is_eager = tf.executing_eagerly()
    with contextlib.nullcontext() if outermost_is_eager else tf.init_scope():
        yield


def _apply_mask_in(kernel, subscope):
    if subscope is None:
        return pruning.apply_mask(kernel)
    with tf.compat.v1.variable_scope(subscope):
        return pruning.apply_mask(kernel)


class MaskedBasicLSTMCell(_MaskedKernels, compat.BasicLSTMCell):
    """`BasicLSTMCell` (no peepholes, clipping or projection) with a masked kernel.

    Arguments as BasicLSTMCell: num_units, forget_bias=1.0, state_is_tuple=True,
    activation=None, reuse=None, name=None.
    """


class MaskedLSTMCell(_MaskedKernels, compat.LSTMCell):
    """`LSTMCell` with a masked kernel; peepholes and the projection are not masked.

    Arguments as LSTMCell: num_units, use_peepholes=False, cell_clip=None, initializer=None,
    num_proj=None, proj_clip=None, num_unit_shards=None, num_proj_shards=None,
    forget_bias=1.0, state_is_tuple=True, activation=None, reuse=None, name=None.
    """


class MaskedGRUCell(_MaskedKernels, compat.GRUCell):
    """`GRUCell` with both kernels masked: `gates/kernel` (reset and update) and
    `candidate/kernel`, each with its own `mask` and `threshold` in the same scope.

    Arguments as GRUCell: num_units, activation=None, reuse=None, kernel_initializer=None,
    bias_initializer=None, name=None.
    """

    _MASKED_KERNELS = (("_gate_kernel", "gates"), ("_candidate_kernel", "candidate"))
