"""The only home of private TensorFlow imports and of fixes for tf-slim on TensorFlow 2.21.

TensorFlow 2.21 keeps its TF1 RNN cell classes and `PartitionedVariable` only under
`tensorflow.python`; nothing public exposes them. Importing them here, and nowhere else,
means a TensorFlow upgrade that moves them breaks one module, and `tests/test_compat.py`
says so loudly.
"""

from tensorflow.python.ops.variables import PartitionedVariable  # noqa: F401  (re-exported)


def is_partitioned(variable):
    """True for a variable split by a partitioner (`tf.compat.v1.fixed_size_partitioner` etc.)."""
    return isinstance(variable, PartitionedVariable)
