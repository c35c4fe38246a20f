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

import re
import warnings

import tensorflow as tf

from model_pruning import compat, pruning_utils, taylor
from model_pruning.hparams import HParams
from model_pruning.schedule import sparsity_at_step

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

THRESHOLD_METHODS = ("histogram", "exact")
CRITERIA = ("magnitude", "taylor")


def get_pruning_hparams():
    """The pruning hyperparameters with their defaults.

    name: scope of the schedule, of `<name>/last_mask_update_step` and of the update ops;
      summaries go under `<name>_summaries`.
    begin_pruning_step / end_pruning_step: masks are updated only for global steps in this
      inclusive range; end -1 means no end.
    do_not_prune: regexes of weights (or masks) that keep an all-ones mask.
    weight_sparsity_map: `regex:sparsity` entries giving matching weights their own target.
    block_dims_map: `regex:HxW` entries giving matching weights their own block shape.
    threshold_decay: the threshold is smoothed as (1 - d) * new + d * previous (histogram only)
      until sparsity_function_end_step; from then on every update reaches the target.
    pruning_frequency: minimum number of global steps between two mask updates.
    nbins: histogram bins of the `histogram` threshold method.
    block_height / block_width: default block shape; -1 spans the whole dimension. A weight is
      viewed as the matrix [prod(shape[:-1]), shape[-1]], so -1x1 prunes whole output filters.
    block_pooling_function: AVG (mean |w|), MAX or L2 (root mean square) over each block.
    initial_sparsity / target_sparsity / sparsity_function_begin_step /
      sparsity_function_end_step / sparsity_function_exponent: the schedule (see `schedule`).
    use_tpu: build the histogram CDF without scatter ops.
    threshold_method: `histogram` (approximate, cheapest) or `exact` (exactly
      round(n * (1 - sparsity)) weights kept, ties broken by position; ignores threshold_decay).
    criterion: what ranks the weights: `magnitude` (|w|, pooled over blocks) or `taylor`
      (whole output channels ranked by their first-order Taylor score, see `taylor`; needs
      `Pruning.add_taylor_scores(loss)`; block dims do not apply).
    criterion_map: `regex:magnitude` or `regex:taylor` entries giving matching weights their
      own criterion.
    taylor_decay: the Taylor scores are averaged as d * score + (1 - d) * batch score.
    """
    return HParams(
        name="model_pruning",
        begin_pruning_step=0,
        end_pruning_step=-1,
        do_not_prune=[""],
        weight_sparsity_map=[""],
        block_dims_map=[""],
        threshold_decay=0.9,
        pruning_frequency=10,
        nbins=255,
        block_height=1,
        block_width=1,
        block_pooling_function="AVG",
        initial_sparsity=0.0,
        target_sparsity=0.5,
        sparsity_function_begin_step=0,
        sparsity_function_end_step=100,
        sparsity_function_exponent=3.0,
        use_tpu=False,
        threshold_method="histogram",
        criterion="magnitude",
        criterion_map=[""],
        taylor_decay=0.9,
    )


def _name_of(obj):
    """The graph name of a variable, partitioned variable or tensor, without `:0`."""
    return obj.name.split(":")[0]


def _in_collection(obj, key):
    return any(item is obj for item in tf.compat.v1.get_collection(key))


def _is_masked_weight(x):
    """True for a product made by `apply_mask` (`.../masked_weight`, `masked_weight_1`, ...)."""
    return (isinstance(x, tf.Tensor) and x.op.type == "Mul"
            and x.op.name.rpartition("/")[2].startswith("masked_weight"))


def apply_mask(x, scope=""):
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


def get_masked_weights():
    return tf.compat.v1.get_collection(MASKED_WEIGHT_COLLECTION)


def get_masks():
    return tf.compat.v1.get_collection(MASK_COLLECTION)


def get_thresholds():
    return tf.compat.v1.get_collection(THRESHOLD_COLLECTION)


def get_weights():
    return tf.compat.v1.get_collection(WEIGHT_COLLECTION)


def get_weight_sparsity():
    """The fraction of zeros of each mask, as a list of scalar tensors."""
    return [tf.nn.zero_fraction(mask) for mask in get_masks()]


def _normalize_spec(spec):
    """A fresh HParams holding `spec` (None, an hparams string, or an HParams-like object)."""
    normalized = get_pruning_hparams()
    if spec is None:
        return normalized
    if isinstance(spec, str):
        return normalized.parse(spec)
    values = spec.values() if callable(getattr(spec, "values", None)) else vars(spec)
    for name, value in values.items():
        normalized.set_hparam(name, value)
    return normalized


def _compile_pattern(pattern, hparam):
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{hparam} entry {pattern!r} is not a valid regex: {error}") from None


def _split_map_entry(entry, hparam, value_form):
    pattern, sep, value = entry.rpartition(":")
    if not sep or not pattern:
        raise ValueError(f"{hparam} entry {entry!r} must look like <regex>:{value_form}")
    return _compile_pattern(pattern, hparam), value


def _parse_sparsity_map(entries):
    parsed = {}
    for entry in entries:
        if not entry:
            continue
        pattern, text = _split_map_entry(entry, "weight_sparsity_map", "<sparsity>")
        try:
            sparsity = float(text)
        except ValueError:
            raise ValueError(
                f"weight_sparsity_map entry {entry!r}: {text!r} is not a number") from None
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(
                f"weight_sparsity_map entry {entry!r}: sparsity must be in [0, 1), got {sparsity}")
        parsed[pattern] = sparsity
    return parsed


def _check_block_dims(block_dims, where):
    for dim in block_dims:
        if dim != -1 and not 1 <= dim < 2**31:
            raise ValueError(f"{where}: block dims must be >= 1 (int32) or -1, got {block_dims}")
    return list(block_dims)


def _parse_block_dims_map(entries):
    parsed = {}
    for entry in entries:
        if not entry:
            continue
        pattern, text = _split_map_entry(entry, "block_dims_map", "<H>x<W>")
        dims = text.split("x")
        try:
            if len(dims) != 2:
                raise ValueError
            dims = [int(d) for d in dims]
        except ValueError:
            raise ValueError(
                f"block_dims_map entry {entry!r}: expected 2 integers as <H>x<W>, got {text!r}"
            ) from None
        parsed[pattern] = _check_block_dims(dims, f"block_dims_map entry {entry!r}")
    return parsed


def _parse_criterion_map(entries):
    parsed = {}
    for entry in entries:
        if not entry:
            continue
        pattern, criterion = _split_map_entry(entry, "criterion_map", "|".join(CRITERIA))
        if criterion not in CRITERIA:
            raise ValueError(f"criterion_map entry {entry!r}: criterion must be one of "
                             f"{', '.join(CRITERIA)}, got {criterion!r}")
        parsed[pattern] = criterion
    return parsed


def _check_values(spec):
    """Raises a ValueError naming the first hparam whose value is not allowed."""
    # Steps are compared with the int32 global step; bins and blocks are int32 sizes.
    for name, value in sorted(spec.values().items()):
        if type(value) is int and not -2**31 <= value < 2**31:
            raise ValueError(f"{name} must be an int32, in [-2**31, 2**31), got {value}")
    if spec.begin_pruning_step < 0:
        raise ValueError(f"begin_pruning_step must be >= 0, got {spec.begin_pruning_step}")
    if spec.end_pruning_step != -1 and spec.end_pruning_step <= spec.begin_pruning_step:
        raise ValueError(
            f"end_pruning_step must be -1 (no end) or > begin_pruning_step "
            f"({spec.begin_pruning_step}), got {spec.end_pruning_step}")
    if spec.sparsity_function_begin_step < 0:
        raise ValueError(f"sparsity_function_begin_step must be >= 0, got "
                         f"{spec.sparsity_function_begin_step}")
    if spec.sparsity_function_begin_step >= spec.sparsity_function_end_step:
        raise ValueError(
            f"sparsity_function_end_step must be > sparsity_function_begin_step "
            f"({spec.sparsity_function_begin_step}), got {spec.sparsity_function_end_step}")
    for name in ("threshold_decay", "initial_sparsity", "target_sparsity"):
        value = getattr(spec, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if spec.sparsity_function_exponent <= 0:
        raise ValueError(f"sparsity_function_exponent must be > 0, got "
                         f"{spec.sparsity_function_exponent}")
    if spec.pruning_frequency < 1:
        raise ValueError(f"pruning_frequency must be >= 1, got {spec.pruning_frequency}")
    if not 2 <= spec.nbins <= pruning_utils.MAX_NBINS:
        raise ValueError(f"nbins must be in [2, {pruning_utils.MAX_NBINS}], got {spec.nbins}")
    _check_block_dims([spec.block_height, spec.block_width], "block_height/block_width")
    if spec.block_pooling_function not in pruning_utils.BLOCK_POOLING_FUNCTIONS:
        raise ValueError(
            f"block_pooling_function must be one of "
            f"{', '.join(pruning_utils.BLOCK_POOLING_FUNCTIONS)}, got "
            f"{spec.block_pooling_function!r}")
    if spec.threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold_method must be one of {', '.join(THRESHOLD_METHODS)}, "
                         f"got {spec.threshold_method!r}")
    if spec.criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, "
                         f"got {spec.criterion!r}")
    if not 0.0 <= spec.taylor_decay < 1.0:
        raise ValueError(f"taylor_decay must be in [0, 1), got {spec.taylor_decay}")


def validated_spec(spec):
    """`spec` (None, an hparams string, or an HParams-like object) as a fresh HParams whose
    values and map entries are all checked, so a bad spec fails where it is given.

    Raises:
      ValueError: naming the bad hparam or map entry and what is allowed.
    """
    spec = _normalize_spec(spec)
    _check_values(spec)
    _parse_sparsity_map(spec.weight_sparsity_map)
    _parse_block_dims_map(spec.block_dims_map)
    _parse_criterion_map(spec.criterion_map)
    for pattern in spec.do_not_prune:
        _compile_pattern(pattern, "do_not_prune")
    return spec


def _single_match(pattern_map, name, hparam):
    """The value of the one entry whose regex is found in `name`, or None."""
    matches = [value for pattern, value in pattern_map.items() if pattern.search(name)]
    if len(matches) > 1:
        raise ValueError(f"Multiple matches in {hparam} for weight {name}")
    return matches[0] if matches else None


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


class Pruning:
    """Builds the ops that keep every registered weight's mask at the scheduled sparsity.

    Args:
      spec: pruning hparams (`get_pruning_hparams()`, possibly parsed), an hparams string, or
        None for the defaults. Validated here, not at the first session run.
      global_step: the global step tensor or variable; defaults to the graph's global step.
      sparsity: a tensor or variable that replaces the schedule entirely.
    Raises:
      ValueError: on an invalid spec or when there is no global step.
    """

    def __init__(self, spec=None, global_step=None, sparsity=None):
        self._spec = validated_spec(spec)
        self._weight_sparsity_map = _parse_sparsity_map(self._spec.weight_sparsity_map)
        self._block_dims_map = _parse_block_dims_map(self._spec.block_dims_map)
        self._block_dims = [self._spec.block_height, self._spec.block_width]
        self._block_pooling_function = self._spec.block_pooling_function
        self._criterion_map = _parse_criterion_map(self._spec.criterion_map)
        self._taylor_scores = {}
        self._do_not_prune = [_compile_pattern(p, "do_not_prune")
                              for p in self._spec.do_not_prune if p]
        self._external_sparsity = sparsity is not None
        if self._external_sparsity and self._weight_sparsity_map and not self._spec.target_sparsity:
            raise ValueError("weight_sparsity_map with an external sparsity scales it by "
                             "map value / target_sparsity, so target_sparsity must be > 0")
        self._global_step = self._setup_global_step(global_step)
        self._sparsity = sparsity if self._external_sparsity else self._setup_sparsity()
        self._threshold_decay = self._setup_threshold_decay()
        self._last_update_step = self._setup_last_update_step()

    def _setup_global_step(self, global_step):
        if global_step is None:
            global_step = tf.compat.v1.train.get_global_step()
        if global_step is None:
            raise ValueError(
                "Pruning needs a global step: pass global_step=..., or create one with "
                "tf.compat.v1.train.get_or_create_global_step() before building Pruning")
        return tf.cast(global_step, tf.int32)

    def _schedule(self, target_sparsity, name):
        spec = self._spec
        return sparsity_at_step(
            self._global_step, spec.sparsity_function_begin_step,
            spec.sparsity_function_end_step, spec.initial_sparsity, target_sparsity,
            spec.sparsity_function_exponent, name=name)

    def _setup_sparsity(self):
        with tf.name_scope(self._spec.name):
            return self._schedule(self._spec.target_sparsity, "sparsity")

    def _setup_threshold_decay(self):
        """`threshold_decay` while the schedule ramps, 0 once it has reached its target.

        Smoothing makes the threshold lag the schedule by about 1 / (1 - decay) updates
        (10 at the default 0.9), which contrib users saw as masks far below the target after a
        short ramp. From `sparsity_function_end_step` on, every update thresholds the scores
        afresh, so the masks are at the target however short the ramp was. With an external
        `sparsity` tensor the end of the schedule is unknown and the decay always applies.
        """
        decay = self._spec.threshold_decay
        if self._external_sparsity or decay == 0.0:
            return decay
        with tf.name_scope(self._spec.name):
            ramping = self._global_step < self._spec.sparsity_function_end_step
            return tf.where(ramping, decay, 0.0, name="threshold_decay")

    def _setup_last_update_step(self):
        """The `<name>/last_mask_update_step` variable, shared by Pruning objects of one name.

        A resource variable (TF 2.21 cannot assign a ref variable inside tf.cond) in
        LOCAL_VARIABLES: Savers leave it out and a Scaffold's local_init_op sets it to zero. So a
        Pruning built in a SessionRunHook's begin(), after the user's Saver, restores and runs
        without "Variables not initialized", and a restored dense checkpoint never lacks it.
        After a restart the first due step updates the masks once more, at the current schedule.
        Reads go through `_read_last_update_step`, which treats "not initialised" as step 0, so a
        plain Session with only `global_variables_initializer()` works too.
        """
        with tf.compat.v1.variable_scope(self._spec.name, reuse=tf.compat.v1.AUTO_REUSE):
            return tf.compat.v1.get_variable(
                "last_mask_update_step", shape=[], dtype=tf.int32,
                initializer=tf.compat.v1.zeros_initializer(), trainable=False,
                use_resource=True, collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])

    def _read_last_update_step(self):
        step = self._last_update_step
        return tf.cond(tf.compat.v1.is_variable_initialized(step), step.read_value,
                       lambda: tf.zeros([], tf.int32))

    def _get_sparsity(self, weight_name):
        """The sparsity tensor for one weight: its own from weight_sparsity_map, or the global one."""
        target = _single_match(self._weight_sparsity_map, weight_name, "weight_sparsity_map")
        if target is None:
            return self._sparsity
        if self._external_sparsity:
            return self._sparsity * (target / self._spec.target_sparsity)
        return self._schedule(target, "sparsity")

    def _get_block_dims(self, weight_name):
        dims = _single_match(self._block_dims_map, weight_name, "block_dims_map")
        return dims if dims is not None else self._block_dims

    def _get_criterion(self, weight_name):
        criterion = _single_match(self._criterion_map, weight_name, "criterion_map")
        return criterion or self._spec.criterion

    def _is_excluded(self, weight, mask):
        names = (_name_of(weight), _name_of(mask))
        return any(p.search(n) for p in self._do_not_prune for n in names)

    def _threshold_and_keep(self, scores, sparsity, previous_threshold, max_score=None):
        if self._spec.threshold_method == "exact":
            return pruning_utils.exact_threshold_mask(scores, sparsity)
        return pruning_utils.histogram_threshold_mask(
            scores, sparsity, self._spec.nbins, previous_threshold,
            self._threshold_decay, self._spec.use_tpu, max_score)

    def _taylor_keep(self, weights, sparsity, threshold, weight_name):
        """Keeps whole output channels (the last axis) of `weights` by their Taylor scores."""
        score = self._taylor_scores.get(weight_name)
        if score is None:
            raise ValueError(f"{weight_name} uses the taylor criterion: call "
                             "Pruning.add_taylor_scores(loss) before building the mask update op")
        new_threshold, keep = self._threshold_and_keep(score.read_value(), sparsity, threshold)
        return new_threshold, tf.broadcast_to(keep, tf.shape(weights))

    def _maybe_update_block_mask(self, weights, threshold, weight_name=None):
        """The new (threshold, mask) of one weight tensor: element-wise, by blocks, or by whole
        output channels for the taylor criterion.

        Fails, naming the weight, when it holds NaN or Inf; nothing is computed from it then.
        """
        weight_name = weight_name or weights.op.name
        sparsity = self._get_sparsity(weight_name)
        scores = tf.abs(weights)
        # The maximum is NaN or Inf exactly when some weight is, and the histogram needs it.
        max_score = tf.reduce_max(scores)
        finite = tf.debugging.Assert(
            tf.math.is_finite(max_score),
            [f"Cannot update the pruning mask of {weight_name}: the weight holds NaN or Inf"])
        with tf.control_dependencies([finite]):
            return self._threshold_and_mask(weights, scores, max_score, threshold, sparsity,
                                            weight_name)

    def _threshold_and_mask(self, weights, scores, max_score, threshold, sparsity, weight_name):
        """`_maybe_update_block_mask` past its check, given |weights| and their maximum."""
        block_dims = self._get_block_dims(weight_name)
        if self._get_criterion(weight_name) == "taylor":
            new_threshold, keep = self._taylor_keep(weights, sparsity, threshold, weight_name)
        elif block_dims == [1, 1] or weights.get_shape().ndims < 2:
            new_threshold, keep = self._threshold_and_keep(scores, sparsity, threshold, max_score)
        else:
            matrix = pruning_utils.as_matrix(scores)
            height, width = matrix.get_shape().as_list()
            block_dims = pruning_utils.resolve_block_dims(block_dims, [height, width])
            pooled = pruning_utils.pool_blocks(matrix, block_dims, self._block_pooling_function)
            new_threshold, keep = self._threshold_and_keep(pooled, sparsity, threshold)
            keep = pruning_utils.expand_tensor(keep, block_dims)[:height, :width]
            keep = tf.reshape(keep, tf.shape(weights))
        return (tf.cast(new_threshold, threshold.dtype.base_dtype),
                tf.cast(keep, weights.dtype.base_dtype))

    def _update_ops_for_weight(self, weight, mask, threshold):
        weight_name = _name_of(weight)
        partitioned = compat.is_partitioned(weight)
        values = weight.as_tensor() if partitioned else tf.convert_to_tensor(weight)
        with tf.name_scope(weight_name + "_pruning_ops"):
            new_threshold, new_mask = self._maybe_update_block_mask(
                values, threshold.read_value(), weight_name)
        threshold_assign = pruning_utils.variable_assign(threshold, new_threshold)
        if compat.is_partitioned(mask):
            mask_assign = pruning_utils.partitioned_variable_assign(mask, new_mask)
        else:
            mask_assign = pruning_utils.variable_assign(mask, new_mask)
        return [threshold_assign, mask_assign]

    def _get_mask_assign_ops(self):
        masks, thresholds, weights = get_masks(), get_thresholds(), get_weights()
        if not len(masks) == len(thresholds) == len(weights):
            raise ValueError(
                f"Number of masks {len(masks)}, thresholds {len(thresholds)} and weights "
                f"{len(weights)} in the pruning collections differ")
        updated = [(weight, mask, threshold)
                   for weight, mask, threshold in zip(weights, masks, thresholds)
                   if not self._is_excluded(weight, mask)]
        if not masks:
            warnings.warn(
                f"Pruning {self._spec.name!r} found no masked weight in the graph, so nothing "
                "will be pruned. Mask weights with apply_mask(weight, scope), the masked layers "
                "and cells, or by building the model inside masking_scope(). Keras layers do "
                "not create their weights through get_variable, so masking_scope cannot see "
                "them.")
        elif not updated:
            warnings.warn(f"Pruning {self._spec.name!r}: do_not_prune matches every one of the "
                          f"{len(masks)} masked weights, so nothing will be pruned.")
        assign_ops, previous_group = [], []
        sizes = [weight.get_shape().num_elements() for weight, _, _ in updated]
        for group in _update_groups(sizes, UPDATE_GROUP_SIZE):
            with tf.control_dependencies(previous_group):
                previous_group = [op for i in group
                                  for op in self._update_ops_for_weight(*updated[i])]
            assign_ops.extend(previous_group)
        return assign_ops

    def mask_update_op(self):
        """An op that updates every mask now, whatever the step, and records the step."""
        with tf.name_scope(self._spec.name):
            assign_ops = self._get_mask_assign_ops()
            step_assign = self._last_update_step.assign(
                self._global_step, name="last_mask_update_step_assign")
            with tf.control_dependencies(assign_ops + [step_assign]):
                return tf.no_op(name="mask_update")

    def conditional_mask_update_op(self):
        """An op that updates the masks when the step is in range and pruning_frequency has passed.

        Each call builds its own ops, so calling it twice gives two working ops.
        """
        spec = self._spec
        with tf.name_scope(spec.name):
            in_range = self._global_step >= spec.begin_pruning_step
            if spec.end_pruning_step >= 0:
                in_range = tf.logical_and(in_range, self._global_step <= spec.end_pruning_step)
            is_due = self._read_last_update_step() + spec.pruning_frequency <= self._global_step
            should_update = tf.logical_and(in_range, is_due)
        return tf.cond(should_update, self.mask_update_op, tf.no_op)

    def add_taylor_scores(self, loss):
        """Creates the Taylor scores of the weights pruned by the taylor criterion and returns
        the op that adds one batch to them.

        Call it before building the mask update op, and run the op with every training step:

            train_op = tf.group(train_op, pruning.add_taylor_scores(loss))
            mask_update_op = pruning.conditional_mask_update_op()

        Each score is the variable `<mask scope>/taylor_score`, one float per output channel of
        the Conv2D, Conv3D or MatMul that uses the masked weight as kernel (see `taylor`).
        Cost per step: the op has its own `tf.gradients` of `loss` with respect to those layer
        outputs, a second backward pass from the loss down to the lowest scored layer (without
        weight gradients; grappler does not merge it with the optimizer's), then one product
        and one mean over each scored activation: a cifar10 example step at batch 128 took
        1.5x as long with it. Scores only matter at mask updates, so running the op only on
        the last few steps before each update cuts that. State: one float per output channel.

        Args:
          loss: the scalar loss the model is trained on.
        Returns:
          The score update op.
        Raises:
          ValueError: if no weight uses the taylor criterion, or a scored weight is not the
            kernel of exactly one Conv2D, Conv3D or MatMul.
        """
        layers = [(masked, _name_of(mask).rpartition("/")[0], _name_of(weight))
                  for weight, mask, masked in zip(get_weights(), get_masks(), get_masked_weights())
                  if not self._is_excluded(weight, mask)
                  and self._get_criterion(_name_of(weight)) == "taylor"]
        if not layers:
            raise ValueError("No masked weight uses the taylor criterion: set criterion=taylor "
                             "or criterion_map=[<regex>:taylor]")
        with tf.name_scope(self._spec.name):
            scores, update = taylor.score_update_op(
                loss, [(masked, scope) for masked, scope, _ in layers], self._spec.taylor_decay)
        self._taylor_scores.update(zip([name for _, _, name in layers], scores))
        return update

    def add_pruning_summaries(self):
        """Scalar summaries under `<name>_summaries/`: the schedule, the step, each mask's sparsity
        and each threshold."""
        with tf.name_scope(self._spec.name + "_summaries"):
            tf.compat.v1.summary.scalar("sparsity", self._sparsity)
            tf.compat.v1.summary.scalar("last_mask_update_step", self._read_last_update_step())
            for weight, mask, threshold in zip(get_weights(), get_masks(), get_thresholds()):
                if self._is_excluded(weight, mask):
                    continue
                tf.compat.v1.summary.scalar(_name_of(mask) + "/sparsity",
                                            tf.nn.zero_fraction(mask))
                tf.compat.v1.summary.scalar(_name_of(threshold) + "/threshold", threshold)

    def print_hparams(self):
        tf.compat.v1.logging.info(self._spec.to_json())
