"""Strip pruning variables: contrib's import path, re-exporting the graph tools.

`graph_def_from_checkpoint` freezes a checkpoint (`model_pruning.freeze`);
`strip_pruning_vars_fn` folds every mask into its weight (`model_pruning.fold`); the node name
and GraphDef helpers come from `model_pruning.graphdef`. This module keeps every name it has
had, so code written for `tf.contrib.model_pruning` imports them here unchanged.

    frozen = graph_def_from_checkpoint("/tmp/train", ["logits"],
                                       input_node_names=["IteratorGetNext:0"])
    stripped = strip_pruning_vars_fn(frozen, ["logits"])
    check_graph_loads(stripped)
"""

from model_pruning.fold import folded_weights, strip_pruning_vars_fn
from model_pruning.freeze import (checkpoint_path, find_checkpoint, graph_def_from_checkpoint,
                                  open_checkpoint, read_tensor)
from model_pruning.graphdef import (check_graph_loads, check_node_names, keep_reachable,
                                    masked_weight_nodes, normalize_node_names,
                                    normalize_tensor_names, reachable_nodes)

__all__ = [
    "check_graph_loads",
    "check_node_names",
    "checkpoint_path",
    "find_checkpoint",
    "folded_weights",
    "graph_def_from_checkpoint",
    "keep_reachable",
    "masked_weight_nodes",
    "normalize_node_names",
    "normalize_tensor_names",
    "open_checkpoint",
    "read_tensor",
    "reachable_nodes",
    "strip_pruning_vars_fn",
]
