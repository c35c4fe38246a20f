"""The TensorFlow releases model_pruning supports, checked at `import model_pruning`.

setup.py names no TensorFlow in install_requires (its distributions, tensorflow,
tensorflow-cpu, tf-nightly, ..., install the same files, so naming one would add it beside the
user's), so the floor is checked here and named again by setup.py's extras. The check reads
the installed distribution's metadata instead of importing TensorFlow, which takes seconds:
the command-line tools answer `--help` before that.
"""

import importlib.util
import re
import sys
from pathlib import Path

OLDEST_TENSORFLOW = (2, 12)
NEWEST_TESTED_TENSORFLOW = (2, 21)


def tensorflow_version(version):
    """(major, minor) of a TensorFlow version string ("2.21.0", "2.23.0-dev20261026"), or
    None if it does not start with two numbers."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _distribution_providing(package_dir):
    """(name, version) of the distribution installed beside `package_dir` whose top-level
    package it is (tensorflow-cpu, tf-nightly, ...), from its metadata, or None."""
    for info in sorted(package_dir.parent.glob("*.dist-info")):
        try:
            if package_dir.name not in (info / "top_level.txt").read_text().split():
                continue
            metadata = (info / "METADATA").read_text(errors="replace")
        except OSError:
            continue
        fields = dict(re.findall(r"^(Name|Version): *(.+)$", metadata, re.MULTILINE))
        if "Version" in fields:
            return re.sub(r"[-_.]+", "-", fields.get("Name", "tensorflow")).lower(), fields["Version"]
    return None


def _installed_tensorflow():
    """(distribution name or None, version string) of the TensorFlow Python would import, or
    None when there is none."""
    if "tensorflow" in sys.modules:
        module = sys.modules["tensorflow"]
        return None if module is None else (None, getattr(module, "__version__", ""))
    spec = importlib.util.find_spec("tensorflow")
    if spec is None:
        return None
    if spec.origin:
        found = _distribution_providing(Path(spec.origin).parent)
        if found:
            return found
    import tensorflow  # no metadata beside it: ask the package itself
    return None, getattr(tensorflow, "__version__", "")


def check_tensorflow():
    """Raises one clear ImportError when TensorFlow is missing or older than supported."""
    oldest, newest = ("%d.%d" % release for release in (OLDEST_TENSORFLOW,
                                                        NEWEST_TESTED_TENSORFLOW))
    installed = _installed_tensorflow()
    if installed is None:
        raise ImportError(
            f"model_pruning needs TensorFlow {oldest} or newer, and none is installed: "
            "pip install 'model_pruning[cpu]' (or 'model_pruning[gpu]' for CUDA), or install "
            "your TensorFlow first")
    distribution, version = installed
    release = tensorflow_version(version)
    if release is not None and release < OLDEST_TENSORFLOW:
        raise ImportError(
            f"model_pruning supports TensorFlow {oldest} to {newest} and tf-nightly, but "
            f"TensorFlow {version} is installed: pip install --upgrade "
            f"'{distribution or 'tensorflow'}>={oldest}'")
