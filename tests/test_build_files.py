"""Every Python file of the package, the example and the tests belongs to a Bazel target."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_FILES = [ROOT / "BUILD", ROOT / "examples" / "cifar10" / "BUILD"]


def targets(build_file):
    """(rule, name, files) of each rule in a BUILD file; files are its srcs and main.

    The BUILD dialect used here is plain Python, so the file runs with rules that record.
    """
    recorded = []

    def rule(kind):
        def record(name, srcs=(), main=None, **_):
            files = [build_file.parent / src for src in [*srcs, *([main] if main else [])]]
            recorded.append((kind, name, files))
        return record

    exec(build_file.read_text(), {"package": lambda **_: None,  # noqa: S102 (our own file)
                                  "exports_files": lambda *_, **__: None,
                                  **{kind: rule(kind) for kind in
                                     ("py_library", "py_binary", "py_test")}})
    return recorded


def test_every_python_file_belongs_to_a_target():
    listed = {path for build in BUILD_FILES for _, _, files in targets(build) for path in files}
    python_files = {path for folder in ("model_pruning", "examples", "tests")
                    for path in (ROOT / folder).rglob("*.py")}
    assert sorted(str(p.relative_to(ROOT)) for p in python_files - listed) == []


def test_every_listed_file_exists():
    listed = {path for build in BUILD_FILES for _, _, files in targets(build) for path in files}
    assert sorted(str(p.relative_to(ROOT)) for p in listed if not p.exists()) == []


@pytest.mark.parametrize("name", ["pruning", "pruning_utils", "layers", "rnn_cells", "learning",
                                  "strip_pruning_vars_lib", "model_pruning",
                                  "strip_pruning_vars", "pruning_test", "pruning_utils_test",
                                  "layers_test", "rnn_cells_test", "strip_pruning_vars_test"])
def test_contrib_target_names_exist(name):
    assert name in {target for _, target, _ in targets(ROOT / "BUILD")}
