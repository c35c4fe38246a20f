"""The top-level API: contrib's public names first, importable as `import model_pruning`."""

import model_pruning

CONTRIB_NAMES = [
    "masked_convolution", "masked_conv2d", "masked_fully_connected", "MaskedBasicLSTMCell",
    "MaskedLSTMCell", "train", "apply_mask", "get_masked_weights", "get_masks",
    "get_pruning_hparams", "get_thresholds", "get_weights", "get_weight_sparsity", "Pruning",
    "strip_pruning_vars_fn", "graph_def_from_checkpoint"]


def test_contrib_public_names_come_first():
    assert model_pruning.__all__[:len(CONTRIB_NAMES)] == CONTRIB_NAMES


def test_every_exported_name_exists():
    missing = [name for name in model_pruning.__all__ if not hasattr(model_pruning, name)]
    assert missing == []


def test_submodules_of_contrib_are_importable():
    from model_pruning import layers, pruning, pruning_utils, rnn_cells, strip_pruning_vars_lib
    assert pruning.apply_mask is model_pruning.apply_mask
    assert layers.masked_conv2d is model_pruning.masked_conv2d
    assert rnn_cells.MaskedLSTMCell is model_pruning.MaskedLSTMCell
    assert strip_pruning_vars_lib.strip_pruning_vars_fn is model_pruning.strip_pruning_vars_fn
    assert callable(pruning_utils.expand_tensor)
