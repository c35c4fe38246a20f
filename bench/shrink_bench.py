"""Inference time of the cifar10 example model: dense frozen graphs against the shrunk graph.

    python -m bench.shrink_bench [--repetitions 30]

Half of the output filters of conv1 and conv2 and half of the output neurons of local3 and
local4 are pruned (whole -1x1 blocks, exact threshold) in a freshly initialised model. The
model is then frozen (`frozen`: masks multiplied at run time), stripped (`stripped`: mask *
weight folded, zeros stored densely) and shrunk (`shrunk`). It prints the shrink report, checks
that the three graphs agree, and times them in one process, one call of each in turn, at batch
1 and 128; the ratios of medians are what matters on a shared machine.
"""

import argparse

import numpy as np
import tensorflow as tf

import model_pruning
from bench import common
from examples.cifar10 import cifar10_pruning
from model_pruning.shrink import shrink_graph_def
from model_pruning.strip_pruning_vars_lib import strip_pruning_vars_fn

INPUT = "images"
OUTPUT = "logits"
PRUNED_LAYERS = ("conv1", "conv2", "local3", "local4")
PRUNING_SPEC = ("threshold_method=exact,do_not_prune=[softmax_linear],block_dims_map=["
                + ",".join(f"{layer}/:-1x1" for layer in PRUNED_LAYERS) + "]")


def pruned_cifar10(seed=0):
    """The cifar10 model with 50% of the filters / neurons of PRUNED_LAYERS masked.

    Returns (frozen GraphDef, stripped GraphDef); the input is `images:0` [N, 24, 24, 3] and
    the output `logits:0`.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        images = tf.compat.v1.placeholder(tf.float32, [None, 24, 24, 3], name=INPUT)
        tf.identity(cifar10_pruning.inference(images), name=OUTPUT)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        hparams = model_pruning.get_pruning_hparams().parse(PRUNING_SPEC)
        update = model_pruning.Pruning(hparams, global_step=global_step,
                                       sparsity=tf.constant(0.5)).mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [OUTPUT])
    return frozen, strip_pruning_vars_fn(frozen, [OUTPUT])


def session_for(graph_def):
    """A session on `graph_def` with the default config, as a user would run it."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return tf.compat.v1.Session(graph=graph)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=30,
                        help="Timed calls of each graph per batch size (batch 1 runs 10x more).")
    args = parser.parse_args(argv)

    frozen, stripped = pruned_cifar10()
    shrunk, layers = shrink_graph_def(stripped, [OUTPUT])
    for layer in layers:
        print(f"{layer.name}: {layer.shape_before} -> {layer.shape_after}, "
              f"FLOPs {layer.flops_before:,} -> {layer.flops_after:,} ({layer.note})")
    total_before = sum(layer.flops_before for layer in layers)
    total_after = sum(layer.flops_after for layer in layers)
    print(f"conv + matmul FLOPs per example: {total_before:,} -> {total_after:,} "
          f"({total_before / total_after:.2f}x fewer)")

    sessions = {"frozen": session_for(frozen), "stripped": session_for(stripped),
                "shrunk": session_for(shrunk)}
    rng = np.random.RandomState(1)
    for batch, repetitions in ((1, 10 * args.repetitions), (128, args.repetitions)):
        feed = {INPUT + ":0": rng.rand(batch, 24, 24, 3).astype(np.float32)}
        outputs = {name: session.run(OUTPUT + ":0", feed) for name, session in sessions.items()}
        error = max(np.abs(outputs[name] - outputs["shrunk"]).max()
                    for name in ("frozen", "stripped"))
        medians = common.interleaved_medians(
            {name: (lambda s=session: s.run(OUTPUT + ":0", feed))
             for name, session in sessions.items()}, repetitions)
        print(f"batch {batch}: " + ", ".join(f"{name} {seconds * 1e3:.3f} ms"
                                             for name, seconds in medians.items())
              + f"; stripped / shrunk = {medians['stripped'] / medians['shrunk']:.2f}x, "
              f"frozen / shrunk = {medians['frozen'] / medians['shrunk']:.2f}x; "
              f"max |output difference| {error:.1e}")
    for session in sessions.values():
        session.close()


if __name__ == "__main__":
    main()
