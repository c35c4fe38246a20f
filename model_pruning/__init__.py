"""model_pruning: magnitude pruning for TF1-style graph code on TensorFlow 2.21.

The drop-in successor of `tf.contrib.model_pruning`: the same API, graph names and
collections. Contrib's public names come first, then the ones this library adds.
"""

from model_pruning.compat import batch_norm
from model_pruning.export import to_tflite
from model_pruning.hooks import ModelPruningHook
from model_pruning.hparams import HParams
from model_pruning.learning import train
from model_pruning.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv3D,
    MaskedFullyConnected,
    masked_conv2d,
    masked_convolution,
    masked_fully_connected,
)
from model_pruning.masking import masking_scope
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
from model_pruning.rnn_cells import MaskedBasicLSTMCell, MaskedGRUCell, MaskedLSTMCell
from model_pruning.shrink import shrink_graph_def
from model_pruning.strip_pruning_vars_lib import graph_def_from_checkpoint, strip_pruning_vars_fn
from model_pruning.warm_start import warm_start_from_dense_checkpoint

__all__ = [
    # tf.contrib.model_pruning
    "masked_convolution",
    "masked_conv2d",
    "masked_fully_connected",
    "MaskedBasicLSTMCell",
    "MaskedLSTMCell",
    "train",
    "apply_mask",
    "get_masked_weights",
    "get_masks",
    "get_pruning_hparams",
    "get_thresholds",
    "get_weights",
    "get_weight_sparsity",
    "Pruning",
    "strip_pruning_vars_fn",
    "graph_def_from_checkpoint",
    # added by this library
    "HParams",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedConv3D",
    "MaskedFullyConnected",
    "MaskedGRUCell",
    "batch_norm",
    "to_tflite",
    "shrink_graph_def",
    "masking_scope",
    "ModelPruningHook",
    "warm_start_from_dense_checkpoint",
]
