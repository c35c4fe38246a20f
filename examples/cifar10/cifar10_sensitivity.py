"""How far can the CIFAR-10 example's trained model be pruned, and where: one-shot sensitivity.

    python -m examples.cifar10.cifar10_sensitivity --checkpoint_dir=/tmp/cifar10_train

Restores the latest checkpoint of --checkpoint_dir (dense or already pruned) into the
example's inference graph, prunes its masked weights one-shot (no retraining) at each of
--sparsities, all together (the sweep) and one layer at a time, and measures precision @ 1 on
the evaluation data each time (`model_pruning.sensitivity`). It prints the table, a one-line
summary of the sweep and the sparsity map that keeps each layer within --max_drop of the
unpruned precision, as an hparams string for `cifar10_train --pruning_hparams` (add a
schedule to it), and writes sensitivity.png and sensitivity.txt to --output_dir (default: the
checkpoint directory). The checkpoint is only read: the masks are changed in the session and
put back, never saved.

The evaluation data is decoded and preprocessed once and fed to a placeholder, a few
thousand images per session run, so each of the ~50 evaluations is one forward pass.
"""

import argparse
import os
import shlex
import sys

import numpy as np
import tensorflow as tf

from examples.cifar10 import cifar10_eval, cifar10_input, cifar10_pruning, flags
from model_pruning import sensitivity

DEFAULT_MAX_DROP = 0.01
# Images per session run: 1,000 CIFAR-10 images hold ~150 MB of conv1 activations.
EVAL_BATCH = 1000
METRIC_NAME = "precision @ 1"
PNG_NAME = "sensitivity.png"
TEXT_NAME = "sensitivity.txt"


def _sparsity_list(text):
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers in [0, 1), got {text!r}") from None
    if not values or not all(0.0 <= value < 1.0 for value in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers in [0, 1), got {text!r}")
    return values


def _drop_limit(text):
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint_dir", default="/tmp/cifar10_train",
                        help="The training directory whose latest checkpoint is analysed.")
    flags.add_data_dir_flag(parser)
    flags.add_eval_data_flag(parser)
    parser.add_argument("--num_examples", type=int, default=None,
                        help="Evaluate on the first this many examples in file order "
                             "(default: all; the digits files are sorted by class).")
    parser.add_argument("--max_drop", type=_drop_limit, default=DEFAULT_MAX_DROP,
                        help="The suggested map keeps each layer's one-shot precision within "
                             "this of the unpruned one (0.01: one point).")
    parser.add_argument("--granularity", default="weight", choices=sensitivity.GRANULARITIES,
                        help="Prune single weights, or whole output channels (conv filters, "
                             "fc neurons).")
    parser.add_argument("--criterion", default="l1", choices=("l1", "l2"),
                        help="How a channel's weights score it with --granularity=channel.")
    parser.add_argument("--sparsities", type=_sparsity_list,
                        default=list(sensitivity.DEFAULT_SPARSITIES),
                        help="Comma-separated one-shot sparsities to try (default: "
                             f"{','.join(f'{s:g}' for s in sensitivity.DEFAULT_SPARSITIES)}).")
    parser.add_argument("--output_dir", default=None,
                        help=f"Where {PNG_NAME} and {TEXT_NAME} go (default: --checkpoint_dir).")
    return parser, parser.parse_args(argv)


def latest_checkpoint(checkpoint_dir):
    """The latest checkpoint prefix in `checkpoint_dir`; ValueError naming it when none."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    if path is None:
        raise ValueError(f"No checkpoint found in {checkpoint_dir}: train the model first "
                         f"(python -m examples.cifar10.cifar10_train --train_dir={checkpoint_dir})")
    return path


def load_eval_set(batches_dir, eval_data="test", num_examples=None):
    """The preprocessed evaluation images [n, 24, 24, 3] and labels [n] as numpy arrays."""
    with tf.Graph().as_default():
        init, images, labels = cifar10_input.inputs(eval_data, batches_dir, EVAL_BATCH,
                                                    num_examples)
        batches = []
        with tf.compat.v1.Session() as session:
            session.run(init)
            while True:
                try:
                    batches.append(session.run([images, labels]))
                except tf.errors.OutOfRangeError:
                    break
    if not batches:
        raise ValueError(f"No {eval_data} examples in {batches_dir}")
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


class PrecisionGraph:
    """The inference graph on a placeholder, and precision @ 1 on numpy arrays.

    The same metric as `cifar10_eval.Evaluator` (tf.nn.in_top_k, k=1), fed EVAL_BATCH images
    per session run instead of through tf.data.
    """

    def __init__(self, images, labels):
        self._images, self._labels = images, labels
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._images_input = tf.compat.v1.placeholder(
                tf.float32, [None, cifar10_input.IMAGE_SIZE, cifar10_input.IMAGE_SIZE,
                             cifar10_input.DEPTH], name="images")
            self._labels_input = tf.compat.v1.placeholder(tf.int32, [None], name="labels")
            logits = cifar10_pruning.inference(self._images_input)
            self._correct = tf.reduce_sum(tf.cast(
                tf.nn.in_top_k(targets=self._labels_input, predictions=logits, k=1), tf.int32))
            self.saver = tf.compat.v1.train.Saver()

    def precision(self, session):
        correct = 0
        for start in range(0, len(self._labels), EVAL_BATCH):
            correct += session.run(self._correct, {
                self._images_input: self._images[start:start + EVAL_BATCH],
                self._labels_input: self._labels[start:start + EVAL_BATCH]})
        return correct / len(self._labels)


def format_report(analysis, suggestion, header=()):
    """The table, the sweep summary and the suggested map with its hparams, as text."""
    total = sum(analysis.sizes.values())
    lines = [*header, sensitivity.format_table(analysis), "",
             sensitivity.sweep_summary(analysis, suggestion.max_drop, METRIC_NAME), "",
             f"suggested sparsity map: each layer's highest one-shot sparsity within "
             f"{suggestion.max_drop:g} of {analysis.baseline:.4f}"]
    width = max(len(name) for name in suggestion.sparsity_map)
    for name, value in suggestion.sparsity_map.items():
        lines.append(f"  {name:{width}} {analysis.sizes[name]:>10,}  {value:g}")
    lines += [f"  overall sparsity {suggestion.overall_sparsity:.4f} of {total:,} masked weights",
              "",
              "pruning hparams (append a schedule, e.g. ,begin_pruning_step=...,"
              "sparsity_function_end_step=...,threshold_method=exact):",
              f"  --pruning_hparams={shlex.quote(suggestion.hparams)}"]
    return "\n".join(lines)


def run(checkpoint_path, batches_dir, eval_data="test", num_examples=None,
        sparsities=sensitivity.DEFAULT_SPARSITIES, granularity="weight", criterion="l1",
        max_drop=DEFAULT_MAX_DROP, output_dir=None, progress=print):
    """Analyses one checkpoint; returns (sensitivity.Analysis, sensitivity.Suggestion).

    With `output_dir`, writes PNG_NAME (the curves) and TEXT_NAME (`format_report`) there.
    `progress` gets one line per evaluation (None: silence). The checkpoint is never written.
    """
    images, labels = load_eval_set(batches_dir, eval_data, num_examples)
    model = PrecisionGraph(images, labels)
    with tf.compat.v1.Session(graph=model.graph) as session:
        model.saver.restore(session, checkpoint_path)
        analysis = sensitivity.analyze(session, model.precision, sorted(set(sparsities)),
                                       granularity, criterion, per_layer=True,
                                       progress=progress)
    suggestion = sensitivity.suggest_sparsity_map(analysis, max_drop)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        sensitivity.plot(analysis, os.path.join(output_dir, PNG_NAME), METRIC_NAME)
        step = cifar10_eval.checkpoint_step(checkpoint_path)
        header = [f"one-shot sensitivity of {checkpoint_path} (step {step}), {METRIC_NAME} on "
                  f"{len(labels)} {eval_data} images, granularity {granularity}"
                  + (f" ({criterion})" if granularity == "channel" else ""), ""]
        with open(os.path.join(output_dir, TEXT_NAME), "w") as f:
            f.write(format_report(analysis, suggestion, header) + "\n")
    return analysis, suggestion


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        checkpoint_path = latest_checkpoint(args.checkpoint_dir)
    except ValueError as error:
        parser.error(str(error))
    output_dir = args.output_dir or args.checkpoint_dir
    batches_dir, description = cifar10_input.find_data(args.data_dir)
    print(f"data: {description}", flush=True)
    print(f"checkpoint: {checkpoint_path}", flush=True)
    analysis, suggestion = run(
        checkpoint_path, batches_dir, args.eval_data, args.num_examples, args.sparsities,
        args.granularity, args.criterion, args.max_drop, output_dir,
        progress=lambda line: print("  " + line, flush=True))
    print("\n" + format_report(analysis, suggestion))
    print(f"\nwrote {os.path.join(output_dir, PNG_NAME)} and {os.path.join(output_dir, TEXT_NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
