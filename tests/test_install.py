"""Installing beside any TensorFlow: setup.py names none, and the import check says what to do.

Installing into real environments of each TensorFlow is `make compat` (tools/compat_matrix.py);
these tests read setup.py's arguments and import the package with TensorFlow hidden or faked.
"""

import re
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

import model_pruning
from model_pruning import requirements

ROOT = Path(__file__).resolve().parent.parent
TENSORFLOW_DISTRIBUTION = re.compile(r"^(tensorflow|tf-nightly|tf_nightly|intel-tensorflow)")


def dotted(version):
    return "%d.%d" % version


@pytest.fixture(scope="module")
def setup_arguments():
    """The keyword arguments setup.py gives setuptools.setup, read without building anything."""
    with mock.patch("setuptools.setup") as setup:
        runpy.run_path(str(ROOT / "setup.py"))
    return setup.call_args.kwargs


def requirement_name(requirement):
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def test_install_requires_names_no_tensorflow_distribution(setup_arguments):
    names = [requirement_name(r) for r in setup_arguments["install_requires"]]
    assert [name for name in names if TENSORFLOW_DISTRIBUTION.match(name)] == []
    assert {"tf-slim", "numpy"} <= set(names)


@pytest.mark.parametrize("extra", ["cpu", "gpu"])
def test_tensorflow_extras_start_at_the_oldest_supported_release(setup_arguments, extra):
    needed = setup_arguments["extras_require"][extra]
    assert needed
    for requirement in needed:
        assert TENSORFLOW_DISTRIBUTION.match(requirement_name(requirement))
        assert f">={dotted(requirements.OLDEST_TENSORFLOW)}" in requirement


def test_version_is_the_packages_own(setup_arguments):
    assert setup_arguments["version"] == model_pruning.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", model_pruning.__version__)


def test_python_classifiers_start_at_python_requires(setup_arguments):
    listed = [c.rpartition(":: ")[2] for c in setup_arguments["classifiers"]
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed and setup_arguments["python_requires"] == f">={listed[0]}"
    # The license is the SPDX expression alone: setuptools 77+ warns on a classifier beside it.
    assert setup_arguments["license"] == "Apache-2.0"
    assert not [c for c in setup_arguments["classifiers"] if c.startswith("License ::")]


@pytest.mark.parametrize("version, expected", [
    ("2.21.0", (2, 21)), ("2.12.1", (2, 12)), ("2.23.0-dev20261026", (2, 23)),
    ("2.16.0rc0", (2, 16)), ("unknown", None)])
def test_tensorflow_version_reads_releases_and_nightlies(version, expected):
    assert requirements.tensorflow_version(version) == expected


def import_model_pruning(prelude):
    """stderr lines of `import model_pruning` in a fresh Python that first runs `prelude`."""
    result = subprocess.run([sys.executable, "-c", f"{prelude}\nimport model_pruning"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, "import model_pruning succeeded"
    return result.stderr.strip().splitlines()


def exception_lines(lines):
    """The lines of a traceback that state an exception (one, unless exceptions chained)."""
    return [line for line in lines if re.match(r"\w+(Error|Exception)\b", line)]


def test_import_without_tensorflow_is_one_import_error_naming_the_extras():
    errors = import_model_pruning("import sys; sys.modules['tensorflow'] = None")
    assert exception_lines(errors) == [errors[-1]]
    assert errors[-1].startswith(
        f"ImportError: model_pruning needs TensorFlow {dotted(requirements.OLDEST_TENSORFLOW)} or "
        "newer, and none is installed")
    assert "'model_pruning[cpu]'" in errors[-1] and "'model_pruning[gpu]'" in errors[-1]


def test_import_with_too_old_tensorflow_is_one_import_error_naming_the_supported_range(
        tmp_path):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text('__version__ = "2.11.0"\n')
    errors = import_model_pruning(f"import sys; sys.path.insert(0, {str(tmp_path)!r})")
    assert exception_lines(errors) == [errors[-1]]
    supported = (f"TensorFlow {dotted(requirements.OLDEST_TENSORFLOW)} to "
                 f"{dotted(requirements.NEWEST_TESTED_TENSORFLOW)} and tf-nightly")
    assert errors[-1].startswith(f"ImportError: model_pruning supports {supported}, but "
                                 "TensorFlow 2.11.0 is installed: pip install --upgrade")
    assert errors[-1].endswith(f">={dotted(requirements.OLDEST_TENSORFLOW)}'")


def test_too_old_tensorflow_is_found_from_its_metadata_without_importing_it(tmp_path):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text('raise SystemExit("imported")\n')
    info = tmp_path / "tensorflow_cpu-2.11.1.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("tensorflow\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow_cpu\nVersion: 2.11.1\n")
    errors = import_model_pruning(f"import sys; sys.path.insert(0, {str(tmp_path)!r})")
    assert errors[-1].startswith("ImportError: model_pruning supports TensorFlow")
    assert errors[-1].endswith(
        f"TensorFlow 2.11.1 is installed: pip install --upgrade "
        f"'tensorflow-cpu>={dotted(requirements.OLDEST_TENSORFLOW)}'")
