"""Trains the CIFAR-10 example with pruning; a run resumes from the checkpoint in --train_dir.

    python -m examples.cifar10.cifar10_train --train_dir=/tmp/cifar10_train \\
        --pruning_hparams=name=cifar10_pruning,begin_pruning_step=10000,end_pruning_step=100000,\\
target_sparsity=0.9,sparsity_function_begin_step=10000,sparsity_function_end_step=100000

Each step runs the training op, then the conditional mask update. Every --log_frequency steps
it prints the loss, examples/sec and the fraction of masked weights that are zero. Contrib
deleted --train_dir first; here a run continues from the latest checkpoint there (until
--max_steps), so an interrupted training is not lost. Without CIFAR-10 files in --data_dir the
example trains on scikit-learn's digits (see `cifar10_input.find_data`).
"""

import argparse
import os
import sys
import time

import tensorflow as tf

from examples.cifar10 import cifar10_input, cifar10_pruning, flags
from model_pruning import pruning


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_dir", default="/tmp/cifar10_train",
                        help="Checkpoints and summaries; an existing checkpoint is resumed.")
    flags.add_data_dir_flag(parser)
    parser.add_argument("--pruning_hparams", default="",
                        help="Comma-separated name=value pruning hparams; '' uses the defaults.")
    parser.add_argument("--max_steps", type=int, default=1000000,
                        help="Global step at which training stops.")
    parser.add_argument("--batch_size", type=int, default=cifar10_pruning.BATCH_SIZE)
    parser.add_argument("--learning_rate", type=float,
                        default=cifar10_pruning.INITIAL_LEARNING_RATE,
                        help="Initial learning rate of gradient descent.")
    parser.add_argument("--num_epochs_per_decay", type=float,
                        default=cifar10_pruning.NUM_EPOCHS_PER_DECAY,
                        help="Epochs between two 10x drops of the learning rate.")
    parser.add_argument("--log_frequency", type=int, default=10,
                        help="Print progress every this many steps.")
    parser.add_argument("--save_checkpoint_steps", type=int, default=None,
                        help="Checkpoint every this many steps (default: every 10 minutes).")
    parser.add_argument("--seed", type=int, default=None,
                        help="Graph-level random seed, for repeatable runs.")
    flags.add_bool_flag(parser, "log_device_placement", "Log the device of every op.")
    return parser.parse_args(argv)


class _LoggerHook(tf.compat.v1.train.SessionRunHook):
    """Prints step, loss, examples/sec and weight sparsity every `log_frequency` steps."""

    def __init__(self, loss, sparsity, global_step, batch_size, log_frequency):
        self._loss = loss
        self._sparsity = sparsity
        self._global_step = global_step
        self._batch_size = batch_size
        self._log_frequency = log_frequency

    def after_create_session(self, session, coord):
        self._step = session.run(self._global_step)
        self._start_time = time.time()

    def before_run(self, run_context):
        if (self._step + 1) % self._log_frequency:
            return None
        return tf.compat.v1.train.SessionRunArgs([self._loss, self._sparsity])

    def after_run(self, run_context, run_values):
        self._step += 1
        if run_values.results is None:
            return
        loss_value, sparsity_value = run_values.results
        now = time.time()
        examples_per_sec = self._log_frequency * self._batch_size / (now - self._start_time)
        self._start_time = now
        print(f"step {self._step}: loss = {loss_value:.3f}, {examples_per_sec:.1f} examples/sec, "
              f"weight sparsity = {sparsity_value:.3f}", flush=True)


def train(args):
    """Builds the graph and trains until global step --max_steps."""
    batches_dir, description = cifar10_input.find_data(args.data_dir)
    print(f"data: {description}", flush=True)
    latest = tf.train.latest_checkpoint(args.train_dir)
    if latest:
        print(f"resuming from {latest}", flush=True)
    with tf.Graph().as_default():
        if args.seed is not None:
            tf.compat.v1.set_random_seed(args.seed)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with tf.device("/cpu:0"):
            images, labels = cifar10_input.distorted_inputs(batches_dir, args.batch_size)
        logits = cifar10_pruning.inference(images)
        total_loss = cifar10_pruning.loss(logits, labels)
        train_op = cifar10_pruning.train(
            total_loss, global_step, batch_size=args.batch_size,
            initial_learning_rate=args.learning_rate,
            examples_per_epoch=cifar10_input.count_records(batches_dir, "train"),
            num_epochs_per_decay=args.num_epochs_per_decay)

        hparams = pruning.get_pruning_hparams().parse(args.pruning_hparams)
        pruning_obj = pruning.Pruning(hparams, global_step=global_step)
        mask_update_op = pruning_obj.conditional_mask_update_op()
        pruning_obj.add_pruning_summaries()

        hooks = [
            tf.compat.v1.train.StopAtStepHook(last_step=args.max_steps),
            tf.compat.v1.train.NanTensorHook(total_loss),
            _LoggerHook(total_loss, pruning.get_overall_weight_sparsity(), global_step, args.batch_size,
                        args.log_frequency),
        ]
        config = tf.compat.v1.ConfigProto(log_device_placement=args.log_device_placement)

        def step_fn(step_context):
            step_context.run_with_hooks(train_op)
            # On the raw session: the stop hook may already have ended the hooked session.
            step_context.session.run(mask_update_op)

        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=args.train_dir, hooks=hooks, config=config,
                save_checkpoint_steps=args.save_checkpoint_steps,
                save_checkpoint_secs=None if args.save_checkpoint_steps else 600) as session:
            while not session.should_stop():
                session.run_step_fn(step_fn)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.train_dir, exist_ok=True)
    train(args)


if __name__ == "__main__":
    main(sys.argv[1:])
