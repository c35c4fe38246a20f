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
