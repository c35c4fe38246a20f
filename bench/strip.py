"""Wall time and peak memory of stripping a pruned checkpoint, against the checkpoint's size.

    python -m bench.strip [--sizes 25e6 1e8] [--work_dir /tmp/strip_bench]

For each size it saves a checkpoint of masked weights (4 conv and 2 fc kernels, as in
`bench.mask_update`) with their masks, then, in a fresh child process, freezes and strips
it and writes the stripped GraphDef: `graph_def_from_checkpoint`, `strip_pruning_vars_fn`,
and the `.pb` write, which is what the `strip_pruning_vars` tool does besides printing its
report. The peak is the child's peak resident size above its size before stripping (with
TensorFlow imported, default allocators), divided by the checkpoint's size on disk.
"""

import argparse
import glob
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from bench import common
from bench.mask_update import build_masked_model
from model_pruning import pruning, strip_pruning_vars_lib

OUTPUT_NODE = "output"


def save_checkpoint(num_weights, directory):
    """Child process body: a checkpoint of the masked model, masks at 90% sparsity."""
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        build_masked_model(num_weights)
        tf.add_n([tf.reduce_sum(w) for w in pruning.get_masked_weights()], name=OUTPUT_NODE)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.initializers.global_variables())
            rng = np.random.RandomState(0)
            for mask in pruning.get_masks():
                shape = mask.get_shape().as_list()
                mask.load((rng.rand(*shape) >= 0.9).astype(np.float32), session)
            tf.compat.v1.train.Saver().save(session, os.path.join(directory, "model.ckpt"))
    print("saved")


def strip(directory):
    """Child process body: freeze, strip and write; prints seconds and the peak ratio."""
    before = common.reset_peak_rss()
    start = time.perf_counter()
    frozen = strip_pruning_vars_lib.graph_def_from_checkpoint(directory, [OUTPUT_NODE])
    stripped = strip_pruning_vars_lib.strip_pruning_vars_fn(frozen, [OUTPUT_NODE])
    del frozen
    with open(os.path.join(directory, "stripped.pb"), "wb") as output:
        output.write(stripped.SerializeToString())
    seconds = time.perf_counter() - start
    print(seconds, common.peak_rss() - before)


def checkpoint_bytes(directory):
    return sum(os.path.getsize(path) for path in glob.glob(os.path.join(directory, "model.ckpt*")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[25e6, 1e8])
    parser.add_argument("--work_dir", default="/tmp/strip_bench")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    if args.child:
        what, arg = args.child
        if what == "save":
            save_checkpoint(int(float(arg)), args.work_dir)
        else:
            strip(args.work_dir)
        return

    print(common.machine_line())
    rows = []
    for size in args.sizes:
        shutil.rmtree(args.work_dir, ignore_errors=True)
        os.makedirs(args.work_dir)
        common.run_child("bench.strip", "--work_dir", args.work_dir, "--child", "save", size)
        ckpt = checkpoint_bytes(args.work_dir)
        seconds, peak = map(float, common.run_child(
            "bench.strip", "--work_dir", args.work_dir, "--child", "strip", "-").split())
        rows.append([f"{size / 1e6:g}M", f"{ckpt / 2 ** 20:.0f} MiB", f"{seconds:.1f} s",
                     f"{ckpt / 2 ** 20 / seconds:.0f} MiB/s", f"{peak / 2 ** 20:.0f} MiB",
                     f"{peak / ckpt:.2f}x"])
        shutil.rmtree(args.work_dir)
    common.print_table(["weights", "checkpoint", "strip time", "checkpoint per second",
                        "peak memory", "peak / checkpoint"], rows)


if __name__ == "__main__":
    main()
