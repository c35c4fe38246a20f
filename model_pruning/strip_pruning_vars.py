"""Command line tool: freeze a pruned checkpoint, fold its masks and write the smaller model.

    strip_pruning_vars --checkpoint_dir=/tmp/train --output_node_names=logits \\
        [--output_dir=/tmp] [--filename=pruning_stripped.pb] [--checkpoint=PREFIX] \\
        [--output_format=pb|pbtxt|tflite] [--float16] [--overwrite] [--shrink]

It prints each masked weight's shape, nonzeros and sparsity, and the size of the dense frozen
graph and of the stripped graph, raw and gzip-compressed (a stripped GraphDef stores zeros
densely, so only compression or `--output_format=tflite` makes the file itself smaller).
With --shrink, output channels whose weights are all masked are removed from the layers
(`shrink.shrink_graph_def`), and each layer's kernel shape and FLOPs before and after are
printed.
The output is written atomically; an existing file is kept unless --overwrite is given.
"""

import argparse
import gzip
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

from model_pruning import export
from model_pruning.shrink import shrink_graph_def
from model_pruning.strip_pruning_vars_lib import (graph_def_from_checkpoint,
                                                  masked_weight_nodes,
                                                  normalize_node_names,
                                                  strip_pruning_vars_fn)

OUTPUT_FORMATS = ("pb", "pbtxt", "tflite")


def _parser():
    parser = argparse.ArgumentParser(
        prog="strip_pruning_vars",
        allow_abbrev=False,  # a flag is spelled out or it is an error
        description="Freeze a pruned checkpoint, replace every mask * weight by one constant "
                    "and write the model as a GraphDef or a sparse TFLite file.")
    parser.add_argument("--checkpoint_dir", default="",
                        help="Directory of checkpoints; the latest one is used.")
    parser.add_argument("--checkpoint", default=None,
                        help="Checkpoint prefix to use instead of the latest one "
                             "(e.g. /tmp/train/model.ckpt-1000, or model.ckpt-1000 inside "
                             "--checkpoint_dir).")
    parser.add_argument("--output_node_names", default="",
                        help="Comma-separated names of the output nodes.")
    parser.add_argument("--output_dir", default="/tmp", help="Output directory.")
    parser.add_argument("--filename", default=None,
                        help="Output file name (default pruning_stripped.pb, .pbtxt or "
                             ".tflite after --output_format).")
    parser.add_argument("--output_format", choices=OUTPUT_FORMATS, default="pb",
                        help="pb: binary GraphDef; pbtxt: text GraphDef; tflite: sparse TFLite.")
    parser.add_argument("--float16", action="store_true",
                        help="With --output_format=tflite: store the weights as float16.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing output file (otherwise it is an error).")
    parser.add_argument("--shrink", action="store_true",
                        help="Remove the output filters and neurons whose weights are all "
                             "masked, and the matching inputs of the next layer.")
    return parser


def write_atomically(path, data, overwrite=False):
    """Writes `data` to `path` through a temporary file in the same directory, so a reader
    never sees a partial file. Without `overwrite`, an existing `path` is left untouched.

    Raises:
      FileExistsError: if `path` exists and `overwrite` is False.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        if overwrite:
            os.replace(temp_path, path)
        else:
            os.link(temp_path, path)  # fails if `path` exists, with no window for a race
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)


def _exists_error(path):
    return FileExistsError(f"{path} already exists; pass --overwrite to replace it, or choose "
                           "another --output_dir/--filename")


def gzip_size(data):
    """Size of `data` after gzip compression (what a download or a zipped app would cost).

    Level 6, the gzip command's default: level 9 is ~4x slower on float data for <1% less.
    """
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def layer_table(graph_def):
    """One line per masked weight of a stripped graph: name, shape, nonzeros, sparsity."""
    rows = []
    for _, node in masked_weight_nodes(graph_def):
        if node.op != "Const":
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        nonzeros = int(np.count_nonzero(value))
        rows.append((node.name, "x".join(map(str, value.shape)), f"{nonzeros}/{value.size}",
                     f"{1.0 - nonzeros / max(value.size, 1):.2%}"))
    if not rows:
        return ["No masked weights were found: the graph was only frozen and reduced to the "
                "outputs' sub-graph."]
    return _table(("masked weight", "shape", "nonzeros", "sparsity"), rows)


def _table(header, rows):
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header] + rows]


def _flops_text(flops):
    return "?" if flops is None else f"{flops:,}"


def shrink_table(layers):
    """One line per conv or fc layer of `shrink_graph_def`'s report, then the FLOPs totals."""
    if not layers:
        return ["No Conv2D or MatMul with a constant kernel: nothing to shrink."]
    rows = [(layer.name, "x".join(map(str, layer.shape_before)),
             "x".join(map(str, layer.shape_after)), _flops_text(layer.flops_before),
             _flops_text(layer.flops_after), layer.note) for layer in layers]
    lines = _table(("layer", "kernel before", "kernel after", "FLOPs before", "FLOPs after",
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
                       shrink=False):
    """Freezes, strips (and with `shrink`, shrinks) and writes a checkpoint's model; prints
    the layer tables and sizes.

    Returns:
      The path of the written file.
    Raises:
      ValueError: on a missing checkpoint, a missing or empty output node list.
      FileExistsError: if the output exists and `overwrite` is False.
    """
    output_node_names = normalize_node_names(output_node_names)
    path = os.path.join(output_dir, filename)
    if os.path.exists(path) and not overwrite:
        raise _exists_error(path)  # before the slow part; write_atomically checks again
    frozen = graph_def_from_checkpoint(checkpoint_dir, output_node_names, checkpoint)
    stripped = strip_pruning_vars_fn(frozen, output_node_names)
    result = stripped
    if shrink:
        result, layers = shrink_graph_def(stripped, output_node_names)
    if output_format == "tflite":
        data = export.to_tflite(result, output_node_names, float16=float16)
    elif output_format == "pbtxt":
        data = text_format.MessageToString(result).encode()
    else:
        data = result.SerializeToString()

    print("\n".join(layer_table(stripped)))
    if shrink:
        print("\n".join(shrink_table(layers)))
    print(_size_line("dense frozen graph", frozen.SerializeToString()))
    print(_size_line("stripped graph", stripped.SerializeToString()))
    if shrink:
        print(_size_line("shrunk graph", result.SerializeToString()))
    if output_format != "pb":
        print(_size_line(f"{output_format} file", data))
    try:
        write_atomically(path, data, overwrite)
    except FileExistsError:
        raise _exists_error(path) from None
    print(f"Wrote {path}")
    return path


def main(argv=None):
    """Entry point of the `strip_pruning_vars` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.float16 and args.output_format != "tflite":
        parser.error("--float16 needs --output_format=tflite")
    filename = args.filename or f"pruning_stripped.{args.output_format}"
    try:
        strip_pruning_vars(args.checkpoint_dir, args.output_node_names, args.output_dir,
                           filename, checkpoint=args.checkpoint,
                           output_format=args.output_format, float16=args.float16,
                           overwrite=args.overwrite, shrink=args.shrink)
    except (ValueError, FileExistsError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
