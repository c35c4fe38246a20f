"""Mask math: scores -> threshold -> mask, block pooling, and variable helpers.

Everything here is a pure function of tensors (no collections, no global step), so each
criterion can be tested alone against numpy. A criterion takes non-negative `scores` (by
default |w|) and a target `sparsity` and returns `(threshold, keep)`, where `keep` is a bool
tensor of the scores' shape:

* `histogram_threshold_mask`: contrib's one-pass histogram method; keeps scores strictly above
  a threshold quantised to `max/nbins`, so the realised sparsity is approximate.
* `exact_threshold_mask`: keeps exactly `round(n * (1 - sparsity))` scores, found by a radix
  selection over the float bit patterns (a few passes, no sort); ties at the threshold are
  broken by flat index, lowest first.

Block sparsity pools the scores of each block (`pool_blocks`), applies a criterion to the pooled
matrix and expands the pooled mask back (`expand_tensor`).
"""

import contextlib
import functools

import numpy as np
import tensorflow as tf

_NBINS = 256
BLOCK_POOLING_FUNCTIONS = ("AVG", "MAX", "L2")

# For non-negative IEEE floats the bit pattern read as a signed integer of the same width is
# ordered like the value, so the k-th largest float is the k-th largest integer key.
_KEY_DTYPES = {
    tf.float16: tf.int16,
    tf.bfloat16: tf.int16,
    tf.float32: tf.int32,
    tf.float64: tf.int64,
}
# 16-bit digits: float32 needs two passes, float16 one, float64 four.
_RADIX_BITS = 16


def _variable_scope(scope):
    """`scope` opened as a variable scope; an empty scope means the enclosing one."""
    if scope in ("", None):
        return contextlib.nullcontext()
    return tf.compat.v1.variable_scope(scope)


def weight_mask_variable(var, scope):
    """Creates (or reuses) `<scope>/mask`: ones of `var`'s shape and dtype, not trainable."""
    with _variable_scope(scope):
        return tf.compat.v1.get_variable(
            "mask",
            shape=var.get_shape(),
            dtype=var.dtype.base_dtype,
            initializer=tf.compat.v1.ones_initializer(),
            trainable=False,
        )


def weight_threshold_variable(var, scope):
    """Creates (or reuses) the scalar `<scope>/threshold` of `var`'s dtype, initialised to 0."""
    with _variable_scope(scope):
        return tf.compat.v1.get_variable(
            "threshold",
            shape=[],
            dtype=var.dtype.base_dtype,
            initializer=tf.compat.v1.zeros_initializer(),
            trainable=False,
        )


def num_to_keep(size, sparsity):
    """Number of entries kept: round(size * (1 - sparsity)) as an int32 tensor, within [0, size]."""
    keep = tf.round(tf.cast(size, tf.float64) * (1.0 - tf.cast(sparsity, tf.float64)))
    return tf.cast(tf.clip_by_value(keep, 0.0, tf.cast(size, tf.float64)), tf.int32)


def _nonempty_range(value_range):
    """`value_range` as float32 [low, high] with high > low, so an all-equal input still bins."""
    low = tf.cast(value_range[0], tf.float32)
    high = tf.maximum(tf.cast(value_range[1], tf.float32), low + np.finfo(np.float32).tiny)
    return low, high


def _histogram_bins(values, value_range, nbins):
    """Bin index of each value, clipped to [0, nbins - 1].

    Computed as floor((v - low) / ((high - low) / nbins)) in float64, the arithmetic of
    `tf.histogram_fixed_width`, so both CDF builders agree on values at bin edges.
    """
    values = tf.cast(tf.reshape(values, [-1]), tf.float64)
    low, high = (tf.cast(bound, tf.float64) for bound in _nonempty_range(value_range))
    index = tf.cast(tf.floor((values - low) / ((high - low) / nbins)), tf.int32)
    return tf.clip_by_value(index, 0, nbins - 1)


def compute_cdf_from_histogram(values, value_range, nbins=_NBINS, name=None):
    """Normalised cumulative histogram of `values` over `value_range` in `nbins` bins.

    Values below the range count in the first bin, values at or above its top in the last.
    """
    with tf.name_scope(name or "cdf"):
        values = tf.cast(tf.reshape(values, [-1]), tf.float32)
        # One fused pass; it clips out-of-range values into the edge bins like _histogram_bins.
        histogram = tf.cast(
            tf.histogram_fixed_width(values, tf.stack(_nonempty_range(value_range)), nbins=nbins),
            tf.float32)
        cdf = tf.cumsum(histogram)
        return cdf / tf.maximum(cdf[-1], 1.0)


def compute_cdf(values, value_range, nbins=_NBINS, name=None):
    """The same CDF as `compute_cdf_from_histogram`, built by counting `bin <= i` for each bin.

    It avoids scatter-style ops (the TPU-friendly variant selected by `use_tpu`).
    """
    with tf.name_scope(name or "cdf"):
        index = _histogram_bins(values, value_range, nbins)

        def count_up_to(i, cdf):
            count = tf.reduce_sum(tf.cast(index <= i, tf.float32))
            return i + 1, cdf.write(i, count)

        _, counts = tf.while_loop(
            lambda i, _: i < nbins,
            count_up_to,
            [tf.constant(0), tf.TensorArray(tf.float32, size=nbins)],
        )
        cdf = counts.stack()
        return cdf / tf.maximum(cdf[-1], 1.0)


def histogram_threshold_mask(scores, sparsity, nbins, previous_threshold=0.0, decay=0.0,
                             use_tpu=False):
    """Contrib's histogram criterion.

    threshold = (number of bins whose CDF is at most `sparsity`) / nbins * max(scores): the
    highest bin edge that prunes no more than `sparsity`. It is smoothed as
    `(1 - decay) * threshold + decay * previous_threshold`; scores strictly above it are kept.
    A threshold of zero prunes nothing (so sparsity 0, or an all-zero weight, keeps every entry).
    """
    scores32 = tf.cast(scores, tf.float32)
    top = tf.reduce_max(scores32)
    value_range = [tf.constant(0.0), top]
    cdf_fn = compute_cdf if use_tpu else compute_cdf_from_histogram
    cdf = cdf_fn(scores32, value_range, nbins=nbins)
    bins_below = tf.reduce_sum(tf.cast(cdf <= tf.cast(sparsity, tf.float32), tf.float32))
    current = bins_below / nbins * top
    smoothed = (1.0 - decay) * current + decay * tf.cast(previous_threshold, tf.float32)
    keep = tf.logical_or(scores32 > smoothed, smoothed <= 0.0)
    return smoothed, keep


def _radix_select(keys, k, value_bits):
    """The k-th largest of non-negative integer `keys` whose low `value_bits` bits vary.

    Each pass counts the next `_RADIX_BITS` bits of the keys that share the prefix selected so
    far, so the cost is a few reads of the keys with no sort and no index tensor.
    """
    key_dtype = keys.dtype
    prefix = tf.zeros([], key_dtype)
    remaining = k
    done_bits = 0
    while done_bits < value_bits:
        digit_bits = min(_RADIX_BITS, value_bits - done_bits)
        shift = value_bits - done_bits - digit_bits
        num_digits = 1 << digit_bits
        shifted = tf.bitwise.right_shift(keys, tf.cast(shift, key_dtype))
        digits = tf.cast(tf.bitwise.bitwise_and(shifted, num_digits - 1), tf.int32)
        # Keys outside the prefix count in an extra bucket that is never selected.
        in_prefix = tf.equal(tf.bitwise.right_shift(shifted, tf.cast(digit_bits, key_dtype)),
                             prefix)
        counts = tf.math.bincount(tf.where(in_prefix, digits, num_digits),
                                  minlength=num_digits + 1, maxlength=num_digits + 1)
        at_or_above = tf.cumsum(counts[:num_digits], reverse=True)
        # The selected digit is the largest one with at least `remaining` keys at or above it.
        digit = tf.reduce_sum(tf.cast(at_or_above >= remaining, tf.int32)) - 1
        remaining -= at_or_above[digit] - counts[digit]
        prefix = tf.bitwise.bitwise_or(
            tf.bitwise.left_shift(prefix, tf.cast(digit_bits, key_dtype)),
            tf.cast(digit, key_dtype))
        done_bits += digit_bits
    return prefix


@functools.lru_cache(maxsize=None)
def _kth_largest_function(dtype):
    """`kth_largest` for one float dtype as a graph function over a flat tensor.

    Built once per graph and called with one op per weight, so a model with hundreds of masked
    weights does not add the selection's ops hundreds of times.
    """
    key_dtype = _KEY_DTYPES[dtype]

    @tf.function(input_signature=[tf.TensorSpec([None], dtype), tf.TensorSpec([], tf.int32)],
                 autograph=False)
    def kth_largest_flat(scores, k):
        keys = tf.bitcast(scores, key_dtype)
        return tf.bitcast(_radix_select(keys, k, key_dtype.size * 8 - 1), dtype)

    return kth_largest_flat


def kth_largest(scores, k):
    """The k-th largest (1 <= k <= n) of non-negative float `scores`, by radix selection."""
    dtype = scores.dtype.base_dtype
    if dtype not in _KEY_DTYPES:
        raise ValueError(f"Exact thresholds need float16, bfloat16, float32 or float64 scores, "
                         f"got {dtype.name}")
    return _kth_largest_function(dtype)(tf.reshape(scores, [-1]), tf.cast(k, tf.int32))


def exact_threshold_mask(scores, sparsity):
    """Keeps exactly round(n * (1 - sparsity)) of the largest `scores`.

    Scores above the k-th largest are kept; of those equal to it, the first ones in flat order
    fill the remaining places. Returns (the k-th largest score, or the largest when k = 0;
    keep).
    """
    flat = tf.reshape(scores, [-1])
    size = tf.size(flat)
    k = num_to_keep(size, sparsity)
    # Selecting the max(k, 1)-th largest avoids a tf.cond, which costs a function graph per
    # weight; with k = 0 that is the maximum and the final `k > 0` keeps nothing.
    threshold = kth_largest(flat, tf.maximum(k, 1))
    above = flat > threshold
    tied = tf.equal(flat, threshold)
    places_for_ties = k - tf.reduce_sum(tf.cast(above, tf.int32))
    tie_rank = tf.cumsum(tf.cast(tied, tf.int32))
    keep = tf.logical_or(above, tf.logical_and(tied, tie_rank <= places_for_ties))
    keep = tf.logical_and(keep, k > 0)
    return threshold, tf.reshape(keep, tf.shape(scores))


def as_matrix(tensor):
    """Views a rank >= 2 tensor [d0, ..., dn] as the matrix [d0 * ... * d(n-1), dn].

    For a conv kernel [kh, kw, cin, cout] a column is one output filter; for a dense kernel
    [in, out] it is one output neuron.
    """
    shape = tensor.get_shape().as_list()
    if len(shape) < 2 or None in shape:
        raise ValueError(f"Block pruning needs a weight of known rank >= 2 shape, got {shape}")
    return tf.reshape(tensor, [int(np.prod(shape[:-1])), shape[-1]])


def resolve_block_dims(block_dims, matrix_shape):
    """Replaces -1 in `block_dims` by the matching matrix dimension (without mutating it)."""
    return [size if dim == -1 else dim for dim, size in zip(block_dims, matrix_shape)]


def _block_valid_counts(matrix_shape, block_dims):
    """How many real (unpadded) entries each block of a matrix holds."""
    rows = [min(block_dims[0], matrix_shape[0] - start)
            for start in range(0, matrix_shape[0], block_dims[0])]
    cols = [min(block_dims[1], matrix_shape[1] - start)
            for start in range(0, matrix_shape[1], block_dims[1])]
    return np.outer(rows, cols)


def pool_blocks(matrix, block_dims, pooling_function):
    """Pools non-negative `matrix` scores over [bh, bw] blocks: AVG, MAX or L2 (root mean square).

    Edge blocks are padded at the end and pooled over their real entries only.
    """
    if pooling_function not in BLOCK_POOLING_FUNCTIONS:
        raise ValueError(
            f"Unknown block pooling function {pooling_function!r}; allowed: "
            f"{', '.join(BLOCK_POOLING_FUNCTIONS)}")
    height, width = matrix.get_shape().as_list()
    block_h, block_w = block_dims
    counts = _block_valid_counts([height, width], block_dims)
    padded = tf.pad(matrix, [[0, counts.shape[0] * block_h - height],
                             [0, counts.shape[1] * block_w - width]])
    blocks = tf.reshape(padded, [counts.shape[0], block_h, counts.shape[1], block_w])
    if pooling_function == "MAX":
        return tf.reduce_max(blocks, axis=[1, 3])
    counts = tf.constant(counts, dtype=matrix.dtype)
    if pooling_function == "AVG":
        return tf.reduce_sum(blocks, axis=[1, 3]) / counts
    return tf.sqrt(tf.reduce_sum(tf.square(blocks), axis=[1, 3]) / counts)


def expand_tensor(tensor, block_dims):
    """Repeats each entry of a rank-2 tensor into a [bh, bw] block: kron(tensor, ones(block_dims))."""
    if tensor.get_shape().ndims != 2:
        raise ValueError(f"expand_tensor needs a rank 2 tensor, got shape {tensor.get_shape()}")
    if len(block_dims) != 2:
        raise ValueError(f"block_dims must have 2 entries, got {block_dims}")
    expanded = tf.repeat(tensor, block_dims[0], axis=0)
    return tf.repeat(expanded, block_dims[1], axis=1)


def kronecker_product(mat1, mat2):
    """Kronecker product of two rank-2 tensors of known shape."""
    rows1, cols1 = mat1.get_shape().as_list()
    rows2, cols2 = mat2.get_shape().as_list()
    product = tf.reshape(mat1, [rows1, 1, cols1, 1]) * tf.reshape(mat2, [1, rows2, 1, cols2])
    return tf.reshape(product, [rows1 * rows2, cols1 * cols2])


def factorized_pool(input_tensor, window_shape, pooling_type, strides, padding, name=None):
    """A 2-D pool of a rank-2 tensor done as two 1-D pools (rows, then columns)."""
    if input_tensor.get_shape().ndims != 2:
        raise ValueError(f"factorized_pool needs a rank 2 tensor, got shape {input_tensor.get_shape()}")
    with tf.name_scope(name or "factorized_pool"):
        aligned = tf.reshape(input_tensor, [1, 1] + input_tensor.get_shape().as_list(),
                             name=input_tensor.op.name + "_aligned")
        aligned = tf.transpose(aligned, [0, 1, 3, 2])  # pool along the rows first
        pooled = tf.nn.pool(aligned, window_shape=[1, window_shape[0]], pooling_type=pooling_type,
                            strides=[1, strides[0]], padding=padding, data_format="NCHW")
        pooled = tf.transpose(pooled, [0, 1, 3, 2])
        pooled = tf.nn.pool(pooled, window_shape=[1, window_shape[1]], pooling_type=pooling_type,
                            strides=[1, strides[1]], padding=padding, data_format="NCHW")
        return tf.squeeze(pooled, axis=[0, 1])


def determine_partitioned_axis(partitioned_variable):
    """The single axis along which `partitioned_variable` is split."""
    full_shape = partitioned_variable.get_shape().as_list()
    axes = set()
    for part in partitioned_variable:
        axes.update(i for i, (a, b) in enumerate(zip(part.get_shape().as_list(), full_shape))
                    if a != b)
    if len(axes) != 1:
        raise ValueError(f"Number of partitioned axes {len(axes)} not equal to 1 for "
                         f"{partitioned_variable.name}")
    return axes.pop()


def variable_assign(var, new_value):
    """Assigns `new_value` to `var` with an op named `<var>_assign`."""
    return tf.compat.v1.assign(var, new_value, name=var.op.name + "_assign")


def partitioned_variable_assign(partitioned_var, new_value):
    """Splits `new_value` like `partitioned_var` and assigns each slice to its partition."""
    parts = list(partitioned_var)
    axis = 0 if len(parts) == 1 else determine_partitioned_axis(partitioned_var)
    sizes = [part.get_shape().as_list()[axis] for part in parts]
    slices = tf.split(new_value, sizes, axis=axis)
    return tf.group(*[variable_assign(part, value) for part, value in zip(parts, slices)],
                    name=partitioned_var.name + "_group_assign")
