"""Packaging for model_pruning: magnitude pruning for TF1-style graph code on TensorFlow 2.21."""

from setuptools import find_packages, setup

setup(
    name="model_pruning",
    version="0.1.0",
    description=(
        "Drop-in successor of tf.contrib.model_pruning for tf.compat.v1 graph code "
        "and tf-slim on current TensorFlow."
    ),
    packages=find_packages(include=["model_pruning", "model_pruning.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow-cpu==2.21.*",
        "tf-slim==1.1.0",
        "numpy",
    ],
    extras_require={
        # The example falls back to scikit-learn's bundled digits when CIFAR-10 is absent.
        "examples": ["scikit-learn"],
        "test": ["pytest", "hypothesis", "scikit-learn"],
    },
    entry_points={
        "console_scripts": [
            "strip_pruning_vars=model_pruning.strip_pruning_vars:main",
        ],
    },
)
