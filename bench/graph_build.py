"""Time to build the pruning ops of a model with many masked weights.

    python -m bench.graph_build [--weights 500] [--repetitions 3]

A fresh graph holds `--weights` masked kernels (alternately conv [3, 3, 16, 16] and fc
[64, 64]); it times `Pruning(...).conditional_mask_update_op()` for each threshold method,
and the first session run of that op (graph optimisation and function instantiation), the
first with the masks due for an update. Medians of interleaved repetitions.
"""

import argparse
import time

import tensorflow as tf

from bench import common
from model_pruning import pruning

METHODS = ("histogram", "exact")


def build_and_run(num_weights, method):
    """Seconds to build the conditional update op, and to run it the first time."""
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        for i in range(num_weights):
            shape = [3, 3, 16, 16] if i % 2 else [64, 64]
            with tf.compat.v1.variable_scope(f"layer{i}"):
                weight = tf.compat.v1.get_variable("weights", shape)
                pruning.apply_mask(weight, f"layer{i}")
        spec = pruning.get_pruning_hparams().parse(
            f"threshold_method={method},pruning_frequency=1,target_sparsity=0.5")
        start = time.perf_counter()
        update = pruning.Pruning(spec, global_step=global_step).conditional_mask_update_op()
        build_seconds = time.perf_counter() - start
        with tf.compat.v1.Session(config=common.session_config()) as session:
            session.run([tf.compat.v1.initializers.global_variables(),
                         tf.compat.v1.initializers.local_variables(),
                         global_step.assign(50)])
            start = time.perf_counter()
            session.run(update)
            return build_seconds, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=int, default=500)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    print(common.machine_line())
    results = {method: [] for method in METHODS}
    seconds = common.interleaved_medians(
        {method: lambda method=method: results[method].append(
            build_and_run(args.weights, method)) for method in METHODS}, args.repetitions)
    rows = []
    for method in METHODS:
        timed = results[method][1:]  # the warm-up round is not counted
        builds = sorted(build for build, _ in timed)
        runs = sorted(run for _, run in timed)
        rows.append([method, str(args.weights), f"{builds[len(builds) // 2]:.1f} s",
                     f"{runs[len(runs) // 2]:.1f} s", f"{seconds[method]:.1f} s"])
    common.print_table(["method", "masked weights", "build update op", "first run",
                        "whole graph incl. model and init"], rows)


if __name__ == "__main__":
    main()
