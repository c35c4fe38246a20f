"""Command line tool: the sparsity of a pruned checkpoint's weights, without writing anything.

    python -m model_pruning.inspect_checkpoint /tmp/train [--pruning_hparams=...]

The argument is a checkpoint prefix or a directory (its latest checkpoint is used). Each
`<scope>/mask` of the checkpoint is paired with its weight, the other variable of that scope
with the mask's shape, and one line gives the weight's shape, the nonzeros of mask * weight and
the sparsity. The step is the checkpoint's `global_step`; with the training's
--pruning_hparams, the schedule's target sparsity at that step is printed as well. With
--m_by_n=N:M (or hparams that set sparsity_m_by_n), a column says whether each mask * weight
keeps at most N nonzeros in every group of M along its input axis.

Named like TensorFlow's own `inspect_checkpoint` tool: a module `model_pruning/inspect.py`
would shadow the standard library's `inspect` (which TensorFlow imports) whenever a file of
this folder runs as a script, since that puts the folder first on `sys.path`.
"""

import sys

import numpy as np

from model_pruning.cli import OneLineErrorParser, parse_m_by_n, sparsity_table


def _parser():
    parser = OneLineErrorParser(
        prog="inspect_checkpoint", allow_abbrev=False,
        description="Print each masked weight's shape, nonzeros and sparsity, and the pruning "
                    "schedule's target at the checkpoint's step.")
    parser.add_argument("checkpoint",
                        help="A checkpoint prefix (/tmp/train/model.ckpt-1000) or a directory, "
                             "whose latest checkpoint is used.")
    parser.add_argument("--pruning_hparams", default=None,
                        help="The pruning hparams training used (e.g. target_sparsity=0.9,"
                             "sparsity_function_end_step=1000), to print the schedule's "
                             "target at the checkpoint's step.")
    parser.add_argument("--m_by_n", type=parse_m_by_n, default=None,
                        help="N:M (e.g. 2:4): add a column saying whether each masked weight "
                             "keeps at most N nonzeros in every group of M consecutive weights "
                             "along its input axis (default: the sparsity_m_by_n of "
                             "--pruning_hparams, if set).")
    return parser


def pair_masks(shapes):
    """(weight key or None, mask key) for each `<scope>/mask` of a checkpoint's
    {key: shape}: the weight is the one other key of that scope with the mask's shape."""
    pairs = []
    for mask in sorted(key for key in shapes if key.rpartition("/")[2] == "mask"):
        scope = mask.rpartition("/")[0]
        weights = [key for key in shapes if key != mask and key.rpartition("/")[0] == scope
                   and shapes[key] == shapes[mask]]
        pairs.append((weights[0] if len(weights) == 1 else None, mask))
    return pairs


def schedule_line(step, spec):
    """What the schedule of the pruning hparams `spec` (None if unknown) asks at `step`."""
    if step is None:
        return "step unknown (no global_step in the checkpoint): schedule target unknown"
    if spec is None:
        return (f"step {step}: schedule target unknown (pass --pruning_hparams as given to "
                "training)")
    from model_pruning.schedule import sparsity_at_step
    from model_pruning.spec import m_by_n_pattern

    target = float(sparsity_at_step(step, spec.sparsity_function_begin_step,
                                    spec.sparsity_function_end_step, spec.initial_sparsity,
                                    spec.target_sparsity, spec.sparsity_function_exponent))
    line = (f"step {step}: schedule target {target:.2%} (from {spec.initial_sparsity:.2%} at "
            f"step {spec.sparsity_function_begin_step} to {spec.target_sparsity:.2%} at step "
            f"{spec.sparsity_function_end_step}; masks updated every "
            f"{spec.pruning_frequency} steps from step {spec.begin_pruning_step})")
    own_targets = [entry for entry in spec.weight_sparsity_map if entry]
    if own_targets:
        line += f"; weight_sparsity_map gives its weights their own: {', '.join(own_targets)}"
    m_by_n = m_by_n_pattern(spec)
    if m_by_n is not None and spec.target_sparsity > 0:
        fraction = min(max(target / spec.target_sparsity, 0.0), 1.0)
        line += (f"; sparsity_m_by_n: {fraction:.2%} of each weight's groups of {m_by_n[1]} "
                 f"keep {m_by_n[0]}")
    return line


def _total_check(checks):
    """The pattern check of all weights together from each one's (violations, groups)."""
    known = [check for check in checks if check is not None]
    return tuple(map(sum, zip(*known))) if known else None


def inspect_checkpoint(path, pruning_hparams=None, m_by_n=None):
    """The report's lines for the checkpoint `path` (a prefix or a directory); with `m_by_n`
    (N, M), or hparams that set sparsity_m_by_n, each weight's N:M check too.

    Raises:
      ValueError: in one line, when there is no checkpoint at `path`, it cannot be read, or
        the hparams do not parse.
    """
    # Imported here, once the arguments are parsed: TensorFlow takes seconds to load.
    import tensorflow as tf

    from model_pruning import freeze, pruning_utils
    from model_pruning.pruning import get_pruning_hparams
    from model_pruning.spec import m_by_n_pattern

    spec = None if pruning_hparams is None else get_pruning_hparams().parse(pruning_hparams)
    if m_by_n is None and spec is not None:
        m_by_n = m_by_n_pattern(spec)
    if tf.io.gfile.isdir(path):
        prefix = freeze.find_checkpoint(path)
    elif tf.io.gfile.exists(path + ".index"):
        prefix = path
    else:
        raise ValueError(f"No checkpoint at {path}: it is neither a directory nor a checkpoint "
                         f"prefix ({path}.index does not exist)")
    reader = freeze.open_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    step = (int(freeze.read_tensor(reader, prefix, "global_step"))
            if "global_step" in shapes else None)
    lines = [f"checkpoint {prefix}"]
    rows = []
    for weight, mask in pair_masks(shapes):
        value = freeze.read_tensor(reader, prefix, mask)
        name = f"{mask} (the mask alone: no weight of its shape beside it)"
        if weight is not None:
            value = value * freeze.read_tensor(reader, prefix, weight)
            name = weight
        check = None if m_by_n is None else pruning_utils.m_by_n_violations(value, *m_by_n)
        rows.append((name, value.shape, int(np.count_nonzero(value)), value.size, check))
    if not rows:
        return lines + ["No masked weights: the checkpoint holds no '<scope>/mask' variable."]
    rows.append((f"all {len(rows)}", (), sum(row[2] for row in rows),
                 sum(row[3] for row in rows), _total_check(row[4] for row in rows)))
    lines += sparsity_table(rows, m_by_n)
    lines.append(schedule_line(step, spec))
    return lines


def main(argv=None):
    """Entry point of `python -m model_pruning.inspect_checkpoint`; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        print("\n".join(inspect_checkpoint(args.checkpoint, args.pruning_hparams,
                                           args.m_by_n)))
    except ValueError as error:
        return parser.fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
