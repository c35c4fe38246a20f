"""`train`: tf-slim's training loop with a mask update after every step."""

from __future__ import annotations

import tensorflow as tf
import tf_slim as slim

from model_pruning import compat

_USE_DEFAULT = 0


def train(train_op: tf.Tensor, logdir: str, mask_update_op: tf.Operation,
          train_step_fn=slim.learning.train_step,
          train_step_kwargs=_USE_DEFAULT, log_every_n_steps=1, graph=None, master="",
          is_chief=True, global_step=None, number_of_steps=None, init_op=_USE_DEFAULT,
          init_feed_dict=None, local_init_op=_USE_DEFAULT, init_fn=None, ready_op=_USE_DEFAULT,
          summary_op=_USE_DEFAULT, save_summaries_secs=600, summary_writer=_USE_DEFAULT,
          startup_delay_steps=0, saver=None, save_interval_secs=600, sync_optimizer=None,
          session_config=None, trace_every_n_steps=None) -> float:
    """Runs `slim.learning.train` and `mask_update_op` after each training step.

    Takes slim's arguments plus `mask_update_op` (usually
    `Pruning(...).conditional_mask_update_op()`). Like slim's loop it needs graph mode for the
    whole program: call `tf.compat.v1.disable_eager_execution()` at start-up.

    Returns:
      The value of the total loss after the last step, as slim returns it.
    Raises:
      RuntimeError: if eager execution is enabled.
    """
    if compat.eager_execution_is_global():
        raise RuntimeError(
            "model_pruning.train, like slim.learning.train, needs graph mode: call "
            "tf.compat.v1.disable_eager_execution() when the program starts")

    def train_step_with_pruning(session, *args, **kwargs):
        total_loss, should_stop = train_step_fn(session, *args, **kwargs)
        session.run(mask_update_op)
        return total_loss, should_stop

    return slim.learning.train(
        train_op, logdir, train_step_fn=train_step_with_pruning,
        train_step_kwargs=train_step_kwargs, log_every_n_steps=log_every_n_steps, graph=graph,
        master=master, is_chief=is_chief, global_step=global_step,
        number_of_steps=number_of_steps, init_op=init_op, init_feed_dict=init_feed_dict,
        local_init_op=local_init_op, init_fn=init_fn, ready_op=ready_op, summary_op=summary_op,
        save_summaries_secs=save_summaries_secs, summary_writer=summary_writer,
        startup_delay_steps=startup_delay_steps, saver=saver,
        save_interval_secs=save_interval_secs, sync_optimizer=sync_optimizer,
        session_config=session_config, trace_every_n_steps=trace_every_n_steps)
