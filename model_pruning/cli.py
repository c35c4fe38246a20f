"""What the command line tools `strip_pruning_vars` and `inspect_checkpoint` share: errors of
one line, and the tables they print.

It imports neither TensorFlow nor numpy, so a tool answers `--help` and flag errors at once.
"""

import argparse
import sys


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit status 2), not the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def fail(self, error):
        """Prints an error of the tool's work as one line; returns the exit status, 1."""
        print(f"{self.prog}: error: {error}", file=sys.stderr)
        return 1


def shape_text(shape):
    """`[3, 3, 8]` -> `3x3x8`."""
    return "x".join(map(str, shape))


def table(header, rows):
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header] + rows]


def sparsity_table(rows):
    """One line per masked weight, from (name, shape, nonzeros, size) rows."""
    return table(("masked weight", "shape", "nonzeros", "sparsity"),
                 [(name, shape_text(shape), f"{nonzeros}/{size}",
                   f"{1.0 - nonzeros / max(size, 1):.2%}")
                  for name, shape, nonzeros, size in rows])
