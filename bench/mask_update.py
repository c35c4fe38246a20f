"""Cost of one `mask_update_op()` against reading the weights once and against a full sort.

    python -m bench.mask_update [--sizes 1e6 1e7 1e8] [--sparsity 0.8] [--layout few|many]

For each model size (`few`: weights spread over 4 conv and 2 fc kernels; `many`: kernels of
at most 2.1M weights, as in ResNets and BERT, [3, 3, 256, 512], [1024, 1024] and [2048, 1000]
in turn) it times, interleaved in one process: `read once` (reduce_sum(abs(w)) over every weight, the floor of any method), the
`histogram` and `exact` mask updates of `Pruning`, and `full sort`, contrib's final method
(tf.math.top_k over all n values of each weight, then assign threshold and mask). It prints
ratios of medians. Each method's peak memory is measured in a child process of its own: the
peak resident size during one update above the size just before it, divided by the size of
the weights (with freed memory returned at once, see `common.LIVE_MEMORY_ENV`), and for the
two update methods also by the size of the largest update group (`pruning._update_groups`).
"""

import argparse
import math

import numpy as np
import tensorflow as tf

from bench import common
from model_pruning import pruning

METHODS = ("read once", "histogram", "exact", "full sort")


MANY_LAYER_SHAPES = [[3, 3, 256, 512], [1024, 1024], [2048, 1000]]


def kernel_shapes(num_weights, layout="few"):
    """`few`: 4 conv kernels [3, 3, c, c] holding 1/4 of the weights, fc kernels [d, 2d] and
    [d, d] holding 1/2 and 1/4. `many`: MANY_LAYER_SHAPES in turn up to num_weights."""
    if layout == "many":
        shapes, total = [], 0
        while total < num_weights:
            shapes.append(MANY_LAYER_SHAPES[len(shapes) % len(MANY_LAYER_SHAPES)])
            total += int(np.prod(shapes[-1]))
        return shapes
    channels = round(math.sqrt(num_weights / 16 / 9))
    dim = round(math.sqrt(num_weights / 4))
    return [[3, 3, channels, channels]] * 4 + [[dim, 2 * dim], [dim, dim]]


def build_masked_model(num_weights, layout):
    """Masked weight variables of `kernel_shapes`, normally distributed; returns them."""
    weights = []
    for i, shape in enumerate(kernel_shapes(num_weights, layout)):
        scope = f"{'conv' if len(shape) == 4 else 'fc'}{i}"
        with tf.compat.v1.variable_scope(scope):
            weight = tf.compat.v1.get_variable(
                "weights", shape, initializer=tf.compat.v1.random_normal_initializer(seed=i))
            pruning.apply_mask(weight, scope)
        weights.append(weight)
    return weights


def read_once_op(weights):
    """One read of every weight: the least any threshold method has to do."""
    return tf.add_n([tf.reduce_sum(tf.abs(w)) for w in weights]).op


def full_sort_update_op(weights, sparsity):
    """Contrib r1.15's `_update_mask`: a full descending top_k of each weight, then the mask
    of the scores at or above the k-th value."""
    assigns = []
    for weight, mask, threshold in zip(weights, pruning.get_masks(), pruning.get_thresholds()):
        scores = tf.abs(weight)
        size = tf.size(scores)
        k = tf.cast(tf.round(tf.cast(size, tf.float32) * (1.0 - sparsity)), tf.int32)
        values = tf.math.top_k(tf.reshape(scores, [-1]), k=size).values
        new_threshold = values[k - 1]
        assigns += [threshold.assign(new_threshold),
                    mask.assign(tf.cast(scores >= new_threshold, tf.float32))]
    return tf.group(*assigns)


def build_op(method, weights, sparsity):
    if method == "read once":
        return read_once_op(weights)
    if method == "full sort":
        return full_sort_update_op(weights, sparsity)
    spec = pruning.get_pruning_hparams().parse(
        f"name={method}_pruning,threshold_method={method},threshold_decay=0.0")
    return pruning.Pruning(spec, sparsity=tf.constant(sparsity)).mask_update_op()


def build(num_weights, layout, methods, sparsity):
    """A graph with the model and one op per method; returns (graph, ops, weights)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step()
        weights = build_masked_model(num_weights, layout)
        ops = {method: build_op(method, weights, sparsity) for method in methods}
    return graph, ops, weights


def weights_bytes(weights):
    return sum(w.get_shape().num_elements() * w.dtype.base_dtype.size for w in weights)


def largest_group_share(num_weights, layout):
    """The largest update group's share of all weights: `Pruning` updates the kernels in
    groups, one after another, so an update's temporaries scale with a group, not the model."""
    sizes = [int(np.prod(shape)) for shape in kernel_shapes(num_weights, layout)]
    groups = pruning._update_groups(sizes, pruning.UPDATE_GROUP_SIZE)
    return max(sum(sizes[i] for i in group) for group in groups) / sum(sizes)


def measure_memory(num_weights, layout, method, sparsity):
    """Child process body: the extra peak memory of one update, over the weights' size."""
    graph, ops, weights = build(num_weights, layout, ["read once", method], sparsity)
    with tf.compat.v1.Session(graph=graph, config=common.session_config()) as session:
        session.run(tf.compat.v1.initializers.global_variables())
        session.run(tf.compat.v1.initializers.local_variables())
        session.run(ops[method])  # builds kernels and functions before the measured run
        before = common.reset_peak_rss()
        session.run(ops[method])
        extra = common.peak_rss() - before
    print(extra / weights_bytes(weights))


def measure_times(num_weights, layout, repetitions, sparsity):
    """Median seconds of each method's op, interleaved."""
    graph, ops, _ = build(num_weights, layout, METHODS, sparsity)
    with tf.compat.v1.Session(graph=graph, config=common.session_config()) as session:
        session.run(tf.compat.v1.initializers.global_variables())
        session.run(tf.compat.v1.initializers.local_variables())
        # Three untimed rounds: the first updates of a session write memory its allocator has
        # not touched before (at 100M weights 5,000-16,000 page faults per update in the
        # second and third runs, none from the fourth on), so fewer rounds time that instead
        # of the update a training run repeats.
        return common.interleaved_medians(
            {method: lambda op=op: session.run(op) for method, op in ops.items()}, repetitions,
            warmup_rounds=3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--layout", choices=("few", "many"), default="few")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="Timed rounds (default 15 at 1M weights, fewer for larger models).")
    parser.add_argument("--memory_child", nargs=2, metavar=("SIZE", "METHOD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    if args.memory_child:
        measure_memory(int(float(args.memory_child[0])), args.layout, args.memory_child[1],
                       args.sparsity)
        return

    print(common.machine_line())
    print(f"layout: {args.layout}")
    rows = []
    for size in map(int, args.sizes):
        repetitions = args.repetitions or max(5, int(15 / max(1, size / 1e6) ** 0.25))
        seconds = measure_times(size, args.layout, repetitions, args.sparsity)
        memory = {method: float(common.run_child(
            "bench.mask_update", "--sparsity", args.sparsity, "--layout", args.layout,
            "--memory_child", size, method, env=common.LIVE_MEMORY_ENV)) for method in METHODS}
        floor, full_sort = seconds["read once"], seconds["full sort"]
        kernels = len(kernel_shapes(size, args.layout))
        group_share = largest_group_share(size, args.layout)
        rows.append([f"{size / 1e6:g}M", f"{kernels}", f"{repetitions}", f"{floor * 1e3:.1f} ms"]
                    + [f"{seconds[m] / floor:.1f}x" for m in ("histogram", "exact", "full sort")]
                    + [f"{full_sort / seconds[m]:.0f}x" for m in ("histogram", "exact")]
                    + [f"{seconds['exact'] / seconds['histogram']:.2f}x"]
                    + [f"{memory[m]:.2f}x" for m in METHODS]
                    + [f"{memory[m] / group_share:.2f}x" for m in ("histogram", "exact")])
        print(f"done {size / 1e6:g}M", flush=True)
    common.print_table(
        ["weights", "kernels", "rounds", "read once", "histogram / read", "exact / read",
         "full sort / read", "full sort / histogram", "full sort / exact",
         "exact / histogram"] + [f"extra memory {m}" for m in METHODS]
        + [f"extra memory {m} / largest group" for m in ("histogram", "exact")], rows)


if __name__ == "__main__":
    main()
