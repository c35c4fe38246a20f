"""Magnitude pruning for graph-mode TensorFlow: `apply_mask`, the pruning collections and `Pruning`.

Wrap each weight in `apply_mask(weight, scope)`; it creates `<scope>/mask` (ones) and
`<scope>/threshold` (zero) and returns `mask * weight` named `.../weights/masked_weight`. Then
build `Pruning(hparams, global_step=...)` and run its `conditional_mask_update_op()` after each
training step: at most every `pruning_frequency` steps within [begin_pruning_step,
end_pruning_step] it recomputes every mask so that each weight reaches the scheduled sparsity.

    hparams = get_pruning_hparams().parse("target_sparsity=0.9,sparsity_function_end_step=1000")
    conv = tf.nn.conv2d(images, apply_mask(weights, "conv1"), [1, 1, 1, 1], "SAME")
    pruning = Pruning(hparams, global_step=global_step)
    mask_update_op = pruning.conditional_mask_update_op()
    pruning.add_pruning_summaries()
"""

from __future__ import annotations

import functools
import typing
import warnings

import tensorflow as tf

from model_pruning import channel_groups, compat, graphdef, pruning_utils, taylor
from model_pruning.hparams import HParams
from model_pruning.schedule import (next_update_step, sparsity_at_step, threshold_decay_at_step,
                                    update_is_due)
from model_pruning.spec import PruningSpec, get_pruning_hparams  # noqa: F401 (contrib's name)

MASK_COLLECTION = "masks"
THRESHOLD_COLLECTION = "thresholds"
MASKED_WEIGHT_COLLECTION = "masked_weights"
WEIGHT_COLLECTION = "kernel"
# The `weights/` part makes quantization rewriters treat the product as a weight.
MASKED_WEIGHT_NAME = "weights/masked_weight"
# Mask updates run in groups, one group after another and the weights of a group concurrently.
# A group holds at most as many elements as the largest weight, or UPDATE_GROUP_SIZE if that
# is more, so an update's temporary memory is that of the largest weight (about 3x its size
# with `histogram`) rather than the sum over all weights, while small weights still overlap.
UPDATE_GROUP_SIZE = 1 << 22


def graph_name(obj):
    """The graph name of a variable, partitioned variable or tensor, without `:0`."""
    return obj.name.split(":")[0]


def _in_collection(obj, key):
    return any(item is obj for item in tf.compat.v1.get_collection(key))


def _is_masked_weight(x):
    """True for a product made by `apply_mask` (`.../masked_weight`, `masked_weight_1`, ...)."""
    return (isinstance(x, tf.Tensor) and x.op.type == "Mul"
            and graphdef.MASKED_WEIGHT.search(x.op.name) is not None)


def apply_mask(x: tf.Variable | tf.Tensor, scope: str | tf.compat.v1.VariableScope = ""
               ) -> tf.Tensor:
    """Returns `mask * x` and registers `x` for pruning.

    Creates `<scope>/mask` and `<scope>/threshold` with `get_variable` (so reuse and partitioners
    of the enclosing variable scope apply) and the op `<name scope>/weights/masked_weight`. A
    weight masked again under reuse (an RNN cell at each time step) is registered once. A weight
    that is already a masked product (code calling `apply_mask` inside `masking_scope`) is
    returned as it is.

    Args:
      x: the weight: a variable, partitioned variable or tensor.
      scope: variable scope (string or VariableScope) of the mask and threshold.
    Returns:
      The masked weight tensor.
    """
    if _is_masked_weight(x):
        return x
    mask = pruning_utils.weight_mask_variable(x, scope)
    threshold = pruning_utils.weight_threshold_variable(x, scope)
    masked_weights = tf.multiply(mask, x, name=MASKED_WEIGHT_NAME)
    if not _in_collection(mask, MASK_COLLECTION):
        tf.compat.v1.add_to_collection(THRESHOLD_COLLECTION, threshold)
        tf.compat.v1.add_to_collection(MASK_COLLECTION, mask)
        tf.compat.v1.add_to_collection(MASKED_WEIGHT_COLLECTION, masked_weights)
        tf.compat.v1.add_to_collection(WEIGHT_COLLECTION, x)
    return masked_weights


def get_masked_weights() -> list[tf.Tensor]:
    return tf.compat.v1.get_collection(MASKED_WEIGHT_COLLECTION)


def get_masks() -> list[tf.Variable]:
    return tf.compat.v1.get_collection(MASK_COLLECTION)


def get_thresholds() -> list[tf.Variable]:
    return tf.compat.v1.get_collection(THRESHOLD_COLLECTION)


def get_weights() -> list[tf.Variable | tf.Tensor]:
    return tf.compat.v1.get_collection(WEIGHT_COLLECTION)


def get_weight_sparsity() -> list[tf.Tensor]:
    """The fraction of zeros of each mask, as a list of scalar tensors."""
    return [tf.nn.zero_fraction(mask) for mask in get_masks()]


def get_overall_weight_sparsity() -> tf.Tensor:
    """The fraction of zeros over all masks together (each counted by its size), a scalar."""
    masks = get_masks()
    if not masks:
        return tf.constant(0.0)
    zeros = tf.add_n([tf.cast(tf.size(mask), tf.float32) * tf.nn.zero_fraction(mask)
                      for mask in masks])
    return zeros / tf.cast(tf.add_n([tf.size(mask) for mask in masks]), tf.float32)


def assign_whole(variable, value):
    """Assigns `value` to a variable, or split like it to a partitioned variable's parts."""
    if compat.is_partitioned(variable):
        return pruning_utils.partitioned_variable_assign(variable, value)
    return pruning_utils.variable_assign(variable, value)


def _global_step_or_default(global_step):
    if global_step is None:
        global_step = tf.compat.v1.train.get_global_step()
    if global_step is None:
        raise ValueError(
            "Pruning needs a global step: pass global_step=..., or create one with "
            "tf.compat.v1.train.get_or_create_global_step() before building Pruning")
    return global_step


def _last_update_step_variable(name):
    """The `<name>/last_mask_update_step` variable, shared by Pruning objects of one name.

    A resource variable (TF 2.21 cannot assign a ref variable inside tf.cond) in
    LOCAL_VARIABLES: Savers leave it out and a Scaffold's local_init_op sets it to zero. So a
    Pruning built in a SessionRunHook's begin(), after the user's Saver, restores and runs
    without "Variables not initialized", and a restored dense checkpoint never lacks it. After
    a restart the first due step updates the masks once more, at the current schedule.
    """
    with tf.compat.v1.variable_scope(name, reuse=tf.compat.v1.AUTO_REUSE):
        return tf.compat.v1.get_variable(
            "last_mask_update_step", shape=[], dtype=tf.int32,
            initializer=tf.compat.v1.zeros_initializer(), trainable=False,
            use_resource=True, collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])


def _warn_if_nothing_is_pruned(name, num_masked, num_pruned):
    if not num_masked:
        warnings.warn(
            f"Pruning {name!r} found no masked weight in the graph, so nothing will be pruned. "
            "Mask weights with apply_mask(weight, scope), the masked layers and cells, or by "
            "building the model inside masking_scope(). Keras layers do not create their "
            "weights through get_variable, so masking_scope cannot see them.")
    elif not num_pruned:
        warnings.warn(f"Pruning {name!r}: do_not_prune matches every one of the {num_masked} "
                      "masked weights, so nothing will be pruned.")


def _update_groups(sizes, min_group_size):
    """Splits the indices of weights of `sizes` (None: unknown) into consecutive groups of at
    most max(largest size, min_group_size) elements each; an unknown size gets a group alone."""
    limit = max([min_group_size] + [size for size in sizes if size is not None])
    groups, total = [], 0
    for index, size in enumerate(sizes):
        size = limit if size is None else size
        if not groups or total + size > limit:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += size
    return groups


def _pruned_weights(spec):
    """(weight, mask, threshold) of every registered weight that do_not_prune leaves in."""
    masks, thresholds, weights = get_masks(), get_thresholds(), get_weights()
    if not len(masks) == len(thresholds) == len(weights):
        raise ValueError(
            f"Number of masks {len(masks)}, thresholds {len(thresholds)} and weights "
            f"{len(weights)} in the pruning collections differ")
    return [(weight, mask, threshold) for weight, mask, threshold
            in zip(weights, masks, thresholds)
            if not spec.is_excluded(graph_name(weight), graph_name(mask))]


def _checked_magnitudes(weights, weight_name):
    """(|weights|, their maximum), computed only once the weight is known to hold no NaN or Inf:
    otherwise the update fails, naming the weight."""
    magnitudes = tf.abs(weights)
    top = tf.reduce_max(magnitudes)  # NaN or Inf exactly when some weight is
    finite = tf.debugging.Assert(
        tf.math.is_finite(top),
        [f"Cannot update the pruning mask of {weight_name}: the weight holds NaN or Inf"])
    with tf.control_dependencies([finite]):
        return tf.identity(magnitudes), tf.identity(top)


def weight_scores(weights, magnitudes, top, block_dims, pooling, taylor_score):
    """(scores, their maximum or None, keep -> mask of `weights`) for one weight: its output
    channels' Taylor score if given, else |w| pooled over blocks, else |w| element by element."""
    if taylor_score is not None:
        return taylor_score, None, lambda keep: tf.broadcast_to(keep, tf.shape(weights))
    if block_dims == [1, 1] or weights.get_shape().ndims < 2:
        return magnitudes, top, lambda keep: keep
    pooled, to_weight_shape = pruning_utils.block_scores(magnitudes, block_dims, pooling)
    return pooled, None, to_weight_shape


def _in_update_groups(pruned, update_ops_for_weight):
    """The update ops of every (weight, mask, threshold) of `pruned`, each group of
    `_update_groups` running after the one before."""
    assign_ops, previous_group = [], []
    sizes = [weight.get_shape().num_elements() for weight, _, _ in pruned]
    for group in _update_groups(sizes, UPDATE_GROUP_SIZE):
        with tf.control_dependencies(previous_group):
            previous_group = [op for i in group for op in update_ops_for_weight(*pruned[i])]
        assign_ops.extend(previous_group)
    return assign_ops


def _run_only_when(condition, build_op, name):
    """An op that runs the op `build_op()` builds only when the scalar bool `condition` holds.

    TF1's form of a conditional: a Switch on `condition`, every op of the branch under a control
    dependency on its taken output (so the whole branch is skipped otherwise), and a Merge.
    `tf.cond` passes each tensor the branch reads through an op of its own; on a step without an
    update that costs ~40 ops run one after another after the train op instead of 4 (+8-10% of
    a 1.5 ms step against +2-3%, bench/README.md, "Step overhead").
    """
    skip, run = tf.raw_ops.Switch(data=condition, pred=condition)
    # Control edges leave from an Identity of the taken output, as in TF1's conditionals.
    with tf.control_dependencies([tf.identity(run, name="run")]):
        op = build_op()
    with tf.control_dependencies([op]):
        ran = tf.identity(run, name="ran")
    return tf.raw_ops.Merge(inputs=[skip, ran], name=name).output.op


def _read_or_zero(variable):
    """The variable's value; 0 while it is not initialised (a plain Session that ran only
    `global_variables_initializer()` and not the local initialiser)."""
    return tf.cond(tf.compat.v1.is_variable_initialized(variable), variable.read_value,
                   lambda: tf.zeros([], variable.dtype.base_dtype))


class _UpdateStep(typing.NamedTuple):
    """What one mask update reads at its step (`Pruning._at_step`)."""
    step: tf.Tensor
    sparsity: tf.Tensor
    threshold_decay: tf.Tensor | float
    fraction: tf.Tensor | None


class Pruning:
    """Builds the ops that keep every registered weight's mask at the scheduled sparsity.

    The path of one weight: its scores (|w|, pooled over blocks, or its channels' Taylor
    scores), a threshold over them (`histogram` or `exact`), the mask that keeps what is above
    it, and the assignment of threshold and mask. With channel_groups the path is that of a
    group of coupled kernels: their channel scores summed, one exact selection of channels,
    and every kernel's mask and threshold assigned from it. With sparsity_m_by_n the mask is
    `pruning_utils.m_by_n_threshold_mask` at the fraction sparsity / target_sparsity of
    groups, and the threshold the largest magnitude it removes.

    Args:
      spec: pruning hparams (`get_pruning_hparams()`, possibly parsed), an hparams string, a
        `PruningSpec`, or None for the defaults. Checked here, with the weights masked so far.
      global_step: the global step tensor or variable; defaults to the graph's global step.
      sparsity: a tensor or variable that replaces the schedule entirely.

    Attributes:
      global_step: the global step as int32, read by `sparsity`; the update ops read the
        step anew where they are built (after a train op, under its control dependency).
      sparsity: the scheduled (or the given) sparsity tensor.

    Raises:
      ValueError: on an invalid spec, a weight matched by two map entries, or no global step.
    """

    def __init__(self, spec: PruningSpec | HParams | str | None = None,
                 global_step: tf.Variable | tf.Tensor | None = None,
                 sparsity: tf.Variable | tf.Tensor | None = None):
        self._spec = spec if isinstance(spec, PruningSpec) else PruningSpec(spec)
        self._hparams = self._spec.hparams
        self._spec.check_weights(graph_name(weight) for weight in get_weights())
        self._external_sparsity = sparsity is not None
        if self._external_sparsity:
            self._spec.check_external_sparsity()
        self._taylor_scores = {}
        self._global_step = _global_step_or_default(global_step)
        self.global_step = tf.cast(self._global_step, tf.int32)
        with tf.name_scope(self._hparams.name):
            self.sparsity = sparsity if self._external_sparsity else self._schedule(
                self._hparams.target_sparsity, self.global_step)
        self._last_update_step = _last_update_step_variable(self._hparams.name)

    def _schedule(self, target_sparsity, step):
        hparams = self._hparams
        return sparsity_at_step(
            step, hparams.sparsity_function_begin_step,
            hparams.sparsity_function_end_step, hparams.initial_sparsity, target_sparsity,
            hparams.sparsity_function_exponent, name="sparsity")

    def _read_step(self):
        """The global step in its own dtype, read where this is called: under the caller's
        control dependencies (a train op's, say), not when Pruning was built."""
        step = self._global_step
        return step.read_value() if isinstance(step, tf.Variable) else tf.convert_to_tensor(step)

    def _at_step(self, step):
        """What one mask update at `step` reads: the step, the sparsity, the threshold decay and
        (with sparsity_m_by_n) the fraction of groups pruned N:M."""
        hparams = self._hparams
        sparsity = self.sparsity if self._external_sparsity else self._schedule(
            hparams.target_sparsity, step)
        # With an external sparsity the end of the schedule is unknown: always smooth.
        decay = hparams.threshold_decay if self._external_sparsity else threshold_decay_at_step(
            step, hparams.sparsity_function_end_step, hparams.threshold_decay)
        fraction = None
        if self._spec.m_by_n is not None:
            # target_sparsity is 1 - N/M: at the end of the ramp this is exactly 1.
            fraction = tf.clip_by_value(tf.cast(sparsity, tf.float32) / hparams.target_sparsity,
                                        0.0, 1.0, name="m_by_n_fraction")
        return _UpdateStep(step, sparsity, decay, fraction)

    def last_mask_update_step(self) -> tf.Tensor:
        """The step of the last mask update as a tensor; 0 before the first."""
        return _read_or_zero(self._last_update_step)

    def _weight_sparsity(self, weight_name, at):
        """The sparsity tensor of one weight: its own from weight_sparsity_map, else the global."""
        target = self._spec.target_sparsity(weight_name)
        if target is None:
            return at.sparsity
        if self._external_sparsity:
            return at.sparsity * (target / self._hparams.target_sparsity)
        return self._schedule(target, at.step)

    def _taylor_score(self, weight_name):
        """The Taylor scores of a weight the taylor criterion prunes, else None."""
        if self._spec.criterion(weight_name) != "taylor":
            return None
        if weight_name not in self._taylor_scores:
            raise ValueError(f"{weight_name} uses the taylor criterion: call Pruning."
                             "add_taylor_scores(loss) before building the mask update op")
        return self._taylor_scores[weight_name].read_value()

    def _m_by_n_threshold_and_mask(self, weights, magnitudes, weight_name, fraction):
        """The new (threshold, mask) of one weight pruned N:M, at the schedule's fraction."""
        shape = weights.get_shape()
        if shape.rank is None or shape.rank < 2 or not shape.is_fully_defined():
            n, m = self._spec.m_by_n
            raise ValueError(
                f"sparsity_m_by_n=[{n},{m}] groups a kernel along its input axis (-2), so it "
                f"needs a weight of known shape and rank >= 2; {weight_name} has shape {shape}: "
                "leave it out with do_not_prune")
        threshold, keep = pruning_utils.m_by_n_threshold_mask(
            magnitudes, *self._spec.m_by_n, fraction)
        return threshold, tf.cast(keep, weights.dtype.base_dtype)

    def _threshold_and_mask(self, weights, threshold, weight_name, at):
        """The new (threshold, mask) of one weight tensor, from `threshold` (the last one)."""
        magnitudes, top = _checked_magnitudes(weights, weight_name)
        if self._spec.m_by_n is not None:
            new_threshold, mask = self._m_by_n_threshold_and_mask(weights, magnitudes,
                                                                  weight_name, at.fraction)
            return tf.cast(new_threshold, threshold.dtype.base_dtype), mask
        scores, top, to_mask = weight_scores(
            weights, magnitudes, top, self._spec.block_dims(weight_name),
            self._hparams.block_pooling_function, self._taylor_score(weight_name))
        sparsity = self._weight_sparsity(weight_name, at)
        if self._hparams.threshold_method == "exact":
            new_threshold, keep = pruning_utils.exact_threshold_mask(scores, sparsity)
        else:
            new_threshold, keep = pruning_utils.histogram_threshold_mask(
                scores, sparsity, self._hparams.nbins, threshold, at.threshold_decay,
                self._hparams.use_tpu, top)
        return (tf.cast(new_threshold, threshold.dtype.base_dtype),
                tf.cast(to_mask(keep), weights.dtype.base_dtype))

    def _update_ops_for_weight(self, at, weight, mask, threshold):
        weight_name = graph_name(weight)
        values = compat.whole_value(weight)
        with tf.name_scope(weight_name + "_pruning_ops"):
            new_threshold, new_mask = self._threshold_and_mask(
                values, threshold.read_value(), weight_name, at)
        return [pruning_utils.variable_assign(threshold, new_threshold),
                assign_whole(mask, new_mask)]

    def _group_update_ops(self, group, masks_and_thresholds, at):
        """The update ops of one channel group: exactly round(C * (1 - sparsity)) of its C
        channels kept, by the sum of the kernels' channel scores, in every kernel's mask."""
        scores = []
        for weight, axis in group.members:
            magnitudes, _ = _checked_magnitudes(compat.whole_value(weight), graph_name(weight))
            scores.append(tf.cast(pruning_utils.channel_scores(
                magnitudes, axis, self._hparams.block_pooling_function), tf.float32))
        threshold, keep = pruning_utils.exact_threshold_mask(tf.add_n(scores), at.sparsity)
        ops = []
        for weight, axis in group.members:
            mask, threshold_variable = masks_and_thresholds[id(weight)]
            own_threshold = tf.cast(threshold, threshold_variable.dtype.base_dtype)
            own_mask = pruning_utils.channel_mask(keep, mask.get_shape().as_list(), axis,
                                                  mask.dtype.base_dtype)
            ops += [pruning_utils.variable_assign(threshold_variable, own_threshold),
                    assign_whole(mask, own_mask)]
        return ops

    def _channel_group_ops(self, pruned, at):
        """The update ops of every channel group whose kernels are all pruned; warns which
        kernels stay dense and why."""
        masks_and_thresholds = {id(weight): (mask, threshold)
                                for weight, mask, threshold in pruned}
        groups, dense = channel_groups.find_channel_groups(pruned[0][0].graph if pruned else None)
        reasons = [f"{graph_name(item.weight)} ({item.reason})" for item in dense
                   if id(item.weight) in masks_and_thresholds]
        ops = []
        for index, group in enumerate(groups):
            excluded = [graph_name(weight) for weight, _ in group.members
                        if id(weight) not in masks_and_thresholds]
            if excluded:
                reasons += [f"{graph_name(weight)} (its group holds {excluded[0]}, which "
                            "do_not_prune leaves dense)" for weight, _ in group.members
                            if id(weight) in masks_and_thresholds]
                continue
            with tf.name_scope(f"channel_group_{index}"):
                ops += self._group_update_ops(group, masks_and_thresholds, at)
        if reasons:
            warnings.warn(f"Pruning {self._hparams.name!r} with channel_groups leaves "
                          f"{len(reasons)} kernel(s) dense: " + "; ".join(reasons))
        return ops

    def _mask_assign_ops(self, at):
        pruned = _pruned_weights(self._spec)
        _warn_if_nothing_is_pruned(self._hparams.name, len(get_masks()), len(pruned))
        if self._hparams.channel_groups:
            return self._channel_group_ops(pruned, at)
        return _in_update_groups(pruned, functools.partial(self._update_ops_for_weight, at))

    def _mask_update(self, step):
        """The update of every mask at `step` (an int32 tensor), which it records."""
        at = self._at_step(step)
        assign_ops = self._mask_assign_ops(at)
        step_assign = self._last_update_step.assign(step, name="last_mask_update_step_assign")
        with tf.control_dependencies(assign_ops + [step_assign]):
            return tf.no_op(name="mask_update")

    def mask_update_op(self) -> tf.Operation:
        """An op that updates every mask now, whatever the step, and records the step."""
        with tf.name_scope(self._hparams.name):
            return self._mask_update(tf.cast(self._read_step(), tf.int32))

    def conditional_mask_update_op(self) -> tf.Operation:
        """An op that updates the masks when the step is in range and pruning_frequency has passed.

        Each call builds its own ops, so calling it twice gives two working ops.
        """
        hparams = self._hparams
        with tf.name_scope(hparams.name):
            step = self._read_step()
            with tf.control_dependencies(None):
                # No train op changes the last update's step: read it without waiting for one,
                # so that after the train op only the step is read and compared.
                next_update = tf.cast(next_update_step(self.last_mask_update_step(),
                                                       hparams.begin_pruning_step,
                                                       hparams.pruning_frequency), step.dtype)
            is_due = update_is_due(step, next_update, hparams.end_pruning_step)
            return _run_only_when(is_due, lambda: self._mask_update(tf.cast(step, tf.int32)),
                                  name="conditional_mask_update")

    def add_taylor_scores(self, loss: tf.Tensor) -> tf.Operation:
        """The op that adds one batch to the Taylor scores (`taylor.add_scores`) of the weights
        the taylor criterion prunes. Call it before building the mask update op and run it
        with the training steps: `train_op = tf.group(train_op, p.add_taylor_scores(loss))`.
        """
        scored = [(graph_name(weight), masked, graph_name(mask).rpartition("/")[0])
                  for weight, mask, masked in zip(get_weights(), get_masks(), get_masked_weights())
                  if not self._spec.is_excluded(graph_name(weight), graph_name(mask))
                  and self._spec.criterion(graph_name(weight)) == "taylor"]
        with tf.name_scope(self._hparams.name):
            scores, update = taylor.add_scores(loss, scored, self._hparams.taylor_decay)
        self._taylor_scores.update(scores)
        return update

    def add_pruning_summaries(self) -> None:
        """Scalar summaries under `<name>_summaries/`: the schedule, the step, each mask's sparsity
        and each threshold."""
        with tf.name_scope(self._hparams.name + "_summaries"):
            tf.compat.v1.summary.scalar("sparsity", self.sparsity)
            tf.compat.v1.summary.scalar("last_mask_update_step", self.last_mask_update_step())
            for _, mask, threshold in _pruned_weights(self._spec):
                tf.compat.v1.summary.scalar(graph_name(mask) + "/sparsity",
                                            tf.nn.zero_fraction(mask))
                tf.compat.v1.summary.scalar(graph_name(threshold) + "/threshold", threshold)

    def print_hparams(self) -> None:
        tf.compat.v1.logging.info(self._hparams.to_json())
