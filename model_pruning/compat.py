"""The only home of private TensorFlow imports, of fixes for tf-slim on TensorFlow 2.21, and of
every difference between the supported TensorFlow releases (2.12 to 2.21 and tf-nightly, with
Keras 2, Keras 3 or legacy tf-keras): each function names the releases it serves.

TensorFlow 2.21 keeps its TF1 RNN cell classes and `PartitionedVariable` only under
`tensorflow.python`; nothing public exposes them (`tf.compat.v1.nn.rnn_cell.*` raises "not
available with Keras 3"). Importing them here, and nowhere else, means a TensorFlow upgrade that
moves them breaks one module, and `tests/test_compat.py` says so loudly.

Re-exported for users of the masked cells: `MultiRNNCell`, `DropoutWrapper`, `LSTMStateTuple`
and `RNNCell`, the classes `tf.compat.v1.nn.rnn_cell` used to give.
"""

import functools
import re
import sys
import warnings

import tensorflow as tf
import tf_slim as slim
from tensorflow.python.eager import context as _eager_context
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.ops import rnn_cell_impl as _rnn_cell_impl
from tensorflow.python.ops.variables import PartitionedVariable  # noqa: F401  (re-exported)

from model_pruning.requirements import tensorflow_version

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


def whole_value(variable):
    """The value of a variable, partitioned or not, or of a tensor, as one tensor."""
    return variable.as_tensor() if is_partitioned(variable) else tf.convert_to_tensor(variable)


def quantize_per_tensor(converter):
    """Makes a `tf.lite.TFLiteConverter` quantize each weight with one scale instead of one per
    output channel; its switch is private (present from TF 2.12 to nightly)."""
    converter._experimental_disable_per_channel = True


def eager_execution_is_global():
    """True unless `tf.compat.v1.disable_eager_execution()` was called.

    `tf.executing_eagerly()` is False inside `with tf.Graph().as_default()` even when the
    program runs eagerly, which is the case slim.learning.train's supervisor cannot handle.
    """
    return _eager_context.default_execution_mode == _eager_context.EAGER_MODE


def tf1_layers_and_cells_available():
    """True where TensorFlow's own `tf.compat.v1.layers` and `tf.compat.v1.nn.rnn_cell` work.

    TF 2.12-2.15: always (tf.keras is Keras 2). TF 2.16+: only with TF_USE_LEGACY_KERAS=1 set
    before TensorFlow is imported and the matching tf-keras installed; with Keras 3 they raise
    "not available with Keras 3", and this module's MultiRNNCell and DropoutWrapper stand in.
    """
    try:
        return all(callable(api) for api in (tf.compat.v1.layers.dense,
                                             tf.compat.v1.nn.rnn_cell.MultiRNNCell))
    except (AttributeError, ImportError):
        return False


def protobuf_breaks_text_graphs(tensorflow_release, protobuf_release):
    """True for TF 2.20 with protobuf 7 or newer, which cannot write graph.pbtxt.

    TF 2.20 accepts any protobuf >= 5.28, but `tf.io.write_graph(as_text=True)` passes
    `float_format`, which protobuf 7 removed: every MonitoredTrainingSession with a
    checkpoint_dir, and `train`, fail. TF 2.12-2.19 require protobuf < 6; 2.21 dropped the
    argument.
    """
    protobuf_major = int(re.match(r"\d+", protobuf_release).group(0))
    return tensorflow_version(tensorflow_release) == (2, 20) and protobuf_major >= 7


def _warn_if_protobuf_breaks_text_graphs():
    from google import protobuf
    if protobuf_breaks_text_graphs(tf.__version__, protobuf.__version__):
        warnings.warn(f"TensorFlow {tf.__version__} cannot write text graphs with protobuf "
                      f"{protobuf.__version__} (MonitoredTrainingSession with a checkpoint_dir "
                      "fails: \"unexpected keyword argument 'float_format'\"): "
                      "pip install 'protobuf<7'", stacklevel=3)


_warn_if_protobuf_breaks_text_graphs()


def _restore_ops_tensor_alias():
    """Gives `tensorflow.python.framework.ops` back its `Tensor` attribute.

    TF 2.21 moved the class to `tf.Tensor` only; tf-slim's `smart_cond` (used by every
    batch_norm path) still reads `ops.Tensor`. The alias names the very same class.
    """
    if getattr(_tf_ops, "Tensor", None) is not tf.Tensor:
        _tf_ops.Tensor = tf.Tensor


def _keras_batch_norm_layer_loads():
    """True where slim.batch_norm's default path can build its layer.

    With `updates_collections=UPDATE_OPS` (slim's default, and every tf_slim net's arg_scope)
    slim builds `tensorflow.python.layers.normalization.BatchNormalization`. TF up to 2.15 ships
    it; TF 2.16+ loads it lazily from tf_keras, which fails with Keras 3 ("No module named
    'tf_keras'").
    """
    try:
        from tensorflow.python.layers import normalization
        return normalization.BatchNormalization is not None
    except (ImportError, AttributeError):
        return False


def _batch_norm_with_slim_updates(slim_batch_norm):
    """`slim_batch_norm` made to take slim's own implementation instead of the Keras layer.

    The same collection given as the list `[UPDATE_OPS]` selects slim's own batch norm (fused
    for rank 2 and 4) with the same variables (`BatchNorm/beta`, `moving_mean`, ...), and its
    moving-average updates still land in UPDATE_OPS, so training code is unchanged. Any other
    value (None for in-place updates, another list) is passed through. The result shares
    slim.batch_norm's arg_scope key: `slim.arg_scope([slim.batch_norm], ...)` reaches it.
    """
    update_ops = tf.compat.v1.GraphKeys.UPDATE_OPS
    key = slim.arg_scope_func_key(slim_batch_norm)

    @functools.wraps(slim_batch_norm)
    def batch_norm(inputs, *args, **kwargs):
        scoped = slim.current_arg_scope().get(key, {})
        if kwargs.get("updates_collections", scoped.get("updates_collections", update_ops)) \
                is update_ops:
            kwargs["updates_collections"] = [update_ops]
        return slim_batch_norm(inputs, *args, **kwargs)

    batch_norm._key_op = key
    batch_norm.fixed_for_keras_3 = True
    return batch_norm


def _fix_slim_batch_norm():
    """Makes `slim.batch_norm`, and so every tf_slim net's arg_scope, build on TF 2.16+ with
    Keras 3, by rebinding it in tf_slim's modules (TF 2.12-2.15 and legacy Keras: unchanged).

    Returns:
      slim.batch_norm as it is afterwards.
    """
    _restore_ops_tensor_alias()  # TF 2.20+: read by every slim.batch_norm path
    original = slim.batch_norm
    if getattr(original, "fixed_for_keras_3", False) or _keras_batch_norm_layer_loads():
        return original
    fixed = _batch_norm_with_slim_updates(original)
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "tf_slim" and getattr(module, "batch_norm", None) is original:
            module.batch_norm = fixed
    return fixed


# `slim.batch_norm` itself, fixed where it needs to be; use it as `normalizer_fn`.
batch_norm = _fix_slim_batch_norm()
