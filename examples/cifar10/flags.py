"""Command-line helpers shared by the example's scripts."""

import argparse

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def parse_bool(text):
    """'true'/'false' (also yes/no, 1/0, any case) -> bool.

    argparse's `type=bool`, which contrib used, turns every non-empty string, "False"
    included, into True.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(
        f"expected a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE)}), got {text!r}")


def add_bool_flag(parser, name, help_text):
    """Adds `--name` (True), `--name=true|false`, defaulting to False."""
    parser.add_argument(f"--{name}", type=parse_bool, nargs="?", const=True, default=False,
                        help=help_text)


def add_data_dir_flag(parser):
    parser.add_argument("--data_dir", default="/tmp/cifar10_data",
                        help="CIFAR-10 binary batches (or where the digits fallback is cached).")


def add_eval_data_flag(parser):
    parser.add_argument("--eval_data", default="test", choices=("test", "train_eval"),
                        help="'test' reads test_batch.bin, 'train_eval' the training batches.")
