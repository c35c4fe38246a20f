"""Command line tool: freeze a pruned checkpoint, fold its masks and write the smaller model.

    strip_pruning_vars --checkpoint_dir=/tmp/train --output_node_names=logits \\
        [--checkpoint=PREFIX] [--input_node_names=IteratorGetNext:0 --input_shapes=-1,24,24,3] \\
        [--output_dir=/tmp] [--filename=pruning_stripped.pb] \\
        [--output_format=pb|pbtxt|tflite|saved_model] [--float16] [--no_sparse] \\
        [--overwrite] [--shrink [--channel_multiple=8]] \\
        [--quantize=dynamic|int8 [--per_tensor] [--representative_data=examples.npz]] \\
        [--m_by_n=2:4]

It prints each masked weight's shape, nonzeros and sparsity, and the sizes of the frozen graph
and of what it writes, raw and gzip-compressed (a stripped GraphDef stores zeros densely, so
only compression or `--output_format=tflite` makes the file itself smaller). With --shrink,
output channels whose weights are all masked are removed from the layers
(`shrink.shrink_graph_def`), and each layer's kernel shape and FLOPs before and after are
printed. A training checkpoint that reads its input through tf.data or a queue needs
--input_node_names: the named tensors become placeholders and the input pipeline is left out.
`--output_format=saved_model` writes a SavedModel directory (`export.to_saved_model`);
`--quantize` quantizes a TFLite model (`export.to_tflite`), int8 on the examples of
--representative_data: a .npz of one array per input node, keyed by its name, or a .npy for a
model of one input; the first axis counts the examples. `--m_by_n=2:4` adds a column saying
whether each masked weight keeps 2 of every 4 along its input axis.

Progress lines go to stderr. Errors are one line (`strip_pruning_vars: error: ...`), and what
can be checked before the slow work is checked first: the flags, the output file and the
checkpoint's files; this module imports TensorFlow only after those checks. The graph is
imported into a fresh tf.Graph before it is written, so a graph that would not load is never
written; the output is written atomically, with the permissions the umask gives, and an
existing file is kept unless --overwrite is given.
"""

import argparse
import contextlib
import gzip
import logging
import os
import sys
import warnings
import zipfile

import numpy as np

from model_pruning.cli import (OneLineErrorParser, parse_m_by_n, shape_text, sparsity_table,
                               table)
from model_pruning.output_files import OutputDirectory, OutputFile, directory_size

OUTPUT_FORMATS = ("pb", "pbtxt", "tflite", "saved_model")
QUANTIZE_MODES = ("dynamic", "int8")  # those of export.to_tflite
# Not __name__: run with -m, this module is __main__, outside the package's loggers.
_LOG = logging.getLogger("model_pruning.strip_pruning_vars")


class _MisspelledFlag(argparse.Action):
    """A flag this tool does not have but contrib's README used: an error naming the right one."""

    def __init__(self, option_strings, dest, hint, **kwargs):
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"unrecognized argument {option_string}: {self.hint}")


def _dimension(text):
    text = text.strip()
    if text == "-1":
        return None
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def parse_shapes(text):
    """`1,24,24,3:-1,10` -> [[1, 24, 24, 3], [None, 10]]: one shape per input, -1 for a free
    dimension, an empty shape for a scalar."""
    try:
        return [[_dimension(dim) for dim in part.split(",")] if part.strip() else []
                for part in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of shapes: give each input's sizes comma-separated, -1 "
            "for a free one, and a colon between inputs (e.g. -1,24,24,3:-1,10)") from None


def _parser():
    parser = OneLineErrorParser(
        prog="strip_pruning_vars",
        allow_abbrev=False,  # a flag is spelled out or it is an error
        description="Freeze a pruned checkpoint, replace every mask * weight by one constant "
                    "and write the model as a GraphDef or a sparse TFLite file.")
    parser.add_argument("--checkpoint_dir", required=True,
                        help="Directory of checkpoints; the latest one is used.")
    parser.add_argument("--checkpoint", default=None,
                        help="Checkpoint prefix to use instead of the latest one "
                             "(e.g. /tmp/train/model.ckpt-1000, or model.ckpt-1000 inside "
                             "--checkpoint_dir).")
    parser.add_argument("--checkpoint_path", action=_MisspelledFlag,
                        hint="did you mean --checkpoint_dir or --checkpoint?")
    parser.add_argument("--output_node_names", required=True,
                        help="Comma-separated names of the output nodes.")
    parser.add_argument("--input_node_names", default=None,
                        help="Comma-separated tensors that become the model's placeholder "
                             "inputs, `node` or `node:index` (for a training checkpoint that "
                             "reads a tf.data iterator: IteratorGetNext:0); what only they "
                             "needed, the input pipeline, is left out.")
    parser.add_argument("--input_shapes", type=parse_shapes, default=None,
                        help="Shapes of the --input_node_names placeholders: sizes "
                             "comma-separated, -1 for a free one, a colon between inputs "
                             "(e.g. --input_shapes=-1,24,24,3). Default: each tensor's shape "
                             "in the graph.")
    parser.add_argument("--output_dir", default="/tmp", help="Output directory.")
    parser.add_argument("--filename", default=None,
                        help="Output file name (default pruning_stripped.pb, .pbtxt or "
                             ".tflite after --output_format; for saved_model, the directory, "
                             "default pruning_stripped_saved_model; TF Serving wants a "
                             "version number such as 1).")
    parser.add_argument("--output_format", choices=OUTPUT_FORMATS, default="pb",
                        help="pb: binary GraphDef; pbtxt: text GraphDef; tflite: sparse TFLite; "
                             "saved_model: a SavedModel directory with a serving_default "
                             "signature from the input to the output nodes.")
    parser.add_argument("--float16", action="store_true",
                        help="With --output_format=tflite: store the weights as float16.")
    parser.add_argument("--no_sparse", action="store_true",
                        help="With --output_format=tflite: store the weights densely, not in "
                             "TFLite's sparse format.")
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default=None,
                        help="With --output_format=tflite: dynamic: int8 weights, float "
                             "compute; int8: int8 weights and activations, float32 inputs and "
                             "outputs, calibrated on --representative_data.")
    parser.add_argument("--per_tensor", action="store_true",
                        help="With --quantize: one scale per weight instead of one per output "
                             "channel, a smaller file.")
    parser.add_argument("--representative_data", default=None, metavar="FILE.npz|FILE.npy",
                        help="With --quantize=int8: examples of the inputs, the first axis "
                             "counting them; a .npz holds one array per input node, keyed by "
                             "its name, a .npy the one input's.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing output file (otherwise it is an error).")
    parser.add_argument("--shrink", action="store_true",
                        help="Remove the output filters and neurons whose weights are all "
                             "masked, and the matching inputs of the next layer.")
    parser.add_argument("--channel_multiple", type=int, default=1, metavar="N",
                        help="With --shrink: keep a multiple of N channels in each channel "
                             "group (e.g. 8, for shapes that suit SIMD kernels).")
    parser.add_argument("--m_by_n", type=parse_m_by_n, default=None,
                        help="N:M (e.g. 2:4): add a column saying whether each masked weight "
                             "keeps at most N nonzeros in every group of M consecutive weights "
                             "along its input axis.")
    return parser


def gzip_size(data):
    """Size of `data` after gzip compression (what a download or a zipped app would cost).

    Level 1: on a stripped graph's weights, level 6 takes 3x as long for a file a quarter
    smaller, and the report took 70% of a 46M-weight strip.
    """
    return len(gzip.compress(data, compresslevel=1, mtime=0))


def layer_table(weights, m_by_n=None):
    """One line per masked weight, from (name, folded value) pairs; with `m_by_n` (N, M), a
    column saying whether each keeps at most N nonzeros in every group of M along its input
    axis (`pruning_utils.m_by_n_violations`)."""
    if not weights:
        return ["No masked weights were found: the graph was only frozen and reduced to the "
                "outputs' sub-graph."]
    from model_pruning import pruning_utils

    return sparsity_table([(name, value.shape, int(np.count_nonzero(value)), value.size,
                            None if m_by_n is None
                            else pruning_utils.m_by_n_violations(value, *m_by_n))
                           for name, value in weights], m_by_n)


def _flops_text(flops):
    return "?" if flops is None else f"{flops:,}"


def shrink_table(layers):
    """One line per conv or fc layer of `shrink_graph_def`'s report, then the FLOPs totals."""
    if not layers:
        return ["No Conv2D or MatMul with a constant kernel: nothing to shrink."]
    rows = [(layer.name, shape_text(layer.shape_before),
             shape_text(layer.shape_after), _flops_text(layer.flops_before),
             _flops_text(layer.flops_after), layer.note) for layer in layers]
    lines = table(("layer", "kernel before", "kernel after", "FLOPs before", "FLOPs after",
                   "note"), rows)
    totals = [sum(layer.flops_before for layer in layers if layer.flops_before is not None),
              sum(layer.flops_after for layer in layers if layer.flops_after is not None)]
    lines.append(f"FLOPs per example of these layers: {totals[0]:,} before, {totals[1]:,} after "
                 f"({totals[0] / max(totals[1], 1):.2f}x fewer)")
    return lines


def _size_line(label, data):
    return f"{label}: {len(data):,} bytes, {gzip_size(data):,} bytes gzip-compressed"


def strip_pruning_vars(checkpoint_dir, output_node_names, output_dir, filename,
                       checkpoint=None, output_format="pb", float16=False, overwrite=False,
                       shrink=False, input_node_names=None, input_shapes=None, m_by_n=None,
                       quantize=None, representative_data=None, per_channel=True, sparse=True,
                       channel_multiple=1):
    """Freezes, strips (and with `shrink`, shrinks) and writes a checkpoint's model; prints
    the layer tables and sizes. `input_node_names` and `input_shapes` are those of
    `graph_def_from_checkpoint`; `m_by_n` (N, M) adds each weight's N:M check to the table.
    `sparse`, `quantize`, `representative_data` and `per_channel` are those of
    `export.to_tflite`; with
    output_format="saved_model" the output is a directory.

    Returns:
      The path of the written file.
    Raises:
      ValueError: on a missing or unreadable checkpoint, a missing or empty node list, or a
        graph that would not load.
      OSError: if the output cannot be written; FileExistsError if it exists and
        `overwrite` is False.
    """
    output_type = OutputDirectory if output_format == "saved_model" else OutputFile
    with output_type(os.path.join(output_dir, filename), overwrite) as output:
        # Imported once the output is known to be writable: TensorFlow takes seconds to load.
        from google.protobuf import text_format

        from model_pruning import export, fold, freeze, graphdef, shrink as shrinking

        frozen = freeze.graph_def_from_checkpoint(checkpoint_dir, output_node_names, checkpoint,
                                                  input_node_names, input_shapes)
        frozen_size = frozen.ByteSize()
        stripped = fold.strip_pruning_vars_fn(frozen, output_node_names)
        del frozen  # weights and masks: twice the model, no longer needed
        result, layers = stripped, None
        if shrink:
            _LOG.info("Shrinking")
            result, layers = shrinking.shrink_graph_def(stripped, output_node_names,
                                                        channel_multiple)
        _LOG.info("Checking that the graph loads")
        graphdef.check_graph_loads(result)
        if output_format == "tflite":
            _LOG.info("Converting to TFLite")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", export.DefaultDelegateWarning)
                data = export.to_tflite(result, output_node_names, sparse=sparse,
                                        float16=float16, quantize=quantize,
                                        representative_data=representative_data,
                                        per_channel=per_channel)
            for warning in caught:  # one line on stderr, not a Python warning with its source
                if issubclass(warning.category, export.DefaultDelegateWarning):
                    _LOG.warning("warning: %s", warning.message)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)
        elif output_format == "saved_model":
            _LOG.info("Writing a SavedModel")
            data = None
            export.write_saved_model(result, output_node_names, output.temp)
        elif output_format == "pbtxt":
            data = text_format.MessageToString(result).encode()
        else:
            data = result.SerializeToString()

        print("\n".join(layer_table(fold.folded_weights(stripped), m_by_n)))
        if shrink:
            print("\n".join(shrink_table(layers)))
        _LOG.info("Compressing to report sizes")
        print(f"frozen graph: {frozen_size:,} bytes (weights and masks, not compressed)")
        graphs = [("stripped graph", stripped)] + ([("shrunk graph", result)] if shrink else [])
        for label, graph_def in graphs:
            is_the_file = graph_def is result and output_format == "pb"
            print(_size_line(label, data if is_the_file else graph_def.SerializeToString()))
        if output_format == "saved_model":
            print(f"saved_model directory: {directory_size(output.temp):,} bytes")
        elif output_format != "pb":
            print(_size_line(f"{output_format} file", data))
        _LOG.info("Writing %s", output.path)
        if data is None:
            output.commit()
        else:
            output.commit(data)
    print(f"Wrote {output.path}")
    return output.path


@contextlib.contextmanager
def _progress_on_stderr():
    """Shows the progress and warnings of model_pruning's loggers on stderr, once each."""
    logger = logging.getLogger("model_pruning")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _load_examples(parser, path):
    """The arrays of a .npz (a dict by key) or .npy file; a usage error if it cannot be read."""
    extension = os.path.splitext(path)[1]
    if extension not in (".npz", ".npy"):
        parser.error(f"--representative_data={path}: need a .npz or .npy file")
    try:
        with open(path, "rb") as examples_file:
            loaded = np.load(examples_file, allow_pickle=False)
            if isinstance(loaded, np.ndarray) != (extension == ".npy"):
                raise ValueError(f"its content is {'an' if extension == '.npz' else 'no'} "
                                 ".npy array")
            if extension == ".npy":
                return loaded
            return {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        parser.error(f"--representative_data={path} cannot be read: {reason}")


def main(argv=None):
    """Entry point of the `strip_pruning_vars` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.float16 and args.output_format != "tflite":
        parser.error("--float16 needs --output_format=tflite")
    if args.quantize and args.output_format != "tflite":
        parser.error("--quantize needs --output_format=tflite")
    if args.no_sparse and args.output_format != "tflite":
        parser.error("--no_sparse needs --output_format=tflite")
    if args.per_tensor and not args.quantize:
        parser.error("--per_tensor needs --quantize")
    if args.quantize and args.float16:
        parser.error(f"--float16 and --quantize={args.quantize} exclude each other")
    if args.quantize == "int8" and args.representative_data is None:
        parser.error("--quantize=int8 needs --representative_data=FILE.npz|FILE.npy, examples "
                     "of the inputs to calibrate on")
    if args.representative_data is not None and args.quantize != "int8":
        parser.error("--representative_data needs --quantize=int8")
    representative_data = (None if args.representative_data is None
                           else _load_examples(parser, args.representative_data))
    if args.channel_multiple != 1 and not args.shrink:
        parser.error("--channel_multiple needs --shrink")
    if args.channel_multiple < 1:
        parser.error(f"--channel_multiple must be a positive number of channels, got "
                     f"{args.channel_multiple}")
    if args.input_shapes is not None and args.input_node_names is None:
        parser.error("--input_shapes needs --input_node_names")
    filename = args.filename or ("pruning_stripped_saved_model"
                                 if args.output_format == "saved_model"
                                 else f"pruning_stripped.{args.output_format}")
    try:
        with _progress_on_stderr():
            strip_pruning_vars(args.checkpoint_dir, args.output_node_names, args.output_dir,
                               filename, checkpoint=args.checkpoint,
                               output_format=args.output_format, float16=args.float16,
                               overwrite=args.overwrite, shrink=args.shrink,
                               channel_multiple=args.channel_multiple,
                               input_node_names=args.input_node_names,
                               input_shapes=args.input_shapes, m_by_n=args.m_by_n,
                               quantize=args.quantize, representative_data=representative_data,
                               per_channel=not args.per_tensor, sparse=not args.no_sparse)
    except (ValueError, OSError) as error:
        return parser.fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
