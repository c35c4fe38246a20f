"""`ModelPruningHook`: magnitude pruning for MonitoredTrainingSession and Estimator loops."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_pruning.hparams import HParams
from model_pruning.pruning import Pruning, get_overall_weight_sparsity
from model_pruning.schedule import next_update_step, update_is_due
from model_pruning.spec import PruningSpec


class ModelPruningHook(tf.compat.v1.train.SessionRunHook):
    """Builds `Pruning` when the session is set up and runs its conditional update after each step.

        hooks = [model_pruning.ModelPruningHook("target_sparsity=0.9,sparsity_function_end_step=1000")]
        with tf.compat.v1.train.MonitoredTrainingSession(checkpoint_dir=..., hooks=hooks) as sess:
            while not sess.should_stop():
                sess.run(train_op)

    On a step where no update can be due the hook runs nothing of its own: it fetches the
    global step with the train op and decides in Python (`schedule.update_is_due`); only near a
    due step does it run `conditional_mask_update_op()`, which decides exactly in the graph.

    Each mask update is logged at INFO (`tf.compat.v1.logging`): the step, the scheduled
    sparsity and the sparsity the masks reached.

    Args:
      hparams: pruning hparams: an HParams from `get_pruning_hparams()` or an hparams string.
      global_step: the global step; defaults to the graph's when the hook begins.
    Raises:
      ValueError: here, on invalid hparams; from `begin()`, on a graph without a global step.
    """

    def __init__(self, hparams: HParams | str,
                 global_step: tf.Variable | tf.Tensor | None = None):
        self._spec = PruningSpec(hparams)
        self._global_step = global_step
        self.pruning = None
        self._update = self._read_step = None
        self._report = None
        self._last_update_step = None

    def begin(self):
        self.pruning = Pruning(self._spec, global_step=self._global_step)
        self._read_step = self.pruning.last_mask_update_step()
        with tf.control_dependencies([self.pruning.conditional_mask_update_op()]):
            # Read after the update, so a changed value means an update just ran.
            self._update = tf.identity(self.pruning.last_mask_update_step())
        self._report = (self.pruning.sparsity, get_overall_weight_sparsity())
        self.pruning.add_pruning_summaries()

    def after_create_session(self, session, coord):
        self._last_update_step = session.run(self._read_step)

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs(self.pruning.global_step)

    def _may_be_due(self, fetched_step):
        """Whether an update can be due now. The step was read in the same run as the train op,
        before or after its increment, so the step now is `fetched_step` or one more."""
        hparams = self._spec.hparams
        next_update = next_update_step(self._last_update_step, hparams.begin_pruning_step,
                                       hparams.pruning_frequency)
        return any(update_is_due(step, next_update, hparams.end_pruning_step)
                   for step in (fetched_step, fetched_step + 1))

    def after_run(self, run_context, run_values):
        if not self._may_be_due(int(run_values.results)):
            return
        # After the train op, so a step's update sees that step's weights and global step.
        session = run_context.session
        step = session.run(self._update)
        if step != self._last_update_step:
            scheduled, reached = session.run(self._report)
            tf.compat.v1.logging.info(
                "Pruning %s: masks updated at step %d: scheduled sparsity %.4f, "
                "masks at %.4f", self._spec.hparams.name, step, scheduled, np.float64(reached))
        self._last_update_step = step
