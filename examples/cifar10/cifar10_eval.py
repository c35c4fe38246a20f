"""Evaluates the CIFAR-10 example's checkpoints: precision @ 1 and each layer's sparsity.

    python -m examples.cifar10.cifar10_eval --checkpoint_dir=/tmp/cifar10_train --run_once

Restores the trained variables themselves (contrib restored moving averages, which the training
here does not keep: after a short pruned training the averages would lag the pruned weights, and
the strip tool exports the variables, so this is the accuracy of the model one ships). Without
--run_once it evaluates each new checkpoint, looking every --eval_interval_secs seconds.
"""

import argparse
import collections
import os
import sys
import time

import numpy as np
import tensorflow as tf

from examples.cifar10 import cifar10_input, cifar10_pruning, flags

EvalResult = collections.namedtuple(
    "EvalResult", ["checkpoint", "global_step", "precision", "num_examples", "layer_sparsity"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval_dir", default="/tmp/cifar10_eval",
                        help="Where the precision summaries are written.")
    flags.add_eval_data_flag(parser)
    parser.add_argument("--checkpoint_dir", default="/tmp/cifar10_train",
                        help="The training directory whose latest checkpoint is evaluated.")
    flags.add_data_dir_flag(parser)
    parser.add_argument("--eval_interval_secs", type=int, default=300,
                        help="Seconds between looks for a new checkpoint.")
    parser.add_argument("--num_examples", type=int,
                        default=cifar10_input.NUM_EXAMPLES_PER_EPOCH_FOR_EVAL,
                        help="Evaluate at most this many examples (fewer if the data is smaller).")
    parser.add_argument("--batch_size", type=int, default=cifar10_pruning.BATCH_SIZE)
    flags.add_bool_flag(parser, "run_once", "Evaluate the latest checkpoint once and exit.")
    return parser.parse_args(argv)


def layer_sparsity(checkpoint_path):
    """{mask variable name: fraction of zeros} for every `<layer>/mask` in the checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    names = sorted(name for name in reader.get_variable_to_shape_map()
                   if name.endswith("/mask"))
    return {name: float(np.mean(reader.get_tensor(name) == 0)) for name in names}


def checkpoint_step(checkpoint_path):
    """The global step stored in a checkpoint."""
    return int(tf.train.load_checkpoint(checkpoint_path).get_tensor("global_step"))


class Evaluator:
    """The eval graph of one data set, built once and run on any number of checkpoints."""

    def __init__(self, batches_dir, eval_data, num_examples, batch_size):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._init, images, labels = cifar10_input.inputs(
                eval_data, batches_dir, batch_size, num_examples)
            logits = cifar10_pruning.inference(images)
            self._correct = tf.reduce_sum(tf.cast(tf.nn.in_top_k(targets=labels, predictions=logits, k=1), tf.int32))
            self._count = tf.size(labels)
            self._saver = tf.compat.v1.train.Saver()

    def evaluate(self, checkpoint_path):
        """Runs one pass over the data with the checkpoint's variables; returns an EvalResult."""
        correct = count = 0
        with tf.compat.v1.Session(graph=self.graph) as session:
            self._saver.restore(session, checkpoint_path)
            session.run(self._init)
            while True:
                try:
                    batch_correct, batch_count = session.run([self._correct, self._count])
                except tf.errors.OutOfRangeError:
                    break
                correct += batch_correct
                count += batch_count
        if not count:
            raise ValueError(f"No examples to evaluate {checkpoint_path} on")
        return EvalResult(checkpoint_path, checkpoint_step(checkpoint_path), correct / count,
                          count, layer_sparsity(checkpoint_path))


def format_result(result):
    lines = [f"step {result.global_step}: precision @ 1 = {result.precision:.4f} "
             f"({result.num_examples} examples, {result.checkpoint})"]
    lines += [f"  {name} sparsity = {value:.4f}" for name, value in result.layer_sparsity.items()]
    return "\n".join(lines)


def write_summary(writer, result):
    summary = tf.compat.v1.Summary()
    summary.value.add(tag="Precision @ 1", simple_value=result.precision)
    for name, value in result.layer_sparsity.items():
        summary.value.add(tag=name + "/sparsity", simple_value=value)
    writer.add_summary(summary, result.global_step)
    writer.flush()


def evaluate(args):
    """Evaluates the latest checkpoint once, or each new one forever. Returns the last result."""
    batches_dir, description = cifar10_input.find_data(args.data_dir)
    print(f"data: {description}", flush=True)
    evaluator = Evaluator(batches_dir, args.eval_data, args.num_examples, args.batch_size)
    with evaluator.graph.as_default():  # FileWriter refuses to be created eagerly
        writer = tf.compat.v1.summary.FileWriter(args.eval_dir)
    evaluated = result = None
    try:
        while True:
            latest = tf.train.latest_checkpoint(args.checkpoint_dir)
            if latest is None:
                print(f"No checkpoint file found in {args.checkpoint_dir}", flush=True)
            elif latest != evaluated:
                result = evaluator.evaluate(latest)
                print(format_result(result), flush=True)
                write_summary(writer, result)
                evaluated = latest
            if args.run_once:
                return result
            time.sleep(args.eval_interval_secs)
    finally:
        writer.close()


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.eval_dir, exist_ok=True)
    return 0 if evaluate(args) is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
