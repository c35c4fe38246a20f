"""What the command line tools `strip_pruning_vars` and `inspect_checkpoint` share: errors of
one line, and the tables they print.

It imports neither TensorFlow nor numpy, so a tool answers `--help` and flag errors at once.
"""

import argparse
import re
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


def parse_m_by_n(text):
    """`2:4` (or `2,4`) -> (2, 4): N weights kept of every M, 1 <= N < M."""
    match = re.fullmatch(r"\s*(\d+)\s*[:,]\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) < int(match.group(2)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an N:M pattern: give the weights kept and the group size as "
            "N:M with 1 <= N < M (e.g. 2:4)")
    return int(match.group(1)), int(match.group(2))


def _pattern_text(check):
    """`yes`, `no (3/96 groups)` or `n/a` from (violating groups, groups) or None."""
    if check is None:
        return "n/a (rank < 2)"
    violations, groups = check
    return "yes" if not violations else f"no ({violations}/{groups} groups)"


def sparsity_table(rows, m_by_n=None):
    """One line per masked weight, from (name, shape, nonzeros, size) rows.

    With `m_by_n` (N, M), each row carries a fifth item, (groups holding more than N
    nonzeros, groups) or None, and a column `N:M` says whether the weight keeps the pattern.
    """
    header = ("masked weight", "shape", "nonzeros", "sparsity")
    lines = [(name, shape_text(shape), f"{nonzeros}/{size}",
              f"{1.0 - nonzeros / max(size, 1):.2%}")
             for name, shape, nonzeros, size, *_ in rows]
    if m_by_n is not None:
        header += (f"{m_by_n[0]}:{m_by_n[1]}",)
        lines = [line + (_pattern_text(row[4]),) for line, row in zip(lines, rows)]
    return table(header, lines)
