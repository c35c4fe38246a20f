"""Speed of structured pruning: nets with half of every channel group removed, shrunk, against
their dense frozen graphs.

    python -m bench.structured [--models resnet_v1_50,inception_v1,mobilenet_v1] [--repetitions 10]

Each net is built at 224x224 for inference (`is_training=False`) under `masking_scope` and
its own arg_scope, freshly initialised (speed does not depend on training), with random batch
norm statistics. `channel_groups=true` masks half of the channels of every group
(`Pruning(..., sparsity=0.5).mask_update_op()`); the graph is frozen, stripped and shrunk by
`shrink_graph_def`. The dense graph is the same net frozen with every mask at one, stripped.
It prints the FLOPs of the conv and fc layers and the parameters before and after, the
kernels that channel_groups left dense and the layers shrink kept dense, with the reasons,
the largest output difference between the shrunk and the masked graph, and the median call
of each graph at batch 1 and 32, interleaved in one process (`common.interleaved_medians`),
as dense / shrunk.
"""

import argparse
import warnings

import numpy as np
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import inception, resnet_v1

import model_pruning
from bench import common, mobilenet_v1
from bench.export_latency import GraphRunner
from model_pruning.shrink import shrink_graph_def
from model_pruning.strip_pruning_vars_lib import strip_pruning_vars_fn

INPUT = "images"
OUTPUT = "logits"
SIDE = 224
BATCHES = (1, 32)
CHANNEL_SPARSITY = 0.5


def resnet_v1_50(images):
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        return resnet_v1.resnet_v1_50(images, num_classes=1000, is_training=False)[0]


def inception_v1(images):
    with slim.arg_scope(inception.inception_v1_arg_scope()):
        return inception.inception_v1(images, num_classes=1000, is_training=False)[0]


def mobilenet(images):
    with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
        return mobilenet_v1.mobilenet_v1(images, num_classes=1000, is_training=False)[0]


MODELS = {"resnet_v1_50": resnet_v1_50, "inception_v1": inception_v1,
          "mobilenet_v1": mobilenet}


def stripped_graphs(build_logits, seed=0):
    """(dense, masked): the net frozen and stripped with every mask at one, and with half of
    every channel group masked; prints which kernels channel_groups left dense and why."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        images = tf.compat.v1.placeholder(tf.float32, [None, SIDE, SIDE, 3], name=INPUT)
        with model_pruning.masking_scope():
            tf.reshape(build_logits(images), [-1, 1000], name=OUTPUT)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # which kernels channel_groups leaves dense
            update = model_pruning.Pruning(
                "channel_groups=true", global_step=tf.compat.v1.train.get_or_create_global_step(),
                sparsity=tf.constant(CHANNEL_SPARSITY)).mask_update_op()
        rng = np.random.RandomState(seed)
        statistics = [v.assign(rng.uniform(0.5, 1.5, v.shape) if "variance" in v.op.name
                               else rng.uniform(-0.2, 0.2, v.shape))
                      for v in tf.compat.v1.global_variables() if "moving_" in v.op.name]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(statistics)
            frozen = [tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [OUTPUT])]
            session.run(update)
            frozen.append(tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [OUTPUT]))
    for warning in caught:
        if "channel_groups" in str(warning.message):
            print(warning.message)
    return [strip_pruning_vars_fn(graph_def, [OUTPUT]) for graph_def in frozen]


def parameters(graph_def):
    """Floats in the graph's constants (kernels, biases, batch-norm parameters)."""
    return sum(int(np.prod([d.size for d in node.attr["value"].tensor.tensor_shape.dim]))
               for node in graph_def.node if node.op == "Const"
               and node.attr["value"].tensor.dtype == tf.float32.as_datatype_enum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"Comma-separated, of {', '.join(MODELS)}.")
    parser.add_argument("--repetitions", type=int, default=10,
                        help="Timed calls of each graph per batch size.")
    args = parser.parse_args(argv)
    print(common.machine_line())
    rng = np.random.RandomState(1)
    rows = []
    for model in args.models.split(","):
        dense, masked = stripped_graphs(MODELS[model])
        shrunk, layers = shrink_graph_def(masked, [OUTPUT])
        flops = [sum(layer.flops_before or 0 for layer in layers),
                 sum(layer.flops_after or 0 for layer in layers)]
        kept_dense = [f"{layer.name}: {layer.note}" for layer in layers
                      if "kept dense" in layer.note]
        runners = {"dense": GraphRunner(dense), "masked": GraphRunner(masked),
                   "shrunk": GraphRunner(shrunk)}
        images = rng.rand(BATCHES[-1], SIDE, SIDE, 3).astype(np.float32)
        expected = runners["masked"](images)
        difference = np.abs(runners["shrunk"](images) - expected).max() / np.abs(expected).max()
        del runners["masked"]
        speedups = []
        for batch in BATCHES:
            batch_images = images[:batch]
            medians = common.interleaved_medians(
                {name: (lambda run=run: run(batch_images)) for name, run in runners.items()},
                args.repetitions)
            speedups.append(f"{medians['dense'] * 1e3:.1f} / {medians['shrunk'] * 1e3:.1f} ms "
                            f"= {medians['dense'] / medians['shrunk']:.2f}x")
        rows.append([model, f"{flops[0] / 1e9:.2f}G -> {flops[1] / 1e9:.2f}G "
                            f"({flops[0] / flops[1]:.2f}x)",
                     f"{parameters(dense) / 1e6:.1f}M -> {parameters(shrunk) / 1e6:.1f}M",
                     f"{difference:.1e}", *speedups])
        print(f"{model}: shrink kept {len(kept_dense)} layers dense"
              + "".join(f"\n  {line}" for line in kept_dense), flush=True)
    print(f"\n{args.repetitions} calls of each graph per batch size, {SIDE}x{SIDE} inputs, "
          f"{CHANNEL_SPARSITY:.0%} of every channel group removed")
    common.print_table(["net", "conv + fc FLOPs per image", "parameters",
                        "max output difference, relative"]
                       + [f"dense / shrunk, batch {batch}" for batch in BATCHES], rows)


if __name__ == "__main__":
    main()
