"""Per-step cost of pruning on a small, fast model: LeNet-300-100 at batch 100.

    python -m bench.step_overhead [--windows 30] [--window_steps 100]

On a model whose step takes a few milliseconds, what pruning adds to every step shows. Each
variant trains LeNet-300-100 (784-300-100-10, relu, momentum SGD) on one fixed random batch in
a session of its own, with the last mask update recent enough that none is due while timed:

* `dense`, `masked`: the model without and with `apply_mask` on its three kernels;
* `update, own run`: `masked`, then `conditional_mask_update_op()` in a second run per step,
  as contrib's README loop does;
* `update, same run`: the update op built under `tf.control_dependencies([train_op])` and run
  alone, so one run per step does both;
* `dense, MonitoredSession` and `ModelPruningHook`: the dense model in a MonitoredSession,
  and the masked one with `ModelPruningHook` (which runs nothing of its own when no update
  can be due).

Variants take turns in windows of `--window_steps` steps (the order rotates); it prints the
median window per step and its ratio to `dense` (the hook's also to `dense,
MonitoredSession`, the same loop without pruning).
"""

import argparse

import numpy as np
import tensorflow as tf

from bench import common
from model_pruning import hooks, pruning

BATCH = 100
LAYERS = [(784, 300), (300, 100), (100, 10)]
# No update is due while timed: the last one ran at the first step, the next is far away.
HPARAMS = "pruning_frequency=1000000,target_sparsity=0.9,sparsity_function_end_step=100"


def lenet_300_100(masked):
    """(train op, global step) of LeNet-300-100 on one fixed random batch."""
    global_step = tf.compat.v1.train.get_or_create_global_step()
    rng = np.random.RandomState(0)
    net = tf.constant(rng.rand(BATCH, 784).astype(np.float32))
    labels = tf.constant(rng.randint(0, 10, BATCH).astype(np.int32))
    for i, (inputs, outputs) in enumerate(LAYERS):
        with tf.compat.v1.variable_scope(f"fc{i + 1}"):
            weights = tf.compat.v1.get_variable("weights", [inputs, outputs])
            biases = tf.compat.v1.get_variable("biases", [outputs],
                                               initializer=tf.compat.v1.zeros_initializer())
            if masked:
                weights = pruning.apply_mask(weights, f"fc{i + 1}")
            net = tf.matmul(net, weights) + biases
            if i < len(LAYERS) - 1:
                net = tf.nn.relu(net)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=net))
    optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
    return optimizer.minimize(loss, global_step=global_step), global_step


def session_variant(masked, update):
    """A step function on a plain session: update None, 'own run' or 'same run'."""
    graph = tf.Graph()
    with graph.as_default():
        train_op, global_step = lenet_300_100(masked)
        fetches, second = [train_op], None
        if update:
            spec = pruning.get_pruning_hparams().parse(HPARAMS)
            if update == "own run":
                second = pruning.Pruning(spec, global_step=global_step).conditional_mask_update_op()
            else:
                with tf.control_dependencies([train_op]):
                    fetches = [pruning.Pruning(
                        spec, global_step=global_step).conditional_mask_update_op()]
        init = [tf.compat.v1.global_variables_initializer(),
                tf.compat.v1.local_variables_initializer()]
    session = tf.compat.v1.Session(graph=graph, config=common.session_config())
    session.run(init)
    if second is not None:
        session.run(second)  # the first due update: none is due from here on
    else:
        session.run(fetches)

    def step():
        session.run(fetches)
        if second is not None:
            session.run(second)
    return step


def monitored_variant(with_hook):
    """A step function on a MonitoredSession, with ModelPruningHook on the masked model."""
    graph = tf.Graph()
    with graph.as_default():
        train_op, _ = lenet_300_100(masked=with_hook)
        session = tf.compat.v1.train.MonitoredSession(
            hooks=[hooks.ModelPruningHook(HPARAMS)] if with_hook else [])
    session.run(train_op)  # the hook's first update
    return lambda: session.run(train_op)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--window_steps", type=int, default=100)
    args = parser.parse_args()
    steps = {
        "dense": session_variant(False, None),
        "masked": session_variant(True, None),
        "update, own run": session_variant(True, "own run"),
        "update, same run": session_variant(True, "same run"),
        "dense, MonitoredSession": monitored_variant(False),
        "ModelPruningHook": monitored_variant(True),
    }

    def window(step):
        return lambda: [step() for _ in range(args.window_steps)]

    medians = common.interleaved_medians({name: window(step) for name, step in steps.items()},
                                         args.windows)
    per_step = {name: median / args.window_steps for name, median in medians.items()}
    print(common.machine_line())
    print(f"{args.windows} windows of {args.window_steps} steps per variant, batch {BATCH}")
    rows = [[name, f"{seconds * 1e3:.3f} ms", f"{seconds / per_step['dense']:.3f}x",
             f"{seconds / per_step['dense, MonitoredSession']:.3f}x"
             if name == "ModelPruningHook" else ""]
            for name, seconds in per_step.items()]
    common.print_table(["variant", "step", "/ dense", "/ dense, MonitoredSession"], rows)


if __name__ == "__main__":
    main()
