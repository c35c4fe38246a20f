"""The pruning spec: the hparams, their defaults and checks, and what they say of one weight.

`PruningSpec(hparams)` checks every value and map entry when it is made, and then answers the
questions a mask update asks of one weight: its target sparsity (`weight_sparsity_map`), its
block shape (`block_dims_map`), its criterion (`criterion_map`) and whether `do_not_prune`
leaves it alone; `m_by_n` is the N:M pattern (`sparsity_m_by_n`) every pruned weight takes.
`check_weights` finds a weight matched by two entries of a map as soon as the weights are
known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from model_pruning import pruning_utils
from model_pruning.hparams import HParams

THRESHOLD_METHODS = ("histogram", "exact")
CRITERIA = ("magnitude", "taylor")


def get_pruning_hparams() -> HParams:
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
    sparsity_m_by_n: [N, M] keeps the N largest of every M consecutive weights along each
      kernel's input axis (axis -2: `in` of [in, out] and of [kh, kw, in, out]), for each
      output channel; a last group of fewer than M keeps at most N. While the schedule ramps
      a fraction sparsity / target_sparsity of each weight's groups, those whose pattern drops
      the least magnitude, takes the pattern; target_sparsity must be 1 - N/M. [0, 0]: off.
    channel_groups: prune whole channels, one decision per channel of each group of coupled
      kernels (`channel_groups.find_channel_groups`: the kernels feeding one residual add, a
      depthwise kernel and the kernel before it): a channel's score is the sum over the
      group's kernels of block_pooling_function over |w| of the channel, and exactly
      round(C * (1 - sparsity)) of a group's C channels are kept. Kernels in no group (whose
      channels reach an op the rules do not know, or the model's outputs) stay dense.
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
        sparsity_m_by_n=[0, 0],
        channel_groups=False,
    )


def compile_patterns(patterns: str | Sequence[str] | None, what: str) -> list[re.Pattern]:
    """`patterns` (one regex, several, or None; empty ones skipped) compiled.

    Raises:
      ValueError: naming `what` and the pattern that is not a valid regex.
    """
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        if not pattern:
            continue
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise ValueError(f"{what} {pattern!r} is not a valid regex: {error}") from None
    return compiled


def _sparsity(text: str) -> float:
    try:
        sparsity = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return sparsity


def _block_dims(text: str) -> list[int]:
    dims = text.split("x")
    try:
        if len(dims) != 2:
            raise ValueError
        dims = [int(d) for d in dims]
    except ValueError:
        raise ValueError(f"expected 2 integers as <H>x<W>, got {text!r}") from None
    return check_block_dims(dims)


def check_block_dims(dims: Sequence[int]) -> list[int]:
    for dim in dims:
        if dim != -1 and not 1 <= dim < 2**31:
            raise ValueError(f"block dims must be >= 1 (int32) or -1, got {list(dims)}")
    return list(dims)


def _criterion(text: str) -> str:
    if text not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {text!r}")
    return text


def m_by_n_pattern(hparams: HParams) -> tuple[int, int] | None:
    """(N, M) of sparsity_m_by_n, or None when it is off ([0, 0] or []).

    Raises:
      ValueError: for a value that is no pattern.
    """
    value = list(hparams.sparsity_m_by_n)
    if value in ([], [0, 0]):
        return None
    if len(value) != 2 or not 1 <= value[0] < value[1] < 2**31:
        raise ValueError(
            f"sparsity_m_by_n must be [N,M], keeping N of every M weights with "
            f"1 <= N < M < 2**31 (e.g. [2,4]), or [0,0] for off; got {value}")
    return value[0], value[1]


def _check_channel_groups(hparams: HParams, m_by_n: tuple[int, int] | None,
                          maps: Iterable[PatternMap]) -> None:
    """Raises a ValueError naming the first hparam that channel groups cannot honour: a group
    takes one decision per channel, so nothing may give its kernels different ones."""
    if m_by_n is not None:
        raise ValueError("channel_groups prunes whole channels and sparsity_m_by_n single "
                         "weights: set one of them")
    if [hparams.block_height, hparams.block_width] != [1, 1]:
        raise ValueError(f"channel_groups prunes whole channels already: block_height and "
                         f"block_width must be 1, got {hparams.block_height}x"
                         f"{hparams.block_width}")
    if hparams.criterion != "magnitude":
        raise ValueError(f"channel_groups ranks channels by magnitude: criterion must be "
                         f"magnitude, got {hparams.criterion!r}")
    for pattern_map in maps:
        if pattern_map:
            regex, value = pattern_map.entries[0]
            raise ValueError(
                f"channel_groups gives every kernel of a group the same channels: "
                f"{pattern_map.hparam} entry {regex.pattern}:{value} cannot apply (leave a "
                "group dense with do_not_prune on one of its kernels)")


def _check_m_by_n(hparams: HParams, m_by_n: tuple[int, int], maps: Iterable[PatternMap]
                  ) -> None:
    """Raises a ValueError naming the first hparam that N:M pruning cannot honour."""
    n, m = m_by_n
    pattern = f"sparsity_m_by_n=[{n},{m}]"
    if [hparams.block_height, hparams.block_width] != [1, 1]:
        raise ValueError(f"{pattern} prunes single weights: block_height and block_width must "
                         f"be 1, got {hparams.block_height}x{hparams.block_width}")
    for pattern_map in maps:
        for regex, value in pattern_map.entries:
            if pattern_map.hparam != "criterion_map" or value == "taylor":
                raise ValueError(
                    f"{pattern} prunes every weight to the same pattern: the "
                    f"{pattern_map.hparam} entry for {regex.pattern!r} cannot apply (leave "
                    "weights dense with do_not_prune)")
    if hparams.criterion != "magnitude":
        raise ValueError(f"{pattern} ranks weights by magnitude: criterion must be magnitude, "
                         f"got {hparams.criterion!r}")
    if abs(hparams.target_sparsity - (1.0 - n / m)) > 1e-4:
        raise ValueError(f"{pattern} prunes every weight to 1 - {n}/{m}: target_sparsity must "
                         f"be {1.0 - n / m:.6g}, got {hparams.target_sparsity}")
    if 0 <= hparams.end_pruning_step < hparams.sparsity_function_end_step:
        raise ValueError(
            f"{pattern} puts every group in the pattern at sparsity_function_end_step "
            f"({hparams.sparsity_function_end_step}), so end_pruning_step must be -1 or at "
            f"least that, got {hparams.end_pruning_step}")


class PatternMap:
    """The `regex:value` entries of one map hparam, each value converted and checked.

    Args:
      hparam: the map's name, for errors.
      entries: the hparam's list; empty entries are skipped.
      value_form: how a value is written, for errors (`<sparsity>`).
      convert: text -> value; raises ValueError saying what is wrong.
    """

    def __init__(self, hparam: str, entries: Iterable[str], value_form: str,
                 convert: Callable[[str], object]):
        self.hparam = hparam
        self.entries = []
        for entry in entries:
            if not entry:
                continue
            pattern, sep, text = entry.rpartition(":")
            if not sep or not pattern:
                raise ValueError(f"{hparam} entry {entry!r} must look like <regex>:{value_form}")
            (regex,) = compile_patterns(pattern, f"{hparam} entry")
            try:
                self.entries.append((regex, convert(text)))
            except ValueError as error:
                raise ValueError(f"{hparam} entry {entry!r}: {error}") from None

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lookup(self, weight_name: str):
        """The value of the one entry whose regex is found in `weight_name`, or None.

        Raises:
          ValueError: if two entries match it.
        """
        matches = [(regex.pattern, value) for regex, value in self.entries
                   if regex.search(weight_name)]
        if len(matches) > 1:
            raise ValueError(f"Weight {weight_name} matches more than one {self.hparam} entry: "
                             f"{', '.join(pattern for pattern, _ in matches)}")
        return matches[0][1] if matches else None


def _as_hparams(spec: HParams | str | None) -> HParams:
    """A fresh HParams holding `spec` (None, an hparams string, or an HParams-like object)."""
    hparams = get_pruning_hparams()
    if spec is None:
        return hparams
    if isinstance(spec, str):
        return hparams.parse(spec)
    values = spec.values() if callable(getattr(spec, "values", None)) else vars(spec)
    for name, value in values.items():
        hparams.set_hparam(name, value)
    return hparams


def _check_values(hparams: HParams) -> None:
    """Raises a ValueError naming the first hparam whose value is not allowed."""
    # Steps are compared with the int32 global step; bins and blocks are int32 sizes.
    for name, value in sorted(hparams.values().items()):
        if type(value) is int and not -2**31 <= value < 2**31:
            raise ValueError(f"{name} must be an int32, in [-2**31, 2**31), got {value}")
    if hparams.begin_pruning_step < 0:
        raise ValueError(f"begin_pruning_step must be >= 0, got {hparams.begin_pruning_step}")
    if hparams.end_pruning_step != -1 and hparams.end_pruning_step <= hparams.begin_pruning_step:
        raise ValueError(
            f"end_pruning_step must be -1 (no end) or > begin_pruning_step "
            f"({hparams.begin_pruning_step}), got {hparams.end_pruning_step}")
    if hparams.sparsity_function_begin_step < 0:
        raise ValueError(f"sparsity_function_begin_step must be >= 0, got "
                         f"{hparams.sparsity_function_begin_step}")
    if hparams.sparsity_function_begin_step >= hparams.sparsity_function_end_step:
        raise ValueError(
            f"sparsity_function_end_step must be > sparsity_function_begin_step "
            f"({hparams.sparsity_function_begin_step}), got {hparams.sparsity_function_end_step}")
    for name in ("threshold_decay", "initial_sparsity", "target_sparsity", "taylor_decay"):
        value = getattr(hparams, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if hparams.sparsity_function_exponent <= 0:
        raise ValueError(f"sparsity_function_exponent must be > 0, got "
                         f"{hparams.sparsity_function_exponent}")
    if hparams.pruning_frequency < 1:
        raise ValueError(f"pruning_frequency must be >= 1, got {hparams.pruning_frequency}")
    if not 2 <= hparams.nbins <= pruning_utils.MAX_NBINS:
        raise ValueError(f"nbins must be in [2, {pruning_utils.MAX_NBINS}], got {hparams.nbins}")
    try:
        check_block_dims([hparams.block_height, hparams.block_width])
    except ValueError as error:
        raise ValueError(f"block_height/block_width: {error}") from None
    for name, allowed in (("block_pooling_function", pruning_utils.BLOCK_POOLING_FUNCTIONS),
                          ("threshold_method", THRESHOLD_METHODS), ("criterion", CRITERIA)):
        if getattr(hparams, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                             f"got {getattr(hparams, name)!r}")


class PruningSpec:
    """Checked pruning hparams and their answers for one weight.

    Args:
      spec: an HParams from `get_pruning_hparams()` (possibly parsed), an hparams string, or
        None for the defaults.
    Attributes:
      m_by_n: (N, M) of sparsity_m_by_n, or None when it is off.
    Raises:
      ValueError: naming the bad hparam or map entry and what is allowed.
    """

    def __init__(self, spec: HParams | str | None = None):
        self.hparams = _as_hparams(spec)
        _check_values(self.hparams)
        self.sparsity_map = PatternMap("weight_sparsity_map", self.hparams.weight_sparsity_map,
                                       "<sparsity>", _sparsity)
        self.block_dims_map = PatternMap("block_dims_map", self.hparams.block_dims_map,
                                         "<H>x<W>", _block_dims)
        self.criterion_map = PatternMap("criterion_map", self.hparams.criterion_map,
                                        "|".join(CRITERIA), _criterion)
        self._do_not_prune = compile_patterns(self.hparams.do_not_prune, "do_not_prune entry")
        self.m_by_n = m_by_n_pattern(self.hparams)
        maps = (self.sparsity_map, self.block_dims_map, self.criterion_map)
        if self.hparams.channel_groups:
            _check_channel_groups(self.hparams, self.m_by_n, maps)
        if self.m_by_n is not None:
            _check_m_by_n(self.hparams, self.m_by_n, maps)

    def target_sparsity(self, weight_name: str) -> float | None:
        """The weight's own target from weight_sparsity_map, or None for the global one."""
        return self.sparsity_map.lookup(weight_name)

    def block_dims(self, weight_name: str) -> list[int]:
        dims = self.block_dims_map.lookup(weight_name)
        return dims if dims is not None else [self.hparams.block_height, self.hparams.block_width]

    def criterion(self, weight_name: str) -> str:
        return self.criterion_map.lookup(weight_name) or self.hparams.criterion

    def is_excluded(self, *names: str) -> bool:
        """True when do_not_prune matches any of `names` (the weight's, its mask's)."""
        return any(p.search(name) for p in self._do_not_prune for name in names)

    def check_weights(self, weight_names: Iterable[str]) -> None:
        """Raises the ValueError of a weight that matches two entries of a map."""
        for name in weight_names:
            for pattern_map in (self.sparsity_map, self.block_dims_map, self.criterion_map):
                pattern_map.lookup(name)

    def check_external_sparsity(self) -> None:
        """Raises unless the map can scale an external sparsity tensor (by value / target)."""
        if self.sparsity_map and not self.hparams.target_sparsity:
            raise ValueError("weight_sparsity_map with an external sparsity scales it by "
                             "map value / target_sparsity, so target_sparsity must be > 0")
