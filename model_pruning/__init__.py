"""model_pruning: magnitude pruning for TF1-style graph code on TensorFlow 2.12 and newer.

The drop-in successor of `tf.contrib.model_pruning`: the same API, graph names and
collections. Contrib's public names come first, then the ones this library adds.

Importing the package checks that a supported TensorFlow is installed and loads the names
below, which also makes `slim.batch_norm` build on Keras 3 (`compat.batch_norm`). Only the
command-line tools load them when first used: they parse their flags before they need
TensorFlow, so `--help` and flag errors come at once.
"""

import importlib
import os
import sys

from model_pruning.requirements import check_tensorflow

__version__ = "0.2.0"

# Public name -> the submodule that defines it.
_HOMES = {
    # tf.contrib.model_pruning
    "masked_convolution": "layers",
    "masked_conv2d": "layers",
    "masked_fully_connected": "layers",
    "MaskedBasicLSTMCell": "rnn_cells",
    "MaskedLSTMCell": "rnn_cells",
    "train": "learning",
    "apply_mask": "pruning",
    "get_masked_weights": "pruning",
    "get_masks": "pruning",
    "get_pruning_hparams": "spec",
    "get_thresholds": "pruning",
    "get_weights": "pruning",
    "get_weight_sparsity": "pruning",
    "Pruning": "pruning",
    "strip_pruning_vars_fn": "strip_pruning_vars_lib",
    "graph_def_from_checkpoint": "strip_pruning_vars_lib",
    # added by this library
    "HParams": "hparams",
    "MaskedConv1D": "layers",
    "MaskedConv2D": "layers",
    "MaskedConv3D": "layers",
    "MaskedFullyConnected": "layers",
    "MaskedGRUCell": "rnn_cells",
    "batch_norm": "compat",
    "to_tflite": "export",
    "to_saved_model": "export",
    "shrink_graph_def": "shrink",
    "masking_scope": "masking",
    "ModelPruningHook": "hooks",
    "get_overall_weight_sparsity": "pruning",
    "warm_start_from_dense_checkpoint": "warm_start",
}
__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'model_pruning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"model_pruning.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


_COMMAND_LINE_TOOLS = ("strip_pruning_vars", "inspect_checkpoint")


def _running_a_command_line_tool():
    """True in a process started as `strip_pruning_vars ...` or `python -m model_pruning.X`
    for one of the tools (while packages import, `sys.argv[0]` is still "-m" then)."""
    if os.path.basename(sys.argv[0]) in _COMMAND_LINE_TOOLS:
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(argv[i] == "-m" and argv[i + 1] in {f"model_pruning.{tool}"
                                                 for tool in _COMMAND_LINE_TOOLS}
               for i in range(len(argv) - 1))


check_tensorflow()
if not _running_a_command_line_tool():
    for _name in __all__:
        __getattr__(_name)
