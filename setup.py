"""Packaging for model_pruning: magnitude pruning for TF1-style graph code on TensorFlow 2.12+.

TensorFlow is deliberately not in install_requires: its distributions (tensorflow,
tensorflow-cpu, tf-nightly, ...) install the same files, so naming one would add it beside the
one a user already has. model_pruning/requirements.py checks at import that a supported TensorFlow
is there; the `cpu` and `gpu` extras install one into a fresh environment.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# Must equal OLDEST_TENSORFLOW in model_pruning/requirements.py (tests/test_install.py checks).
OLDEST_TENSORFLOW = "2.12"


def read_version():
    """`__version__` of model_pruning/__init__.py, read as text: importing the package needs
    TensorFlow, which a fresh environment does not have yet."""
    text = (HERE / "model_pruning" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise RuntimeError('model_pruning/__init__.py has no line __version__ = "X.Y.Z"')
    return match.group(1)


setup(
    name="model_pruning",
    version=read_version(),
    description=(
        "Drop-in successor of tf.contrib.model_pruning for tf.compat.v1 graph code "
        "and tf-slim on TensorFlow 2.12 to 2.21."
    ),
    # An SPDX expression; setuptools 77+ warns on install about a license classifier beside it.
    license="Apache-2.0",
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["model_pruning", "model_pruning.*"]),
    # The Pythons that TensorFlow 2.12-2.21 has wheels for, from 3.10 on: 3.10-3.11 (TF
    # 2.12-2.15), 3.10-3.12 (2.16-2.19), 3.10-3.13 (2.20-2.21).
    python_requires=">=3.10",
    install_requires=[
        "tf-slim==1.1.0",
        "numpy",
    ],
    extras_require={
        # A TensorFlow for a fresh environment. macOS has no tensorflow-cpu; its tensorflow is
        # the CPU build. `gpu` is TensorFlow's own CUDA install (CUDA libraries from pip).
        "cpu": [
            f"tensorflow-cpu>={OLDEST_TENSORFLOW}; sys_platform != 'darwin'",
            f"tensorflow>={OLDEST_TENSORFLOW}; sys_platform == 'darwin'",
        ],
        "gpu": [f"tensorflow[and-cuda]>={OLDEST_TENSORFLOW}"],
        # The example falls back to scikit-learn's bundled digits when CIFAR-10 is absent;
        # matplotlib draws the sensitivity plot (`sensitivity.plot`).
        "plot": ["matplotlib"],
        "examples": ["scikit-learn", "matplotlib"],
        "test": ["pytest", "pytest-xdist", "hypothesis", "scikit-learn", "matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "strip_pruning_vars=model_pruning.strip_pruning_vars:main",
        ],
    },
)
