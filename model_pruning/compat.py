"""The only home of private TensorFlow imports and of fixes for tf-slim on TensorFlow 2.21.

TensorFlow 2.21 keeps its TF1 RNN cell classes and `PartitionedVariable` only under
`tensorflow.python`; nothing public exposes them (`tf.compat.v1.nn.rnn_cell.*` raises "not
available with Keras 3"). Importing them here, and nowhere else, means a TensorFlow upgrade that
moves them breaks one module, and `tests/test_compat.py` says so loudly.

Re-exported for users of the masked cells: `MultiRNNCell`, `DropoutWrapper`, `LSTMStateTuple`
and `RNNCell`, the classes `tf.compat.v1.nn.rnn_cell` used to give.
"""

import tensorflow as tf
import tf_slim as slim
from tensorflow.python.eager import context as _eager_context
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.ops import rnn_cell_impl as _rnn_cell_impl
from tensorflow.python.ops.variables import PartitionedVariable  # noqa: F401  (re-exported)

RNNCell = _rnn_cell_impl.RNNCell
BasicLSTMCell = _rnn_cell_impl.BasicLSTMCell
LSTMCell = _rnn_cell_impl.LSTMCell
GRUCell = _rnn_cell_impl.GRUCell
LSTMStateTuple = _rnn_cell_impl.LSTMStateTuple
MultiRNNCell = _rnn_cell_impl.MultiRNNCell
DropoutWrapper = _rnn_cell_impl.DropoutWrapper


def is_partitioned(variable):
    """True for a variable split by a partitioner (`tf.compat.v1.fixed_size_partitioner` etc.)."""
    return isinstance(variable, PartitionedVariable)


def eager_execution_is_global():
    """True unless `tf.compat.v1.disable_eager_execution()` was called.

    `tf.executing_eagerly()` is False inside `with tf.Graph().as_default()` even when the
    program runs eagerly, which is the case slim.learning.train's supervisor cannot handle.
    """
    return _eager_context.default_execution_mode == _eager_context.EAGER_MODE


def _restore_ops_tensor_alias():
    """Gives `tensorflow.python.framework.ops` back its `Tensor` attribute.

    TF 2.21 moved the class to `tf.Tensor` only; tf-slim's `smart_cond` (used by every
    batch_norm path) still reads `ops.Tensor`. The alias names the very same class.
    """
    if getattr(_tf_ops, "Tensor", None) is not tf.Tensor:
        _tf_ops.Tensor = tf.Tensor


@slim.add_arg_scope
def batch_norm(inputs, **kwargs):
    """`slim.batch_norm` that builds on TensorFlow 2.21; use it as `normalizer_fn`.

    Takes exactly slim.batch_norm's arguments and honours `slim.arg_scope([slim.batch_norm])`
    as well as its own arg_scope. Two TF 2.21 breakages are worked around:

    * slim's default `updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS` (that very
      object) selects a Keras layer TF 2.21 no longer ships; the same collection given as the
      list `[UPDATE_OPS]` selects slim's own implementation (fused for rank 2 and 4). The
      moving-average update ops still land in UPDATE_OPS, so training code is unchanged.
      Any other value (None for in-place updates, a list) is passed through.
    * slim reads the removed `ops.Tensor`; the alias is restored on the first call (a
      process-wide but harmless change, since it names `tf.Tensor` itself).

    `renorm=True` needs the missing Keras layer and still fails.

        with slim.arg_scope([masked_conv2d], normalizer_fn=compat.batch_norm,
                            normalizer_params={"is_training": True, "decay": 0.997}):
            net = masked_conv2d(images, 64, [3, 3])

    Returns:
      The normalized tensor, as slim.batch_norm returns it.
    """
    _restore_ops_tensor_alias()
    update_ops = tf.compat.v1.GraphKeys.UPDATE_OPS
    slim_scope = slim.current_arg_scope().get(slim.arg_scope_func_key(slim.batch_norm), {})
    updates = kwargs.get("updates_collections", slim_scope.get("updates_collections", update_ops))
    if updates is update_ops:
        kwargs["updates_collections"] = [update_ops]
    return slim.batch_norm(inputs, **kwargs)
