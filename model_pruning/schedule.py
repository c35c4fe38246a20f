"""The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune".

    p = clip((step - begin_step) / (end_step - begin_step), 0, 1)
    sparsity(step) = target + (initial - target) * (1 - p) ** exponent

Before `begin_step` the sparsity is `initial`, after `end_step` it is `target`. The pruning
frequency does not enter the formula: masks follow it only as often as they are updated.

Masks are updated when `update_is_due`: within [begin_pruning_step, end_pruning_step] (end -1:
no end), once `pruning_frequency` steps have passed since the last update.

The histogram threshold's smoothing (`threshold_decay`) follows the schedule too: it applies
while the sparsity ramps and stops at `end_step` (`threshold_decay_at_step`).
"""

import tensorflow as tf


def sparsity_at_step(step, begin_step, end_step, initial_sparsity, target_sparsity, exponent,
                     name="sparsity"):
    """The scheduled sparsity at `step` (a scalar tensor or number) as a float32 tensor."""
    if not begin_step < end_step:
        raise ValueError(
            f"The sparsity ramp needs begin_step < end_step, got {begin_step} and {end_step}")
    progress = (tf.cast(step, tf.float32) - begin_step) / float(end_step - begin_step)
    progress = tf.clip_by_value(progress, 0.0, 1.0)
    return tf.add(float(target_sparsity),
                  (float(initial_sparsity) - float(target_sparsity))
                  * tf.pow(1.0 - progress, float(exponent)),
                  name=name)


def threshold_decay_at_step(step, end_step, decay):
    """`decay` before `end_step`, 0 from then on, as a float32 tensor (or 0.0 if `decay` is).

    Smoothing makes the threshold lag the schedule by about 1 / (1 - decay) updates (10 at
    contrib's default 0.9), so after a short ramp contrib left masks far below the target.
    Once the schedule has reached it, every update thresholds afresh and reaches it too.
    """
    if decay == 0.0:
        return 0.0
    return tf.where(tf.cast(step, tf.int64) < end_step, float(decay), 0.0, name="threshold_decay")


def next_update_step(last_update_step, begin_step, frequency):
    """The first step at which an update is due after the one at `last_update_step`: a tensor
    for a tensor `last_update_step`, a number for a number."""
    after_last = last_update_step + frequency
    if isinstance(after_last, tf.Tensor):
        return tf.maximum(after_last, begin_step)
    return max(after_last, begin_step)


def update_is_due(step, next_update, end_step):
    """Whether the masks are to be updated at `step`, given `next_update_step(...)`: a bool
    tensor for tensor arguments, a Python or numpy bool for numbers (`ModelPruningHook` decides
    in Python with it)."""
    due = step >= next_update
    if end_step >= 0:
        due = due & (step <= end_step)
    return due
