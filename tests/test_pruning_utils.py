"""Mask math in pruning_utils, checked against numpy references."""

import numpy as np
import pytest
import tensorflow as tf

from model_pruning import pruning_utils
from tests.numpy_reference import (numpy_exact_keep, numpy_histogram_threshold,
                                   numpy_m_by_n_keep, numpy_m_by_n_violations)


def evaluate(build):
    """Builds tensors with `build()` in a fresh graph and returns their values."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        return session.run(build())


def test_cdf_of_evenly_spaced_values_has_one_value_per_bin():
    values = ((np.arange(100) + 0.5) / 100).astype(np.float32).reshape(10, 10)
    cdf = evaluate(lambda: pruning_utils.compute_cdf_from_histogram(values, [0.0, 1.0], nbins=100))
    np.testing.assert_allclose(cdf, np.arange(1, 101) / 100.0, rtol=1e-6)


@pytest.mark.parametrize("cdf_fn", [pruning_utils.compute_cdf_from_histogram,
                                    pruning_utils.compute_cdf])
def test_cdf_clips_values_outside_the_range(cdf_fn):
    values = np.abs(np.array([-1, 0, 1, 1.5, 2, 3, 4, 5, 10, 100], np.float32))
    cdf = evaluate(lambda: cdf_fn(values, [0.0, 5.0], nbins=5))
    np.testing.assert_allclose(cdf, [0.1, 0.4, 0.5, 0.6, 1.0], rtol=1e-6)


@pytest.mark.parametrize("nbins", [2, 255, pruning_utils.MAX_NBINS])
@pytest.mark.parametrize("top", [1.0, 3.0e38])
def test_top_of_the_range_counts_in_the_last_bin(nbins, top):
    values = np.array([0.0, top], np.float32)
    cdf = evaluate(lambda: pruning_utils.compute_cdf_from_histogram(values, [0.0, top], nbins))
    np.testing.assert_array_equal(cdf[[0, -2, -1]], [0.5, 0.5, 1.0])


@pytest.mark.parametrize("top", [0.0, 1e-44])
def test_a_zero_or_denormal_range_puts_everything_in_the_first_bin(top):
    values = np.array([0.0, top, top], np.float32)
    cdf = evaluate(lambda: pruning_utils.compute_cdf_from_histogram(values, [0.0, top], 8))
    np.testing.assert_array_equal(cdf, np.ones(8))


def test_too_many_bins_is_a_clear_error():
    with pytest.raises(ValueError, match="nbins must be in \\[1, 4194304\\], got 4194305"):
        evaluate(lambda: pruning_utils.compute_cdf_from_histogram(
            np.ones(3, np.float32), [0.0, 1.0], pruning_utils.MAX_NBINS + 1))


@pytest.mark.parametrize("shape", [[100, 100], [5, 5, 128, 128]])
def test_compute_cdf_equals_histogram_cdf(shape):
    values = np.abs(np.random.RandomState(0).randn(*shape)).astype(np.float32)
    top = float(values.max())
    by_histogram, by_counting = evaluate(lambda: (
        pruning_utils.compute_cdf_from_histogram(values, [0.0, top], nbins=256),
        pruning_utils.compute_cdf(values, [0.0, top], nbins=256)))
    np.testing.assert_array_equal(by_histogram, by_counting)


POOL_CASES = [([32, 32], [1, 1])] + [
    (shape, block)
    for block in ([6, 6], [4, 4], [1, 4], [4, 1])
    for shape in ([32, 32], [2, 32], [32, 2], [30, 30])
] + [([3, 3], [6, 6])]


@pytest.mark.parametrize("shape, block", POOL_CASES)
@pytest.mark.parametrize("pooling", ["AVG", "MAX"])
def test_factorized_pool_equals_2d_pool(shape, block, pooling):
    values = np.random.RandomState(1).rand(*shape).astype(np.float32)

    def build():
        matrix = tf.constant(values)
        direct = tf.nn.pool(tf.reshape(matrix, [1] + shape + [1]), window_shape=block,
                            pooling_type=pooling, strides=block, padding="SAME")
        factorized = pruning_utils.factorized_pool(matrix, block, pooling, block, "SAME")
        return tf.squeeze(direct, [0, 3]), factorized

    direct, factorized = evaluate(build)
    np.testing.assert_allclose(factorized, direct, rtol=1e-6)


@pytest.mark.parametrize("shape, block", POOL_CASES)
def test_expand_tensor_is_kronecker_with_ones(shape, block):
    values = np.random.RandomState(2).rand(*shape).astype(np.float32)
    expanded, kron = evaluate(lambda: (
        pruning_utils.expand_tensor(tf.constant(values), block),
        pruning_utils.kronecker_product(tf.constant(values), tf.ones(block))))
    np.testing.assert_array_equal(expanded, np.kron(values, np.ones(block, np.float32)))
    np.testing.assert_array_equal(kron, expanded)


def numpy_pool_blocks(matrix, block, pooling):
    rows = range(0, matrix.shape[0], block[0])
    cols = range(0, matrix.shape[1], block[1])
    reduce = {"AVG": np.mean, "MAX": np.max, "L2": lambda b: np.sqrt(np.mean(b ** 2))}[pooling]
    return np.array([[reduce(matrix[r:r + block[0], c:c + block[1]]) for c in cols]
                     for r in rows])


@pytest.mark.parametrize("shape, block", POOL_CASES)
@pytest.mark.parametrize("pooling", ["AVG", "MAX", "L2"])
def test_pool_blocks_pools_only_real_entries(shape, block, pooling):
    values = np.random.RandomState(3).rand(*shape).astype(np.float32)
    pooled = evaluate(lambda: pruning_utils.pool_blocks(tf.constant(values), block, pooling))
    np.testing.assert_allclose(pooled, numpy_pool_blocks(values, block, pooling), rtol=1e-5)


def test_pool_blocks_rejects_unknown_function():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="'SUM'.*AVG, MAX, L2"):
        pruning_utils.pool_blocks(tf.ones([4, 4]), [2, 2], "SUM")


def test_as_matrix_views_conv_kernel_filters_as_columns():
    kernel = np.random.RandomState(4).rand(3, 3, 4, 5).astype(np.float32)
    matrix = evaluate(lambda: pruning_utils.as_matrix(tf.constant(kernel)))
    np.testing.assert_array_equal(matrix[:, 2], kernel[..., 2].reshape(-1))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.999, 1.0])
def test_exact_mask_keeps_exactly_k_largest(dtype, sparsity):
    scores = np.abs(np.random.RandomState(5).randn(37, 29)).astype(dtype)
    threshold, keep = evaluate(lambda: pruning_utils.exact_threshold_mask(
        tf.constant(scores), sparsity))
    expected = numpy_exact_keep(scores, sparsity)
    np.testing.assert_array_equal(keep, expected)
    if expected.any():
        assert threshold == scores[expected].min()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_exact_mask_breaks_ties_by_position(dtype):
    # 60 zeros, 30 ones and 10 twos; keeping 25 keeps every two and the first 15 ones.
    scores = np.array([0] * 30 + [1] * 15 + [2] * 10 + [0] * 30 + [1] * 15, dtype)
    np.random.RandomState(6).shuffle(scores)
    keep = evaluate(lambda: pruning_utils.exact_threshold_mask(tf.constant(scores), 0.75)[1])
    assert keep.sum() == 25
    np.testing.assert_array_equal(keep, numpy_exact_keep(scores, 0.75))


def test_exact_mask_of_all_zeros_keeps_k():
    keep = evaluate(lambda: pruning_utils.exact_threshold_mask(tf.zeros([10, 10]), 0.5)[1])
    np.testing.assert_array_equal(keep.reshape(-1), np.arange(100) < 50)


def test_exact_threshold_is_the_kth_largest_including_tiny_values():
    values = np.concatenate([np.abs(np.random.RandomState(7).randn(5000)),
                             [0.0, 1e-42, 1e-38, 3e38]]).astype(np.float32)
    ks = [1, 2, 100, 2500, 5003, 5004]
    found = evaluate(lambda: [pruning_utils.exact_threshold_mask(
        tf.constant(values), 1.0 - k / values.size)[0] for k in ks])
    np.testing.assert_array_equal(found, np.sort(values)[::-1][np.array(ks) - 1])


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_histogram_threshold_matches_numpy(sparsity):
    scores = np.abs(np.random.RandomState(8).randn(50, 40)).astype(np.float32)
    threshold, keep = evaluate(lambda: pruning_utils.histogram_threshold_mask(
        tf.constant(scores), sparsity, nbins=255))
    expected = numpy_histogram_threshold(scores, sparsity, 255)
    np.testing.assert_allclose(threshold, expected, rtol=1e-5)
    np.testing.assert_array_equal(keep, scores > threshold)
    assert abs((1 - keep.mean()) - sparsity) < 0.02


def test_histogram_threshold_is_smoothed_with_the_previous_one():
    scores = np.abs(np.random.RandomState(9).randn(1000)).astype(np.float32)
    threshold = evaluate(lambda: pruning_utils.histogram_threshold_mask(
        tf.constant(scores), 0.5, nbins=100, previous_threshold=2.0, decay=0.9)[0])
    expected = 0.1 * numpy_histogram_threshold(scores, 0.5, 100) + 0.9 * 2.0
    np.testing.assert_allclose(threshold, expected, rtol=1e-5)


@pytest.mark.parametrize("scores, sparsity", [(np.zeros([4, 4]), 0.5),
                                              (np.arange(16.0).reshape(4, 4), 0.0)])
def test_histogram_zero_threshold_keeps_everything(scores, sparsity):
    keep = evaluate(lambda: pruning_utils.histogram_threshold_mask(
        tf.constant(scores, tf.float32), sparsity, nbins=10)[1])
    assert keep.all()


@pytest.mark.parametrize("size, sparsity, expected", [
    (100, 0.5, 50), (100, 0.999, 0), (100, 0.0, 100), (7, 0.5, 4), (10, 1.2, 0)])
def test_num_to_keep_rounds_and_clips(size, sparsity, expected):
    assert evaluate(lambda: pruning_utils.num_to_keep(size, sparsity)) == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("sparsity", [0.3, 0.8])
def test_exact_mask_breaks_ties_spread_over_many_blocks(dtype, sparsity):
    # 20011 scores of three values: the cut falls inside a run of ties longer than a tie block.
    scores = np.random.RandomState(10).randint(0, 3, 20011).astype(dtype)
    keep = evaluate(lambda: pruning_utils.exact_threshold_mask(tf.constant(scores), sparsity)[1])
    np.testing.assert_array_equal(keep, numpy_exact_keep(scores, sparsity))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_mask_when_most_scores_share_the_first_digit(dtype):
    # Values a few ulps apart share their top bits, so the selection reads every key again
    # instead of gathering the few that share the first digit.
    scores = np.full(5000, 1.5, dtype)
    scores[::7] += 4 * np.finfo(dtype).eps
    scores[::11] += 8 * np.finfo(dtype).eps
    keep = evaluate(lambda: pruning_utils.exact_threshold_mask(tf.constant(scores), 0.9)[1])
    np.testing.assert_array_equal(keep, numpy_exact_keep(scores, 0.9))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("digit_bits", [8, pruning_utils._RADIX_BITS])
def test_exact_mask_is_the_same_with_any_digit_width(monkeypatch, dtype, digit_bits):
    # Small weights select with 13-bit digits, large ones with 16: both, and narrower ones,
    # keep the same entries, for spread scores, runs of ties and keys sharing their top bits.
    monkeypatch.setattr(pruning_utils, "_digit_bits", lambda num_keys: digit_bits)
    rng = np.random.RandomState(11)
    close = np.full(5000, 1.5, dtype)
    close[::7] += 4 * np.finfo(dtype).eps
    cases = [(np.abs(rng.randn(37, 29)).astype(dtype), 0.9),
             (rng.randint(0, 3, 20011).astype(dtype), 0.3),
             (close, 0.9)]
    keeps = evaluate(lambda: [pruning_utils.exact_threshold_mask(tf.constant(scores),
                                                                 sparsity)[1]
                              for scores, sparsity in cases])
    for keep, (scores, sparsity) in zip(keeps, cases):
        np.testing.assert_array_equal(keep, numpy_exact_keep(scores, sparsity))


# fc [in, out], conv [kh, kw, in, out] with in a multiple of 4 or not (conv1 of the cifar10
# example has 3 input channels), conv1d [k, in, out].
M_BY_N_SHAPES = [[16, 6], [3, 3, 8, 5], [5, 5, 3, 4], [2, 7, 3], [10, 1]]


def integer_magnitudes(shape, seed, dtype=np.float32):
    """|w| as small integers: sums are exact in every dtype, and ties are frequent."""
    return np.random.RandomState(seed).randint(0, 6, size=shape).astype(dtype)


@pytest.mark.parametrize("shape", M_BY_N_SHAPES)
@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8), (1, 2)])
def test_m_by_n_mask_matches_numpy(shape, n, m):
    magnitudes = integer_magnitudes(shape, seed=11)
    fractions = [0.0, 0.3, 0.5, 1.0]
    keeps = evaluate(lambda: [pruning_utils.m_by_n_threshold_mask(
        tf.constant(magnitudes), n, m, fraction)[1] for fraction in fractions])
    for fraction, keep in zip(fractions, keeps):
        np.testing.assert_array_equal(keep, numpy_m_by_n_keep(magnitudes, n, m, fraction),
                                      err_msg=f"fraction {fraction}")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_m_by_n_mask_at_fraction_one_keeps_the_pattern_in_every_group(dtype):
    magnitudes = np.abs(np.random.RandomState(12).randn(3, 3, 10, 7)).astype(dtype)
    threshold, keep = evaluate(lambda: pruning_utils.m_by_n_threshold_mask(
        tf.constant(magnitudes), 2, 4, 1.0))
    np.testing.assert_array_equal(keep, numpy_m_by_n_keep(magnitudes, 2, 4))
    # 10 inputs: groups of 4, 4 and a padded 2, which keeps both.
    assert keep.sum() == 3 * 3 * 7 * (2 + 2 + 2)
    assert numpy_m_by_n_violations(magnitudes * keep, 2, 4) == (0, 3 * 3 * 7 * 3)
    assert threshold == magnitudes[~keep].max()


def test_m_by_n_keeps_two_of_three_inputs():
    magnitudes = np.float32([[3, 1], [1, 2], [2, 3]])  # [in=3, out=2]
    keep = evaluate(lambda: pruning_utils.m_by_n_threshold_mask(
        tf.constant(magnitudes), 2, 4, 1.0)[1])
    np.testing.assert_array_equal(keep, [[True, False], [False, True], [True, True]])


def test_m_by_n_fraction_picks_the_groups_that_lose_least():
    # One output channel, four groups of 4 along the input axis; the pattern drops the two
    # smallest of each: 0.1 + 0.2, 1 + 1, 0 + 0 and 5 + 5.
    column = np.float32([0.1, 0.2, 7, 8, 1, 1, 9, 9, 0, 0, 3, 4, 5, 5, 6, 6])
    keep = evaluate(lambda: pruning_utils.m_by_n_threshold_mask(
        tf.constant(column[:, np.newaxis]), 2, 4, 0.5)[1])[:, 0]
    # Half the groups take the pattern: the third (loses 0) and the first (loses 0.3).
    np.testing.assert_array_equal(keep.reshape(4, 4), [[0, 0, 1, 1], [1, 1, 1, 1],
                                                       [0, 0, 1, 1], [1, 1, 1, 1]])


def test_m_by_n_threshold_is_zero_when_nothing_is_removed():
    threshold, keep = evaluate(lambda: pruning_utils.m_by_n_threshold_mask(
        tf.constant(integer_magnitudes([8, 4], seed=13)), 2, 4, 0.0))
    assert keep.all() and threshold == 0.0


@pytest.mark.parametrize("shape", [[8], [None, 4]])
def test_m_by_n_groups_need_a_known_shape_of_rank_two(shape):
    with tf.Graph().as_default(), pytest.raises(ValueError, match="rank >= 2"):
        pruning_utils.m_by_n_groups(tf.compat.v1.placeholder(tf.float32, shape), 4)


@pytest.mark.parametrize("shape", M_BY_N_SHAPES)
@pytest.mark.parametrize("n, m", [(2, 4), (1, 3)])
def test_m_by_n_violations_counts_groups_like_a_loop(shape, n, m):
    value = np.random.RandomState(14).randn(*shape) * (np.random.RandomState(15).rand(*shape)
                                                       < 0.6)
    assert pruning_utils.m_by_n_violations(value, n, m) == numpy_m_by_n_violations(value, n, m)


def test_m_by_n_violations_of_a_vector_is_none():
    assert pruning_utils.m_by_n_violations(np.ones(8), 2, 4) is None
