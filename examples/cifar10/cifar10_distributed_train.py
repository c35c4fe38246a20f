"""Trains the cifar10 example with pruning on TensorFlow's parameter-server runtime.

Start one process per task, on each host (the same flags everywhere but --job_name and
--task_index):

    python -m examples.cifar10.cifar10_distributed_train \\
        --ps_hosts=ps0:2222,ps1:2222 --worker_hosts=worker0:2222,worker1:2222 \\
        --job_name=worker --task_index=0 --train_dir=/shared/cifar10_train \\
        --pruning_hparams=target_sparsity=0.9,sparsity_function_end_step=20000

`replica_device_setter` places every variable (weights, masks, thresholds, the global step) on
the ps tasks, and --partitioned_scope's weight and mask are split across all of them. Workers
train asynchronously; worker 0, the chief, initialises, writes checkpoints and summaries and
runs the conditional mask update after each of its steps. ps tasks serve until killed.
"""

import argparse
import sys

import tensorflow as tf

from examples.cifar10 import cifar10_input, cifar10_pruning
from model_pruning import pruning


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ps_hosts", required=True, help="Comma-separated host:port of ps tasks.")
    parser.add_argument("--worker_hosts", required=True,
                        help="Comma-separated host:port of worker tasks; the first is the chief.")
    parser.add_argument("--job_name", required=True, choices=("ps", "worker"))
    parser.add_argument("--task_index", type=int, required=True)
    parser.add_argument("--train_dir", default="/tmp/cifar10_distributed_train",
                        help="The chief's checkpoints and summaries; resumed if present.")
    parser.add_argument("--data_dir", default="/tmp/cifar10_data")
    parser.add_argument("--pruning_hparams", default="")
    parser.add_argument("--max_steps", type=int, default=1000000)
    parser.add_argument("--batch_size", type=int, default=cifar10_pruning.BATCH_SIZE)
    parser.add_argument("--learning_rate", type=float,
                        default=cifar10_pruning.INITIAL_LEARNING_RATE)
    parser.add_argument("--save_checkpoint_steps", type=int, default=1000)
    parser.add_argument("--partitioned_scope", default="local3",
                        help="Scope whose weights (and mask) are split across the ps tasks.")
    return parser.parse_args(argv)


def partitioning_getter(scope_name, num_shards):
    """A custom getter splitting `<scope_name>/weights` and its mask into `num_shards` parts."""
    partitioner = tf.compat.v1.fixed_size_partitioner(num_shards)

    def getter(getter, name, *args, **kwargs):
        if name in (f"{scope_name}/weights", f"{scope_name}/mask"):
            kwargs["partitioner"] = partitioner
        return getter(name, *args, **kwargs)

    return getter


def print_placement():
    """Prints where each mask (or mask partition) lives, for the log and the tests."""
    for mask in pruning.get_masks():
        for part in (mask if hasattr(mask, "_get_variable_list") else [mask]):
            print(f"placement: {part.op.name} on {part.device}", flush=True)


def train(args):
    ps_hosts = args.ps_hosts.split(",")
    cluster = tf.train.ClusterSpec({"ps": ps_hosts, "worker": args.worker_hosts.split(",")})
    server = tf.distribute.Server(cluster, job_name=args.job_name, task_index=args.task_index)
    if args.job_name == "ps":
        server.join()
        return
    is_chief = args.task_index == 0
    batches_dir, description = cifar10_input.find_data(args.data_dir)
    print(f"data: {description}", flush=True)
    worker_device = f"/job:worker/task:{args.task_index}"
    with tf.Graph().as_default():
        # TF2's tf.device refuses device functions; the compat.v1 form takes them.
        with tf.compat.v1.device(tf.compat.v1.train.replica_device_setter(
                worker_device=worker_device, cluster=cluster)):
            global_step = tf.compat.v1.train.get_or_create_global_step()
            images, labels = cifar10_input.distorted_inputs(batches_dir, args.batch_size)
            with tf.compat.v1.variable_scope(
                    tf.compat.v1.get_variable_scope(),
                    custom_getter=partitioning_getter(args.partitioned_scope, len(ps_hosts))):
                logits = cifar10_pruning.inference(images)
            total_loss = cifar10_pruning.loss(logits, labels)
            train_op = cifar10_pruning.train(
                total_loss, global_step, batch_size=args.batch_size,
                initial_learning_rate=args.learning_rate,
                examples_per_epoch=cifar10_input.count_records(batches_dir, "train"))
            pruning_obj = pruning.Pruning(
                pruning.get_pruning_hparams().parse(args.pruning_hparams),
                global_step=global_step)
            mask_update_op = pruning_obj.conditional_mask_update_op()
            pruning_obj.add_pruning_summaries()
        if is_chief:
            print_placement()

        def step_fn(step_context):
            step_context.run_with_hooks(train_op)
            if is_chief:
                step_context.session.run(mask_update_op)

        # Each worker talks only to the ps tasks and itself.
        config = tf.compat.v1.ConfigProto(device_filters=["/job:ps", worker_device])
        with tf.compat.v1.train.MonitoredTrainingSession(
                master=server.target, is_chief=is_chief,
                checkpoint_dir=args.train_dir if is_chief else None,
                save_checkpoint_steps=args.save_checkpoint_steps, config=config,
                hooks=[tf.compat.v1.train.StopAtStepHook(last_step=args.max_steps)]) as session:
            while not session.should_stop():
                session.run_step_fn(step_fn)
    print(f"worker {args.task_index} done", flush=True)


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
