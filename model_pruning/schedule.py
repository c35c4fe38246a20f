"""The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune".

    p = clip((step - begin_step) / (end_step - begin_step), 0, 1)
    sparsity(step) = target + (initial - target) * (1 - p) ** exponent

Before `begin_step` the sparsity is `initial`, after `end_step` it is `target`. The pruning
frequency does not enter the formula: masks follow it only as often as they are updated.
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
