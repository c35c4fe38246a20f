"""Re-saves a trained checkpoint as an inference graph: placeholder `images` -> logits.

    python -m examples.cifar10.cifar10_export --checkpoint_dir=/tmp/cifar10_train \\
        --export_dir=/tmp/cifar10_export
    strip_pruning_vars --checkpoint_dir=/tmp/cifar10_export \\
        --output_node_names=softmax_linear/softmax_linear_2 --output_format=tflite

The exported checkpoint holds the trained variables, masks included, under the inference
graph: a placeholder `images` of preprocessed images [batch, 24, 24, 3], of any batch size, to
the logits. (The training checkpoint can be stripped too, with `--input_node_names` naming
the tensors its tf.data iterator gives, which then become placeholders; its graph has the
training batch size and its own node names.)
"""

import argparse
import os
import sys

import tensorflow as tf

from examples.cifar10 import cifar10_eval, cifar10_input, cifar10_pruning

INPUT_NODE = "images"


def export_inference_checkpoint(checkpoint_path, export_dir):
    """Writes `checkpoint_path`'s variables with the inference graph; returns the new prefix."""
    step = cifar10_eval.checkpoint_step(checkpoint_path)
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(
            tf.float32, [None, cifar10_input.IMAGE_SIZE, cifar10_input.IMAGE_SIZE,
                         cifar10_input.DEPTH], name=INPUT_NODE)
        cifar10_pruning.inference(images)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            saver.restore(session, checkpoint_path)
            return saver.save(session, os.path.join(export_dir, "model.ckpt"), global_step=step)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint_dir", default="/tmp/cifar10_train",
                        help="Training directory whose latest checkpoint is exported.")
    parser.add_argument("--export_dir", default="/tmp/cifar10_export")
    args = parser.parse_args(argv)
    latest = tf.train.latest_checkpoint(args.checkpoint_dir)
    if latest is None:
        parser.error(f"no checkpoint found in {args.checkpoint_dir}")
    print(f"Wrote {export_inference_checkpoint(latest, args.export_dir)} "
          f"(input {INPUT_NODE}, output {cifar10_pruning.LOGITS_NODE})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
