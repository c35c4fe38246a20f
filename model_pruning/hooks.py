"""`ModelPruningHook`: magnitude pruning for MonitoredTrainingSession and Estimator loops."""

import tensorflow as tf

from model_pruning.pruning import Pruning


class ModelPruningHook(tf.compat.v1.train.SessionRunHook):
    """Builds `Pruning` when the session is set up and runs its conditional update after each step.

        hooks = [model_pruning.ModelPruningHook("target_sparsity=0.9,sparsity_function_end_step=1000")]
        with tf.compat.v1.train.MonitoredTrainingSession(checkpoint_dir=..., hooks=hooks) as sess:
            while not sess.should_stop():
                sess.run(train_op)

    Args:
      hparams: pruning hparams: an HParams from `get_pruning_hparams()` or an hparams string.
      global_step: the global step; defaults to the graph's when the hook begins.
    Raises:
      ValueError: from `begin()`, on invalid hparams or a graph without a global step.
    """

    def __init__(self, hparams, global_step=None):
        self._hparams = hparams
        self._global_step = global_step
        self.pruning = None
        self._mask_update_op = None

    def begin(self):
        self.pruning = Pruning(self._hparams, global_step=self._global_step)
        self._mask_update_op = self.pruning.conditional_mask_update_op()
        self.pruning.add_pruning_summaries()

    def after_run(self, run_context, run_values):
        # After the train op, so a step's update sees that step's weights and global step.
        run_context.session.run(self._mask_update_op)
