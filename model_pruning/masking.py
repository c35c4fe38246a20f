"""Pruning a model without editing it: `masking_scope` masks weights as the model creates them.

    with model_pruning.masking_scope():
        logits, _ = tf_slim.nets.vgg.vgg_16(images, num_classes=10)

Every `tf.compat.v1.get_variable` call inside the block (slim layers and nets, plain TF1 code,
the masked layers) goes through a custom getter. A matching weight is handed to the model as
`apply_mask(weight)`: the model computes with `mask * weight`, and the mask, threshold, op names
and collections are exactly those of `apply_mask` in the weight's own scope
(`vgg_16/fc6/mask`, `vgg_16/fc6/weights/masked_weight`).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence

import tensorflow as tf

from model_pruning import pruning, spec

# Kernels of conv and fully-connected layers in slim (`weights`), tf.layers and RNN cells
# (`kernel`), and slim's separable convs (`depthwise_weights`, `pointwise_weights`).
DEFAULT_INCLUDE = r"(^|/)(weights|kernel|depthwise_weights|pointwise_weights)$"


_suspensions = threading.local()


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Inside, `masking_scope` passes new variables through unmasked.

    For the masked layers and cells, which mask their own kernels with `apply_mask`: their
    kernel stays a variable, and each weight gets one mask however the scopes nest.
    """
    _suspensions.depth = getattr(_suspensions, "depth", 0) + 1
    try:
        yield
    finally:
        _suspensions.depth -= 1


def _is_suspended():
    return getattr(_suspensions, "depth", 0) > 0


def _mask_scope(weight_name):
    """The variable scope of a weight's mask and threshold.

    A layer's `weights` or `kernel` keeps contrib's names (`conv1/mask`); any other weight gets
    a scope of its own (`sep/depthwise_weights/mask`), so a layer with two weights (slim's
    separable conv) has two masks.
    """
    weight_scope, _, short_name = weight_name.rpartition("/")
    return weight_scope if short_name in ("weights", "kernel") else weight_name


def _absolute_scope(name):
    """A variable scope object for the absolute scope `name`, reusing variables if present."""
    return tf.compat.v1.VariableScope(reuse=tf.compat.v1.AUTO_REUSE, name=name)


@contextlib.contextmanager
def masking_scope(include: str | Sequence[str] | None = None,
                  exclude: str | Sequence[str] | None = None) -> Iterator[None]:
    """Masks the weights that code inside the block creates, without changing that code.

    Args:
      include: regex or list of regexes searched in each variable's name. By default, trainable
        conv and fully-connected kernels of rank >= 2 (names ending in `weights` or `kernel`);
        biases, batch-norm and embedding variables are left alone unless named here.
      exclude: regex or list of regexes of weights to leave dense even if included.
    Yields:
      None. Masked weights are listed by `get_masks()`, `get_weights()` etc. afterwards.
    Raises:
      ValueError: if a pattern is not a valid regex.
    """
    include_patterns = spec.compile_patterns(include, "masking_scope include pattern")
    exclude_patterns = spec.compile_patterns(exclude, "masking_scope exclude pattern")

    def is_included(name, variable, trainable):
        if any(p.search(name) for p in exclude_patterns):
            return False
        if include_patterns:
            return any(p.search(name) for p in include_patterns)
        return (trainable and variable.get_shape().ndims is not None
                and variable.get_shape().ndims >= 2 and re.search(DEFAULT_INCLUDE, name))

    def masking_getter(getter, name, *args, **kwargs):
        variable = getter(name, *args, **kwargs)
        if _is_suspended() or not is_included(name, variable,
                                              kwargs.get("trainable", True) is not False):
            return variable
        # The mask and the masked weight op go next to the weight, wherever the model creates
        # it from (slim's legacy layers create variables outside their name scope).
        mask_scope = _mask_scope(name)
        with tf.compat.v1.variable_scope(_absolute_scope(mask_scope), auxiliary_name_scope=False), \
                tf.compat.v1.name_scope(mask_scope + "/" if mask_scope else None):
            return pruning.apply_mask(variable)

    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     custom_getter=masking_getter, auxiliary_name_scope=False):
        yield
