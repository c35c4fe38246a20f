"""How far can a trained model be pruned, and where: one-shot sweeps and per-layer sensitivity.

Before a long pruning run, prune the trained weights one-shot (no retraining) at a range of
sparsities and measure the model each time: every masked weight together (the sweep), and
one masked weight at a time with the others untouched (sensitivity analysis, as in Intel's
Distiller). The masks are set with the exact threshold of `threshold_method=exact`, by weight,
by output channel (a conv filter or an fc neuron, scored by the L1 or L2 norm of its weights)
or by block, and are put back as they were afterwards, also after an error or an interrupt.

    analysis = sensitivity.analyze(session, evaluate)  # evaluate(session) -> e.g. precision
    print(sensitivity.format_table(analysis))
    suggestion = sensitivity.suggest_sparsity_map(analysis, max_drop=0.01)
    print(suggestion.hparams)  # weight_sparsity_map=[^conv1/weights$:0.8,...]

Gradual pruning with retraining recovers much of what one-shot pruning loses, so the
suggested map is a conservative start, not a limit.
"""

from __future__ import annotations

import collections
import numbers
import re
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from model_pruning import compat, pruning, pruning_utils
from model_pruning.spec import check_block_dims

DEFAULT_SPARSITIES = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
GRANULARITIES = ("weight", "channel")
# How the |w| of a channel or block pool into its score.
CRITERIA = {"l1": "AVG", "l2": "L2", "max": "MAX"}

# A drop of exactly max_drop is within it, whatever the float rounding of the difference.
_TOLERANCE = 1e-9

Analysis = collections.namedtuple(
    "Analysis", ["baseline", "sparsities", "sweep", "layers", "sizes"])
Analysis.__doc__ = """`baseline`: the metric with the masks as they were; `sweep`: the metric at
each of `sparsities` with every masked weight pruned to it; `layers`: weight name -> the metric
at each sparsity with only that weight pruned (empty without per-layer analysis); `sizes`:
weight name -> number of elements."""

Suggestion = collections.namedtuple(
    "Suggestion", ["sparsity_map", "overall_sparsity", "max_drop", "hparams"])
Suggestion.__doc__ = """`sparsity_map`: weight name -> the highest sparsity whose one-shot drop
stays within `max_drop` (0.0 when none does); `overall_sparsity`: the fraction of all masked
weights that map prunes; `hparams`: it as a `weight_sparsity_map=[...]` hparams string."""


def _check_arguments(sparsities, granularity, criterion):
    for sparsity in sparsities:
        if not isinstance(sparsity, numbers.Real) or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"Sparsities must be numbers in [0, 1), got {sparsity!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if granularity in GRANULARITIES:
        return
    if (isinstance(granularity, (tuple, list)) and len(granularity) == 2
            and all(isinstance(d, numbers.Integral) for d in granularity)):
        check_block_dims(granularity)
        return
    raise ValueError(f"granularity must be 'weight', 'channel' or a block (height, width), "
                     f"got {granularity!r}")


class OneShotMasks:
    """Ops, in the default graph, that set masks to a sparsity one-shot and put masks back.

    A weight's scores are |mask * w| (a weight already pruned keeps its zeros and goes on
    from there), pooled per output channel or block with `criterion`; the masks keep exactly
    round(n * (1 - sparsity)) scores, as `threshold_method=exact` does. Build it before the
    graph is finalized (a MonitoredSession finalizes it).
    """

    def __init__(self, granularity: str | Sequence[int] = "weight", criterion: str = "l1"):
        _check_arguments([], granularity, criterion)
        pairs = list(zip(pruning.get_weights(), pruning.get_masks()))
        if not pairs:
            raise ValueError("No masked weight in the graph: mask weights with apply_mask, the "
                             "masked layers or masking_scope() before the analysis")
        block_dims = {"weight": [1, 1], "channel": [-1, 1]}.get(granularity, granularity)
        self.names = [pruning.graph_name(weight) for weight, _ in pairs]
        self.sizes = {name: weight.get_shape().num_elements()
                      for name, (weight, _) in zip(self.names, pairs)}
        self._masks = [mask for _, mask in pairs]
        self._sparsity = tf.compat.v1.placeholder(tf.float32, [], name="one_shot_sparsity")
        self._set_ops, self._restore_inputs, self._restore_ops = {}, [], []
        for name, (weight, mask) in zip(self.names, pairs):
            with tf.name_scope(name + "_one_shot"):
                mask_value = compat.whole_value(mask)
                masked = compat.whole_value(weight) * mask_value
                scores, _, to_mask = pruning.weight_scores(
                    masked, tf.abs(masked), None, list(block_dims), CRITERIA[criterion], None)
                _, keep = pruning_utils.exact_threshold_mask(scores, self._sparsity)
                # A weight pruned already stays pruned, however few the scores keep asks.
                new_mask = tf.cast(to_mask(keep), mask_value.dtype) * mask_value
                self._set_ops[name] = pruning.assign_whole(mask, new_mask)
                restore_input = tf.compat.v1.placeholder(mask_value.dtype, mask_value.shape)
                self._restore_inputs.append(restore_input)
                self._restore_ops.append(pruning.assign_whole(mask, restore_input))

    def read(self, session: tf.compat.v1.Session) -> list[np.ndarray]:
        """The masks' present values, in the order of `names`."""
        return session.run([compat.whole_value(mask) for mask in self._masks])

    def set(self, session: tf.compat.v1.Session, sparsity: float,
            names: Sequence[str] | None = None) -> None:
        """Prunes the weights of `names` (all by default) one-shot to `sparsity`."""
        session.run([self._set_ops[name] for name in (names or self.names)],
                    {self._sparsity: sparsity})

    def restore(self, session: tf.compat.v1.Session, values: Sequence[np.ndarray]) -> None:
        """Puts back masks returned by `read`."""
        session.run(self._restore_ops, dict(zip(self._restore_inputs, values)))


def analyze(session: tf.compat.v1.Session, evaluate: Callable[[tf.compat.v1.Session], float],
            sparsities: Sequence[float] = DEFAULT_SPARSITIES,
            granularity: str | Sequence[int] = "weight", criterion: str = "l1",
            per_layer: bool = True, progress: Callable[[str], None] | None = print) -> Analysis:
    """One-shot sweep and, with `per_layer`, sensitivity of each masked weight.

    Args:
      session: a session of the graph of masked weights, holding the trained weights (a dense
        or already pruned checkpoint restored). The graph must not be finalized.
      evaluate: runs the model with the session and returns a number, higher is better (for
        example precision on held-out data).
      sparsities: the sparsities to try, each in [0, 1).
      granularity: 'weight', 'channel' (whole output channels: conv filters, fc neurons) or a
        block (height, width) of each weight's [inputs, outputs] matrix view.
      criterion: how channel or block scores pool |w|: 'l1', 'l2' or 'max'.
      per_layer: also prune one weight at a time (len(sparsities) evaluations per weight).
      progress: called with one line per evaluation; None for silence.
    Returns:
      An `Analysis`. The masks are as they were before the call, also after an exception or
      KeyboardInterrupt.
    """
    _check_arguments(sparsities, granularity, criterion)
    with session.graph.as_default():
        masks = OneShotMasks(granularity, criterion)
    report = progress or (lambda line: None)
    original = masks.read(session)

    def evaluate_at(sparsity, names, label):
        masks.set(session, sparsity, names)
        metric = float(evaluate(session))
        masks.restore(session, original)
        report(f"{label} at sparsity {sparsity:g}: {metric:.4f}")
        return metric

    try:
        baseline = float(evaluate(session))
        report(f"masks as they are: {baseline:.4f}")
        sweep = [evaluate_at(s, None, "all weights") for s in sparsities]
        layers = {name: [evaluate_at(s, [name], name) for s in sparsities]
                  for name in (masks.names if per_layer else [])}
    finally:
        masks.restore(session, original)
    return Analysis(baseline, list(sparsities), sweep, layers, masks.sizes)


def _within(analysis, metric, max_drop):
    return analysis.baseline - metric <= max_drop + _TOLERANCE


def sweep_summary(analysis: Analysis, max_drop: float, metric_name: str = "metric") -> str:
    """One line: up to which sparsity the sweep keeps the metric within `max_drop` of the
    baseline, and by how much it falls at the next sparsity."""
    pairs = sorted(zip(analysis.sparsities, analysis.sweep))
    fall = next((i for i, (_, metric) in enumerate(pairs)
                 if not _within(analysis, metric, max_drop)), len(pairs))
    start = f"one-shot sweep: {metric_name} {analysis.baseline:.4f}"
    if fall == 0:
        return f"{start} falls by more than {max_drop:g} already at sparsity {pairs[0][0]:g}"
    line = f"{start} stays within {max_drop:g} up to sparsity {pairs[fall - 1][0]:g}"
    if fall == len(pairs):
        return line + ", the highest tried"
    sparsity, metric = pairs[fall]
    return line + f"; falls by {analysis.baseline - metric:.4f} at {sparsity:g}"


def suggest_sparsity_map(analysis: Analysis, max_drop: float) -> Suggestion:
    """Each layer's highest one-shot sparsity whose metric stays within `max_drop` of baseline.

    Layers are judged one at a time, so pruning them all at their suggestions together can
    cost more than `max_drop` one-shot; gradual pruning with retraining usually recovers it.
    """
    if not analysis.layers:
        raise ValueError("The analysis has no per-layer results: run analyze(per_layer=True)")
    if max_drop < 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    sparsity_map = {}
    for name, metrics in analysis.layers.items():
        within = [s for s, metric in zip(analysis.sparsities, metrics)
                  if _within(analysis, metric, max_drop)]
        sparsity_map[name] = max(within, default=0.0)
    total = sum(analysis.sizes[name] for name in sparsity_map)
    overall = sum(analysis.sizes[name] * s for name, s in sparsity_map.items()) / total
    entries = ",".join(f"^{re.escape(name)}$:{s:g}" for name, s in sparsity_map.items())
    return Suggestion(sparsity_map, overall, max_drop, f"weight_sparsity_map=[{entries}]")


def format_table(analysis: Analysis) -> str:
    """A markdown table: one row per weight and one for the sweep, one column per sparsity."""
    header = ["weight", "size"] + [f"{s:g}" for s in analysis.sparsities]
    rows = [[name, str(analysis.sizes[name])] + [f"{m:.4f}" for m in metrics]
            for name, metrics in analysis.layers.items()]
    rows.append(["all weights (sweep)", str(sum(analysis.sizes.values()))]
                + [f"{m:.4f}" for m in analysis.sweep])
    lines = [f"metric with the masks as they were: {analysis.baseline:.4f}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def plot(analysis: Analysis, path: str, metric_name: str = "metric") -> None:
    """Writes a PNG: the metric against sparsity, one curve per weight and the sweep's.

    Needs matplotlib (`pip install model_pruning[plot]`).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ImportError("sensitivity.plot needs matplotlib: pip install matplotlib "
                          "(or model_pruning[plot])") from None
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for name, metrics in analysis.layers.items():
        axes.plot(analysis.sparsities, metrics, marker=".", label=name)
    axes.plot(analysis.sparsities, analysis.sweep, marker="o", color="black", linewidth=2,
              label="all weights (sweep)")
    axes.axhline(analysis.baseline, color="grey", linestyle=":", label="masks as they were")
    axes.set_xlabel("one-shot sparsity")
    axes.set_ylabel(metric_name)
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)
