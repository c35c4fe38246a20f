"""Training overhead of pruning: the cifar10 example's train step with and without it.

    python -m bench.train_overhead [--blocks 60] [--batch_size 128]

Each variant is the example model (`examples.cifar10.cifar10_pruning`) in a session of its
own, trained on one fixed random batch (so the input pipeline does not dilute the overhead):
`no pruning` runs the train op; the others also run `conditional_mask_update_op()` after it,
as `cifar10_train` does, at pruning_frequency 1 or 10 with each threshold method. The
variants take turns step by step; each variant's steps are summed in blocks of 10 (a block
holds exactly one update at frequency 10), and it prints the median over blocks of each
variant's block over the same block of `no pruning`. As a check less exposed to noise in the train op, it also prints
the mean time of the update op's own session run per step over the median step without
pruning.
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from bench import common
from examples.cifar10 import cifar10_pruning
from model_pruning import pruning

BLOCK_STEPS = 10
VARIANTS = {
    "no pruning": None,
    "histogram, frequency 10": ("histogram", 10),
    "histogram, frequency 1": ("histogram", 1),
    "exact, frequency 10": ("exact", 10),
    "exact, frequency 1": ("exact", 1),
}


class TrainStep:
    """One variant: a graph with the model, its train op and maybe a mask update op."""

    def __init__(self, pruning_setup, batch_size):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(0)
            global_step = tf.compat.v1.train.get_or_create_global_step()
            rng = np.random.RandomState(0)
            images = tf.constant(rng.rand(batch_size, 24, 24, 3).astype(np.float32))
            labels = tf.constant(rng.randint(0, 10, batch_size).astype(np.int32))
            total_loss = cifar10_pruning.loss(cifar10_pruning.inference(images), labels)
            self.train_op = cifar10_pruning.train(total_loss, global_step, batch_size=batch_size)
            self.update_op = None
            if pruning_setup:
                method, frequency = pruning_setup
                spec = pruning.get_pruning_hparams().parse(
                    f"threshold_method={method},pruning_frequency={frequency},"
                    "target_sparsity=0.9,sparsity_function_end_step=100000")
                self.update_op = pruning.Pruning(
                    spec, global_step=global_step).conditional_mask_update_op()
            init = [tf.compat.v1.initializers.global_variables(),
                    tf.compat.v1.initializers.local_variables()]
        self.session = tf.compat.v1.Session(graph=self.graph, config=common.session_config())
        self.session.run(init)

    def step(self):
        """One training step the way `cifar10_train` runs it; returns the seconds of the
        train op and of the mask update op (0 without pruning)."""
        start = time.perf_counter()
        self.session.run(self.train_op)
        trained = time.perf_counter()
        if self.update_op is not None:
            self.session.run(self.update_op)
        return trained - start, time.perf_counter() - trained


def interleaved_blocks(variants, blocks):
    """Per variant, the seconds of each block of BLOCK_STEPS steps, and the update ops'
    share of all steps. Variants take turns step by step (in rotating order), so load from
    elsewhere on the machine falls on all of them alike; a first block is not timed."""
    names = list(variants)
    block_seconds = {name: [] for name in names}
    update_seconds = {name: 0.0 for name in names}
    for block in range(blocks + 1):
        totals = dict.fromkeys(names, 0.0)
        for step in range(BLOCK_STEPS):
            shift = (block * BLOCK_STEPS + step) % len(names)
            for name in names[shift:] + names[:shift]:
                train, update = variants[name].step()
                totals[name] += train + update
                if block:
                    update_seconds[name] += update
        if block:
            for name in names:
                block_seconds[name].append(totals[name])
    return block_seconds, {name: seconds / (blocks * BLOCK_STEPS)
                           for name, seconds in update_seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=60,
                        help="Timed blocks of 10 steps per variant.")
    parser.add_argument("--batch_size", type=int, default=cifar10_pruning.BATCH_SIZE)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    print(common.machine_line())
    variants = {name: TrainStep(setup, args.batch_size) for name, setup in VARIANTS.items()}
    start = time.perf_counter()
    block_seconds, update_per_step = interleaved_blocks(variants, args.blocks)
    print(f"{args.blocks} blocks of {BLOCK_STEPS} steps per variant in "
          f"{time.perf_counter() - start:.0f} s")
    step = {name: statistics.median(seconds) / BLOCK_STEPS
            for name, seconds in block_seconds.items()}
    baseline = step["no pruning"]
    # Each block of a variant ran interleaved with the same block of `no pruning`, so the
    # median of the per-block ratios cancels load that drifts over the run.
    overhead = {name: statistics.median(
        variant / plain for variant, plain in zip(seconds, block_seconds["no pruning"]))
        for name, seconds in block_seconds.items()}
    rows = [[name, f"{step[name] * 1e3:.1f} ms", f"{(overhead[name] - 1) * 100:+.1f}%",
             f"{update_per_step[name] * 1e3:.2f} ms",
             f"{update_per_step[name] / baseline * 100:.1f}%"] for name in VARIANTS]
    common.print_table(["variant", "median step", "overhead", "update op per step",
                        "update op / step without pruning"], rows)


if __name__ == "__main__":
    main()
