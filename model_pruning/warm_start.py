"""Starting pruning from a dense checkpoint, the first step of the prune-and-fine-tune recipe.

A checkpoint written without pruning has no `mask` or `threshold` variables, so restoring it
into a pruned graph with a plain Saver fails with "Key .../mask not found in checkpoint".
`warm_start_from_dense_checkpoint` restores only the model's own variables and leaves the
pruning state at its initial values: masks at one, thresholds at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from model_pruning import pruning


def _default_var_list():
    """The model variables (slim registers weights, biases and batch-norm statistics there), or
    the trainable variables for code that does not use model variables."""
    return tf.compat.v1.model_variables() or tf.compat.v1.trainable_variables()


def _check_fits(reader, checkpoint_path, var_list):
    shapes = reader.get_variable_to_shape_map()
    missing, misshaped = [], []
    for variable in var_list:
        name = variable.op.name
        if name not in shapes:
            missing.append(name)
        elif list(shapes[name]) != variable.get_shape().as_list():
            misshaped.append(f"{name}: checkpoint {list(shapes[name])}, "
                             f"model {variable.get_shape().as_list()}")
    if missing or misshaped:
        lines = [f"The checkpoint {checkpoint_path} does not fit the model."]
        if missing:
            lines.append("Missing from the checkpoint: " + ", ".join(missing))
        if misshaped:
            lines.append("Shapes differ: " + "; ".join(misshaped))
        raise ValueError("\n".join(lines))


def warm_start_from_dense_checkpoint(checkpoint_path: str,
                                     var_list: Sequence[tf.Variable] | None = None
                                     ) -> Callable[..., None]:
    """Returns a function that restores the model's weights from a checkpoint without masks.

    Call it while building the graph; run the returned function after the variables are
    initialised. It fits `tf.compat.v1.train.Scaffold(init_fn=...)` (called as
    `init_fn(scaffold, session)`) and also takes a plain `init_fn(session)`.

    Args:
      checkpoint_path: a checkpoint prefix, or a directory whose latest checkpoint is used.
      var_list: variables to restore; defaults to the model variables (or, if there are none,
        the trainable variables). Pruning masks and thresholds are never restored.
    Returns:
      A function of `(scaffold, session)` or `(session)` that restores the variables.
    Raises:
      ValueError: if no checkpoint is found, or if it lacks a variable or holds it in another
        shape (every such variable is listed).
    """
    checkpoint = checkpoint_path
    if tf.io.gfile.isdir(checkpoint_path):
        checkpoint = tf.train.latest_checkpoint(checkpoint_path)
        if checkpoint is None:
            raise ValueError(f"No checkpoint found in directory {checkpoint_path}; it holds: "
                             f"{sorted(tf.io.gfile.listdir(checkpoint_path)) or 'nothing'}")
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError) as error:
        raise ValueError(f"Could not read a checkpoint at {checkpoint_path}: {error}") from None
    pruning_state = {id(v) for v in pruning.get_masks() + pruning.get_thresholds()}
    variables = [v for v in (var_list or _default_var_list()) if id(v) not in pruning_state]
    _check_fits(reader, checkpoint, variables)
    saver = tf.compat.v1.train.Saver(var_list=variables)

    def restore(*scaffold_and_session):
        saver.restore(scaffold_and_session[-1], checkpoint)

    return restore
