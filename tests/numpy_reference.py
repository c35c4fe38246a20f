"""Small numpy references for the mask criteria, shared by the tests."""

import numpy as np


def numpy_exact_keep(scores, sparsity):
    """Keeps the k largest scores; ties go to the lower flat index (a stable sort)."""
    flat = scores.reshape(-1)
    k = int(np.round(flat.size * (1.0 - sparsity)))
    order = np.argsort(-flat.astype(np.float64), kind="stable")
    keep = np.zeros(flat.size, bool)
    keep[order[:k]] = True
    return keep.reshape(scores.shape)


def numpy_histogram_threshold(scores, sparsity, nbins):
    """The highest of nbins bin edges over [0, max] whose CDF is at most `sparsity`; the bin of
    a score s is floor(s / (max / nbins)) in float32 arithmetic."""
    scores = scores.astype(np.float32)
    top = scores.max()
    index = np.clip(np.floor(scores / (top / np.float32(nbins))), 0, nbins - 1).astype(int)
    cdf = (np.cumsum(np.bincount(index.reshape(-1), minlength=nbins)) / scores.size)
    return np.sum(cdf.astype(np.float32) <= np.float32(sparsity)) / nbins * top


def numpy_batch_norm(x, epsilon=0.001):
    """Batch norm in training mode over every axis but the last, without scale or offset."""
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axes)) / np.sqrt(x.var(axes) + epsilon)


def numpy_m_by_n_keep(magnitudes, n, m, fraction=1.0):
    """The N:M mask of a kernel [..., C, O]: groups of m along C for each output channel, the
    last one zero padded; each keeps its n largest (ties to the lower index), and the
    round(G * fraction) groups whose dropped magnitudes sum least (ties by position) take
    that pattern while the others stay whole."""
    moved = np.swapaxes(magnitudes, -1, -2)
    channels = moved.shape[-1]
    num_groups = -(-channels // m)
    padded = np.zeros(moved.shape[:-1] + (num_groups * m,), magnitudes.dtype)
    padded[..., :channels] = moved
    groups = padded.reshape(moved.shape[:-1] + (num_groups, m))
    order = np.argsort(-groups.astype(np.float64), axis=-1, kind="stable")
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    lost = np.where(keep, 0, groups).sum(axis=-1)
    keep |= numpy_exact_keep(lost, fraction)[..., np.newaxis]
    keep = keep.reshape(moved.shape[:-1] + (num_groups * m,))[..., :channels]
    return np.swapaxes(keep, -1, -2)


def numpy_m_by_n_violations(value, n, m):
    """(groups with more than n nonzeros, groups) of a kernel [..., C, O], one group at a time."""
    violations = groups = 0
    for index in np.ndindex(value.shape[:-2] + value.shape[-1:]):
        column = value[index[:-1] + (slice(None), index[-1])]
        for start in range(0, column.size, m):
            groups += 1
            violations += np.count_nonzero(column[start:start + m]) > n
    return violations, groups
