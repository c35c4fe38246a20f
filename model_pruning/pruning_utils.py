"""Mask math: scores -> threshold -> mask, block pooling, and variable helpers.

Everything here is a pure function of tensors (no collections, no global step), so each
criterion can be tested alone against numpy. A criterion takes non-negative `scores` (by
default |w|) and a target `sparsity` and returns `(threshold, keep)`, where `keep` is a bool
tensor of the scores' shape:

* `histogram_threshold_mask`: contrib's histogram method; keeps scores strictly above
  a threshold quantised to `max/nbins`, so the realised sparsity is approximate.
* `exact_threshold_mask`: keeps exactly `round(n * (1 - sparsity))` scores, found by a radix
  selection over the float bit patterns (a few passes, no sort); ties at the threshold are
  broken by flat index, lowest first.

Block sparsity pools the scores of each block (`pool_blocks`), applies a criterion to the pooled
matrix and expands the pooled mask back (`expand_tensor`).

Channel groups pool each kernel's scores per channel (`channel_scores`), sum them over the
kernels of a group and broadcast the group's decision back (`channel_mask`).

N:M sparsity (`m_by_n_threshold_mask`) keeps the n largest of every group of m consecutive
weights along a kernel's input axis; the exact criterion, applied to what each group's pattern
would drop, picks the groups that take the pattern while the schedule ramps.
`m_by_n_violations` checks a numpy array against the pattern.

(The module is long because the exact criterion is a radix selection written out in graph
ops, and contrib's public helpers stay importable here.)
"""

import contextlib
import functools

import numpy as np
import tensorflow as tf

# contrib's default for its CDF helpers below (the `nbins` hparam defaults to 255).
_CONTRIB_CDF_NBINS = 256
# Bins are found in float32: beyond 2**22 bins the top score could round past the last one.
MAX_NBINS = 1 << 22
BLOCK_POOLING_FUNCTIONS = ("AVG", "MAX", "L2")

# For non-negative IEEE floats the bit pattern read as a signed integer of the same width is
# ordered like the value, so the k-th largest float is the k-th largest integer key.
_KEY_DTYPES = {
    tf.float16: tf.int16,
    tf.bfloat16: tf.int16,
    tf.float32: tf.int32,
    tf.float64: tf.int64,
}
# Digits of at most 16 bits: float32 needs two passes, float16 one, float64 four. Each pass
# zeroes and sums one row of 2**bits counts per thread, which on small weights costs more than
# the extra pass of 13-bit digits (float32: three passes). One weight alone on 2 cores, 16 / 13
# bits: 0.70 / 0.20 ms at 1k keys, 1.22 / 0.96 ms at 235k, 2.43 / 2.34 ms at 1M, 3.59 /
# 3.84 ms at 2M; in whole-model updates 13 bits lost 2-3% on kernels of 0.6-1M keys.
_RADIX_BITS = 16
_SMALL_RADIX_BITS = 13
_SMALL_KEY_COUNT = 1 << 19
# After the first pass the keys left in the selected bucket are gathered when they are at
# most 1/_GATHER_FRACTION of all (so the gathered copy and its indices stay small).
_GATHER_FRACTION = 8
# Tie breaking ranks tied entries within blocks of this many.
_TIE_BLOCK = 4096


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


def _bin_width(span, nbins):
    """Width of each of `nbins` equal bins over [0, span] in float32; a zero span (or one so
    small that the width is not a normal float) gives the smallest normal width, so every
    offset of it lands in bin 0 instead of dividing by zero."""
    return tf.maximum(tf.cast(span, tf.float32) / nbins, np.finfo(np.float32).tiny)


def _range_offsets(values, value_range):
    """Flat float32 `values` clipped to `value_range`, minus its low end; and the range's span."""
    low, high = (tf.cast(bound, tf.float32) for bound in value_range)
    high = tf.maximum(high, low)
    values = tf.clip_by_value(tf.cast(tf.reshape(values, [-1]), tf.float32), low, high)
    return values - low, high - low


def _bin_index(offsets, span, nbins):
    """The bin of each of `offsets` (float32, within [0, span]) among `nbins` equal bins:
    floor(x / (span / nbins)) in float32 arithmetic, so nbins for x = span. Both CDF builders
    use it, so they agree on values at bin edges."""
    if not 1 <= nbins <= MAX_NBINS:
        raise ValueError(f"nbins must be in [1, {MAX_NBINS}], got {nbins}")
    return tf.cast(offsets / _bin_width(span, nbins), tf.int32)


def _bin_counts(offsets, span, nbins):
    """How many of `offsets` (float32, within [0, span]) fall in each of `nbins` equal bins;
    x = span counts in the last bin.

    Counted by a multi-threaded bincount: `tf.histogram_fixed_width` counts on one thread and
    takes fresh memory for its bin indices at every call, ~7x the cost of reading the values
    on a 50M-element weight.
    """
    counts = tf.raw_ops.DenseBincount(input=_bin_index(offsets, span, nbins), size=nbins + 1,
                                      weights=tf.constant([], tf.int32))
    return tf.concat([counts[:nbins - 1], counts[nbins - 1:nbins] + counts[nbins:]], axis=0)


def _normalised(cumulative_counts):
    """float32 CDF of exact int32 cumulative counts (float32 counts stop at 2**24)."""
    cdf = tf.cast(cumulative_counts, tf.float64)
    return tf.cast(cdf / tf.maximum(cdf[-1], 1.0), tf.float32)


def compute_cdf_from_histogram(values, value_range, nbins=_CONTRIB_CDF_NBINS, name=None):
    """Normalised cumulative histogram of `values` over `value_range` in `nbins` equal bins.

    Values below the range count in the first bin, values at or above its top in the last.
    """
    with tf.name_scope(name or "cdf"):
        return _normalised(tf.cumsum(_bin_counts(*_range_offsets(values, value_range), nbins)))


def compute_cdf(values, value_range, nbins=_CONTRIB_CDF_NBINS, name=None):
    """The same CDF as `compute_cdf_from_histogram`, built by counting `bin <= i` for each bin.

    It avoids scatter-style ops (the TPU-friendly variant selected by `use_tpu`).
    """
    with tf.name_scope(name or "cdf"):
        offsets, span = _range_offsets(values, value_range)
        index = tf.minimum(_bin_index(offsets, span, nbins), nbins - 1)

        def count_up_to(i, cdf):
            count = tf.reduce_sum(tf.cast(index <= i, tf.int32))
            return i + 1, cdf.write(i, count)

        _, cumulative = tf.while_loop(
            lambda i, _: i < nbins,
            count_up_to,
            [tf.constant(0), tf.TensorArray(tf.int32, size=nbins)],
        )
        return _normalised(cumulative.stack())


def histogram_threshold_mask(scores, sparsity, nbins, previous_threshold=0.0, decay=0.0,
                             use_tpu=False, max_score=None):
    """Contrib's histogram criterion.

    threshold = (number of bins whose CDF is at most `sparsity`) / nbins * max(scores): the
    highest bin edge that prunes no more than `sparsity`. It is smoothed as
    `(1 - decay) * threshold + decay * previous_threshold` (`decay`: a number or a scalar
    tensor); scores strictly above it are kept.
    A threshold of zero prunes nothing (so sparsity 0, or an all-zero weight, keeps every entry).
    `max_score`, when the caller has it already, saves a pass over the scores.
    """
    flat = tf.reshape(tf.cast(scores, tf.float32), [-1])
    top = tf.reduce_max(flat) if max_score is None else tf.cast(max_score, tf.float32)
    threshold, keep = _histogram_keep_function(nbins, bool(use_tpu))(
        flat, top, tf.cast(sparsity, tf.float32), tf.cast(previous_threshold, tf.float32),
        tf.cast(decay, tf.float32))
    return threshold, tf.reshape(keep, tf.shape(scores))


@functools.lru_cache(maxsize=None)
def _histogram_keep_function(nbins, use_tpu):
    """`histogram_threshold_mask` over flat float32 scores and their maximum, as one graph
    function per setting: built once per graph and called with one op per weight, like
    `_exact_keep_function`."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)]
                 + [tf.TensorSpec([], tf.float32)] * 4, autograph=False)
    def histogram_keep_flat(scores, top, sparsity, previous_threshold, decay):
        if use_tpu:
            cdf = compute_cdf(scores, [0.0, top], nbins=nbins)
        else:
            # The scores lie in [0, top] already: count them without clipping or shifting.
            cdf = _normalised(tf.cumsum(_bin_counts(scores, top, nbins)))
        bins_below = tf.reduce_sum(tf.cast(cdf <= sparsity, tf.float32))
        current = bins_below / nbins * top
        smoothed = (1.0 - decay) * current + decay * previous_threshold
        # A threshold <= 0 keeps every score: compare against -inf then, in the same pass.
        effective = tf.where(smoothed > 0.0, smoothed, float("-inf"))
        return smoothed, scores > effective

    return histogram_keep_flat


def _digit_bits(num_keys):
    """Bits per radix digit for a selection among `num_keys` keys (None: not known)."""
    if num_keys is not None and num_keys <= _SMALL_KEY_COUNT:
        return _SMALL_RADIX_BITS
    return _RADIX_BITS


def _radix_passes(value_bits, max_digit_bits):
    """(shift, digit_bits) of each selection pass, most significant digit first."""
    passes = []
    while value_bits > 0:
        digit_bits = min(max_digit_bits, value_bits)
        value_bits -= digit_bits
        passes.append((value_bits, digit_bits))
    return passes


def _count_digits(digits, num_digits):
    """How many of `digits` equal each of 0..num_digits-1; larger digits are not counted.

    The raw op, because `tf.math.bincount` spends a pass over the digits on their maximum.
    """
    return tf.raw_ops.DenseBincount(input=digits, size=num_digits,
                                    weights=tf.constant([], tf.int32))


def _select_digit(counts, remaining):
    """The largest digit with at least `remaining` keys at or above it, given the count of
    each digit (a power of two of them); returns (digit, keys above it, keys at it).

    Works on the counts as a square-ish matrix, row totals first, because a cumulative sum
    over all 2**16 counts costs about as much as a pass over a million keys.
    """
    num_digits = counts.get_shape()[0]
    cols = 1 << ((num_digits.bit_length() - 1) // 2)
    matrix = tf.reshape(counts, [num_digits // cols, cols])
    row_counts = tf.reduce_sum(matrix, axis=1)
    row, above_row, _ = _select_in_vector(row_counts, remaining)
    col, above_col, ties = _select_in_vector(matrix[row], remaining - above_row)
    return row * cols + col, above_row + above_col, ties


def _select_in_vector(counts, remaining):
    """`_select_digit` over one short vector of counts, by a cumulative sum."""
    at_or_above = tf.cumsum(counts, reverse=True)
    index = tf.reduce_sum(tf.cast(at_or_above >= remaining, tf.int32)) - 1
    return index, at_or_above[index] - counts[index], counts[index]


def _radix_select(keys, k, value_bits, max_digit_bits):
    """The k-th largest of non-negative integer `keys` (1 <= k <= n), whose low `value_bits`
    bits vary, by selecting one digit of it (at most `max_digit_bits` bits) per pass.

    Returns (key, ties, ties_kept): how many keys equal it, and how many of those are among
    the k largest. A pass counts the next digit of the keys that share the digits selected so
    far; after the first pass those keys are gathered when they are few, so later passes
    read far less than n keys.
    """
    key_dtype = keys.dtype
    size = tf.size(keys)
    candidates = keys
    prefix = tf.zeros([], key_dtype)
    remaining = k
    for pass_index, (shift, digit_bits) in enumerate(
            _radix_passes(value_bits, max_digit_bits)):
        num_digits = 1 << digit_bits
        digits = tf.bitwise.right_shift(candidates, tf.cast(shift, key_dtype)) if shift \
            else candidates
        if pass_index:
            # A key outside the prefix differs from it in a higher bit, so its digit becomes
            # >= num_digits and is not counted.
            digits = tf.bitwise.bitwise_xor(
                digits, tf.bitwise.left_shift(prefix, tf.cast(digit_bits, key_dtype)))
        digit, above, ties = _select_digit(_count_digits(digits, num_digits), remaining)
        remaining -= above
        prefix = tf.bitwise.bitwise_or(
            tf.bitwise.left_shift(prefix, tf.cast(digit_bits, key_dtype)),
            tf.cast(digit, key_dtype))
        if pass_index == 0 and shift:
            selected = tf.cast(digit, key_dtype)
            candidates = tf.cond(ties <= size // _GATHER_FRACTION,
                                 lambda: tf.boolean_mask(keys, tf.equal(digits, selected)),
                                 lambda: keys)
    return prefix, ties, remaining


def _sort_keys(scores):
    """The bit patterns of non-negative float `scores` as integers ordered like the values, in
    a dtype the counting op accepts; and their number of varying bits."""
    key_dtype = _KEY_DTYPES[scores.dtype.base_dtype]
    keys = tf.bitcast(scores, key_dtype)
    if key_dtype == tf.int16:
        keys = tf.cast(keys, tf.int32)
    return keys, key_dtype.size * 8 - 1


def _first_true(flags, count):
    """`flags` (a bool vector) with only its first `count` True entries left True.

    Counts per block of _TIE_BLOCK entries and ranks within one block only, instead of a
    cumulative sum over all entries (one thread, many times slower than a pass).
    """
    size = tf.size(flags)
    num_blocks = (size + _TIE_BLOCK - 1) // _TIE_BLOCK
    blocks = tf.reshape(tf.pad(flags, [[0, num_blocks * _TIE_BLOCK - size]]),
                        [num_blocks, _TIE_BLOCK])
    per_block = tf.reduce_sum(tf.cast(blocks, tf.int32), axis=1)
    before = tf.cumsum(per_block, exclusive=True)
    # Blocks that fit entirely are kept whole; block `last` is cut inside.
    last = tf.minimum(tf.reduce_sum(tf.cast(before + per_block <= count, tf.int32)),
                      num_blocks - 1)
    last_block = blocks[last]
    rank = tf.cumsum(tf.cast(last_block, tf.int32))
    last_block = tf.logical_and(last_block, rank <= count - before[last])
    kept = tf.concat([blocks[:last], last_block[tf.newaxis],
                      tf.zeros_like(blocks[last + 1:])], axis=0)
    return tf.reshape(kept, [-1])[:size]


@functools.lru_cache(maxsize=None)
def _exact_keep_function(dtype, max_digit_bits):
    """`exact_threshold_mask` for one float dtype and digit width as a graph function over a
    flat tensor.

    Built once per graph and called with one op per weight, so a model with hundreds of masked
    weights does not add the selection's ops hundreds of times.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], dtype), tf.TensorSpec([], tf.int32)],
                 autograph=False)
    def exact_keep_flat(scores, k):
        keys, value_bits = _sort_keys(scores)

        def keep_k():
            key, ties, ties_kept = _radix_select(keys, k, value_bits, max_digit_bits)
            threshold = tf.bitcast(tf.cast(key, _KEY_DTYPES[dtype]), dtype)
            keep = tf.cond(
                tf.equal(ties, ties_kept),
                lambda: keys >= key,
                lambda: tf.logical_or(keys > key, _first_true(tf.equal(keys, key), ties_kept)))
            return threshold, keep

        def keep_all():
            return tf.reduce_min(scores), tf.ones_like(keys, tf.bool)

        def keep_none():
            return tf.reduce_max(scores), tf.zeros_like(keys, tf.bool)

        # Exclusive cases: without `exclusive` tf.case nests conds that cost minutes to
        # instantiate once the function is inlined at hundreds of weights.
        keeps_all = tf.logical_and(k > 0, tf.equal(k, tf.size(keys)))
        return tf.case([(tf.equal(k, 0), keep_none), (keeps_all, keep_all)], default=keep_k,
                       exclusive=True)

    return exact_keep_flat


def _check_dtype(dtype):
    if dtype not in _KEY_DTYPES:
        raise ValueError(f"Exact thresholds need float16, bfloat16, float32 or float64 scores, "
                         f"got {dtype.name}")


def exact_threshold_mask(scores, sparsity):
    """Keeps exactly round(n * (1 - sparsity)) of the largest `scores`.

    Scores above the k-th largest are kept; of those equal to it, the first ones in flat order
    fill the remaining places. Returns (the k-th largest score, or the largest when k = 0;
    keep).
    """
    dtype = scores.dtype.base_dtype
    _check_dtype(dtype)
    flat = tf.reshape(scores, [-1])
    select = _exact_keep_function(dtype, _digit_bits(scores.get_shape().num_elements()))
    threshold, keep = select(flat, num_to_keep(tf.size(flat), sparsity))
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


def block_scores(magnitudes, block_dims, pooling_function):
    """(scores, to_weight_shape) of a weight of rank >= 2 pruned in blocks.

    The scores pool `magnitudes` (|w|) over the blocks of the weight's `as_matrix` view (-1 in
    `block_dims` spans a whole dimension); `to_weight_shape` spreads one keep-flag per block
    back over the weight's shape.
    """
    matrix = as_matrix(magnitudes)
    height, width = matrix.get_shape().as_list()
    block_dims = resolve_block_dims(block_dims, [height, width])
    pooled = pool_blocks(matrix, block_dims, pooling_function)
    return pooled, lambda keep: tf.reshape(
        expand_tensor(keep, block_dims)[:height, :width], tf.shape(magnitudes))


def expand_tensor(tensor, block_dims):
    """Repeats each entry of a rank-2 tensor into a [bh, bw] block: kron(tensor, ones(block_dims))."""
    if tensor.get_shape().ndims != 2:
        raise ValueError(f"expand_tensor needs a rank 2 tensor, got shape {tensor.get_shape()}")
    if len(block_dims) != 2:
        raise ValueError(f"block_dims must have 2 entries, got {block_dims}")
    expanded = tf.repeat(tensor, block_dims[0], axis=0)
    return tf.repeat(expanded, block_dims[1], axis=1)


def channel_scores(magnitudes, axis, pooling_function):
    """The score of each channel of non-negative `magnitudes` along `axis`: AVG, MAX or L2
    (root mean square) over all its other entries; a vector [shape[axis]]."""
    if pooling_function not in BLOCK_POOLING_FUNCTIONS:
        raise ValueError(
            f"Unknown block pooling function {pooling_function!r}; allowed: "
            f"{', '.join(BLOCK_POOLING_FUNCTIONS)}")
    rank = magnitudes.get_shape().rank
    others = [i for i in range(rank) if i != axis % rank]
    if pooling_function == "MAX":
        return tf.reduce_max(magnitudes, axis=others)
    if pooling_function == "AVG":
        return tf.reduce_mean(magnitudes, axis=others)
    return tf.sqrt(tf.reduce_mean(tf.square(magnitudes), axis=others))


def channel_mask(keep, shape, axis, dtype):
    """The mask of a weight of `shape` from `keep`, one bool per channel along `axis`."""
    rank = len(shape)
    broadcast_shape = [1] * rank
    broadcast_shape[axis % rank] = -1
    return tf.broadcast_to(tf.reshape(tf.cast(keep, dtype), broadcast_shape), shape)


def _swap_last_axes(rank):
    return list(range(rank - 2)) + [rank - 1, rank - 2]


def m_by_n_groups(tensor, m):
    """`tensor` [..., C, O] (a kernel: input axis C, output axis O) as groups of `m`
    consecutive entries along C for each output channel: [..., O, ceil(C / m), m].

    The last group is padded with zeros when C is not a multiple of `m` (as TensorRT pads
    channels), so it has fewer real entries.

    Raises:
      ValueError: for a tensor of unknown shape or rank < 2.
    """
    shape = tensor.get_shape().as_list()
    if len(shape) < 2 or None in shape:
        raise ValueError(f"N:M groups need a weight of known shape and rank >= 2, got {shape}")
    channels = shape[-2]
    num_groups = -(-channels // m)
    moved = tf.transpose(tensor, _swap_last_axes(len(shape)))
    padded = tf.pad(moved, [[0, 0]] * (len(shape) - 1) + [[0, num_groups * m - channels]])
    return tf.reshape(padded, shape[:-2] + [shape[-1], num_groups, m])


def from_m_by_n_groups(groups, shape):
    """Inverse of `m_by_n_groups` for a tensor of `shape`: drops the padding."""
    moved = tf.reshape(groups, shape[:-2] + [shape[-1], -1])[..., :shape[-2]]
    return tf.transpose(moved, _swap_last_axes(len(shape)))


def m_by_n_keep(magnitudes, n, m):
    """(keep, lost) of the N:M pattern on non-negative `magnitudes` [..., C, O].

    keep: bool [..., O, G, m], True for the `n` largest of each group of `m_by_n_groups`
    (ties go to the lower index, so real entries beat the padding); lost: [..., O, G], the
    sum of the magnitudes the pattern drops from each group.
    """
    groups = m_by_n_groups(magnitudes, m)
    ranked = groups
    if groups.dtype.base_dtype in (tf.float16, tf.bfloat16):
        ranked = tf.cast(groups, tf.float32)  # exact: same order
    _, largest = tf.math.top_k(ranked, k=n)  # documented: equal values, lower index first
    keep = tf.reduce_any(tf.one_hot(largest, m, on_value=True, off_value=False, dtype=tf.bool),
                         axis=-2)
    lost = tf.reduce_sum(tf.where(keep, tf.zeros_like(groups), groups), axis=-1)
    return keep, lost


def m_by_n_threshold_mask(magnitudes, n, m, fraction):
    """(threshold, keep) of a kernel pruned to `n` of every `m` along its input axis, in a
    `fraction` of its groups.

    round(G * fraction) of the G groups of `m_by_n_groups` take the pattern: those whose
    pattern drops the least magnitude (`exact_threshold_mask` on `lost`, ties by position);
    the other groups stay whole. At fraction 1 every group keeps at most `n`. threshold:
    the largest magnitude the mask removes, 0 if none.

    Args:
      magnitudes: non-negative float scores of a kernel [..., C, O] of known shape.
      n, m: keep `n` of every `m`, 1 <= n < m.
      fraction: a number or scalar tensor, clipped to [0, 1].
    """
    shape = magnitudes.get_shape().as_list()
    keep_in_pattern, lost = m_by_n_keep(magnitudes, n, m)
    fraction = tf.clip_by_value(
        tf.cast(tf.convert_to_tensor(fraction, dtype_hint=tf.float64), tf.float64), 0.0, 1.0)
    _, whole = exact_threshold_mask(lost, fraction)
    keep = from_m_by_n_groups(tf.logical_or(keep_in_pattern, whole[..., tf.newaxis]), shape)
    threshold = tf.reduce_max(tf.where(keep, tf.zeros_like(magnitudes), magnitudes))
    return threshold, keep


def m_by_n_violations(value, n, m):
    """(groups holding more than `n` nonzeros, number of groups) of a numpy kernel
    [..., C, O] in the groups of `m_by_n_groups`; None for an array of rank < 2."""
    value = np.asarray(value)
    if value.ndim < 2:
        return None
    nonzero = np.swapaxes(value, -1, -2) != 0
    channels = nonzero.shape[-1]
    num_groups = -(-channels // m)
    padded = np.zeros(nonzero.shape[:-1] + (num_groups * m,), bool)
    padded[..., :channels] = nonzero
    counts = padded.reshape(nonzero.shape[:-1] + (num_groups, m)).sum(axis=-1)
    return int(np.count_nonzero(counts > n)), counts.size


# Contrib's public helpers, kept for code that imports them from `pruning_utils`; the mask
# update itself uses `pool_blocks` and `expand_tensor`.


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
