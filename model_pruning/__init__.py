"""model_pruning: magnitude pruning for TF1-style graph code on TensorFlow 2.21.

The drop-in successor of `tf.contrib.model_pruning`: the same API, graph names and
collections. Contrib's public names come first, then the ones this library adds.
"""

from model_pruning.hparams import HParams
from model_pruning.pruning import (
    Pruning,
    apply_mask,
    get_masked_weights,
    get_masks,
    get_pruning_hparams,
    get_thresholds,
    get_weight_sparsity,
    get_weights,
)

__all__ = [
    # tf.contrib.model_pruning
    "apply_mask",
    "get_masked_weights",
    "get_masks",
    "get_pruning_hparams",
    "get_thresholds",
    "get_weights",
    "get_weight_sparsity",
    "Pruning",
    # added by this library
    "HParams",
]
