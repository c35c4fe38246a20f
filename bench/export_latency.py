"""Size and inference latency of every export of a pruned model, against its dense frozen graph.

    python -m bench.export_latency [--models cifar10,resnet_v1_50] [--repetitions 20]

For each model (the cifar10 example, and tf_slim's resnet_v1_50 at 224x224 built under
`masking_scope` and its own arg_scope), weights freshly initialised (latency and size do not
depend on training) and then:

* `dense .pb`: the frozen graph with every mask at one, stripped: the model as if never pruned;
* `stripped .pb`: 90% of every kernel's weights masked (exact threshold) and folded;
* `dense TFLite`, `sparse TFLite`, `int8 sparse TFLite` (per channel and per tensor),
  `dynamic-range TFLite`: the stripped graph converted by `export.to_tflite` (the dense one
  without the sparse format); int8 is calibrated on 8 inputs drawn like the timed ones;
* `SavedModel`: `export.to_saved_model` of the stripped graph, called through its
  `serving_default` signature;
* `shrunk .pb`: a structured case instead, half of every kernel's output channels masked
  (whole `-1x1` blocks) and removed by `shrink_graph_def` where the graph allows.

Graphs run in a `tf.compat.v1.Session` with the default config, TFLite models in
`tf.lite.Interpreter` with one thread per core (the sparse dynamic-range one without the
XNNPACK delegate, which refuses it). Each export is timed at batch 1 and 32, one
call of each in turn (`common.interleaved_medians`); ratios are to `dense .pb`'s median, and
sizes to its bytes (a SavedModel's: every file in its directory). Each export's outputs are
checked against the stripped graph it came from (the shrunk one's against its masked graph):
the largest difference at batch 32, relative to the largest output.
"""

import argparse
import os
import tempfile

import numpy as np
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import resnet_v1

import model_pruning
from bench import common
from examples.cifar10 import cifar10_pruning
from model_pruning import export
from model_pruning.output_files import directory_size
from model_pruning.shrink import shrink_graph_def
from model_pruning.strip_pruning_vars_lib import strip_pruning_vars_fn

INPUT = "images"
OUTPUT = "logits"
SPARSITY = 0.9
CHANNEL_SPARSITY = 0.5
BATCHES = (1, 32)
CALIBRATION_EXAMPLES = 8
SHRUNK = "shrunk .pb (50% of channels)"
DYNAMIC = "dynamic-range TFLite (no XNNPACK)"


def cifar10_logits(images):
    return cifar10_pruning.inference(images)


def resnet_v1_50_logits(images):
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        logits, _ = resnet_v1.resnet_v1_50(images, num_classes=1000, is_training=False)
    return tf.squeeze(logits, [1, 2])


# name -> (function building the logits from `images`, input side)
MODELS = {"cifar10": (cifar10_logits, 24), "resnet_v1_50": (resnet_v1_50_logits, 224)}


def frozen_graph(build_logits, side, spec, sparsity, seed=0):
    """The model built under `masking_scope`, its masks updated to `sparsity` by `spec`
    (None: left at one), frozen and stripped."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        images = tf.compat.v1.placeholder(tf.float32, [None, side, side, 3], name=INPUT)
        with model_pruning.masking_scope():
            tf.identity(build_logits(images), name=OUTPUT)
        update = None
        if spec is not None:
            update = model_pruning.Pruning(
                spec, global_step=tf.compat.v1.train.get_or_create_global_step(),
                sparsity=tf.constant(sparsity)).mask_update_op()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            if update is not None:
                session.run(update)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [OUTPUT])
    return strip_pruning_vars_fn(frozen, [OUTPUT])


class GraphRunner:
    """Runs a GraphDef's output in a session of its own."""

    def __init__(self, graph_def):
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self._session = tf.compat.v1.Session(graph=graph)

    def __call__(self, images):
        return self._session.run(OUTPUT + ":0", {INPUT + ":0": images})


class TFLiteRunner:
    """Runs a TFLite model, resizing its input to the batch and (for integer inputs)
    quantising it with the input's scale and zero point."""

    def __init__(self, model, default_delegates=True):
        resolver = tf.lite.experimental.OpResolverType
        self._interpreter = tf.lite.Interpreter(
            model_content=model, num_threads=os.cpu_count(),
            experimental_op_resolver_type=resolver.AUTO if default_delegates
            else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._interpreter.allocate_tensors()
        self._batch = None

    def __call__(self, images):
        interpreter = self._interpreter
        if images.shape[0] != self._batch:
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, images.shape)
            interpreter.allocate_tensors()
            self._batch = images.shape[0]
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        if source["dtype"] != np.float32:
            scale, zero_point = source["quantization"]
            images = np.round(images / scale + zero_point).astype(source["dtype"])
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        output = interpreter.get_tensor(target["index"])
        if target["dtype"] != np.float32:
            scale, zero_point = target["quantization"]
            output = (output.astype(np.float32) - zero_point) * scale
        return output


class SavedModelRunner:
    """Calls a SavedModel's `serving_default` signature."""

    def __init__(self, export_dir):
        self._signature = tf.saved_model.load(export_dir).signatures["serving_default"]

    def __call__(self, images):
        outputs = self._signature(**{INPUT: tf.constant(images)})
        return next(iter(outputs.values())).numpy()


def exports(build_logits, side, work_dir, rng):
    """({name: (bytes, runner)} of every export of one model, the runner of the graph each
    should agree with)."""
    dense = frozen_graph(build_logits, side, None, 0.0)
    stripped = frozen_graph(build_logits, side, "threshold_method=exact", SPARSITY)
    channels = frozen_graph(build_logits, side, "threshold_method=exact,block_height=-1",
                            CHANNEL_SPARSITY)
    shrunk, _ = shrink_graph_def(channels, [OUTPUT])
    calibration = [[rng.rand(1, side, side, 3).astype(np.float32)]
                   for _ in range(CALIBRATION_EXAMPLES)]
    tflite = {
        "dense TFLite": export.to_tflite(stripped, [OUTPUT], sparse=False),
        "sparse TFLite": export.to_tflite(stripped, [OUTPUT]),
        "int8 sparse TFLite": export.to_tflite(stripped, [OUTPUT], quantize="int8",
                                               representative_data=lambda: iter(calibration)),
        "int8 sparse TFLite, per-tensor": export.to_tflite(
            stripped, [OUTPUT], quantize="int8", representative_data=lambda: iter(calibration),
            per_channel=False),
        DYNAMIC: export.to_tflite(stripped, [OUTPUT], quantize="dynamic"),
    }
    saved_model_dir = os.path.join(work_dir, "saved_model")
    export.to_saved_model(stripped, [OUTPUT], saved_model_dir)
    result = {name: (graph_def.ByteSize(), GraphRunner(graph_def))
              for name, graph_def in (("dense .pb", dense), ("stripped .pb", stripped))}
    # XNNPACK (the default delegate) refuses a sparse dynamic-range model: see to_tflite.
    result.update({name: (len(model), TFLiteRunner(model, name != DYNAMIC))
                   for name, model in tflite.items()})
    result["SavedModel"] = (directory_size(saved_model_dir), SavedModelRunner(saved_model_dir))
    result[SHRUNK] = (shrunk.ByteSize(), GraphRunner(shrunk))
    references = {name: result["stripped .pb"][1] for name in result if name != "dense .pb"}
    references[SHRUNK] = GraphRunner(channels)
    return result, references


def largest_difference(run, reference, images):
    """max |run - reference| over the outputs, relative to max |reference|."""
    expected = reference(images)
    return np.abs(run(images) - expected).max() / max(np.abs(expected).max(), 1e-30)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"Comma-separated, of {', '.join(MODELS)}.")
    parser.add_argument("--repetitions", type=int, default=20,
                        help="Timed calls of each export per batch size.")
    args = parser.parse_args(argv)
    print(common.machine_line())
    rng = np.random.RandomState(0)
    for model in args.models.split(","):
        build_logits, side = MODELS[model]
        with tempfile.TemporaryDirectory() as work_dir:
            runners, references = exports(build_logits, side, work_dir, rng)
            images = rng.rand(BATCHES[-1], side, side, 3).astype(np.float32)
            differences = {name: largest_difference(runners[name][1], reference, images)
                           for name, reference in references.items()}
            medians = {}
            for batch in BATCHES:
                images = rng.rand(batch, side, side, 3).astype(np.float32)
                medians[batch] = common.interleaved_medians(
                    {name: (lambda run=run: run(images)) for name, (_, run) in runners.items()},
                    args.repetitions)
        print(f"\n{model} ({side}x{side}), {args.repetitions} calls of each per batch size")
        dense_bytes = runners["dense .pb"][0]
        rows = []
        for name, (size, _) in runners.items():
            row = [name, f"{differences[name]:.1e}" if name in differences else "",
                   f"{size:,}", f"{size / dense_bytes:.3f}x"]
            for batch in BATCHES:
                seconds = medians[batch][name]
                row += [f"{seconds * 1e3:.2f} ms",
                        f"{seconds / medians[batch]['dense .pb']:.2f}x"]
            rows.append(row)
        header = ["export", "max output difference, relative", "bytes", "/ dense .pb"]
        for batch in BATCHES:
            header += [f"batch {batch}", f"/ dense .pb (batch {batch})"]
        common.print_table(header, rows)


if __name__ == "__main__":
    main()
