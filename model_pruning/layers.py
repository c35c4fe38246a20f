"""Masked convolution and fully connected layers: slim functions and layer classes.

`masked_convolution`, `masked_conv2d` and `masked_fully_connected` take slim's arguments and
defaults, obey `slim.arg_scope`, and name their variables as slim does (`<scope>/weights`,
`<scope>/biases`), plus `<scope>/mask` and `<scope>/threshold`. The layer computes with
`<scope>/weights/masked_weight = mask * weights`, which `pruning.apply_mask` registers for
`Pruning`, so swapping `slim.conv2d` for `masked_conv2d` is all a slim model needs:

    with slim.arg_scope([masked_conv2d], padding="VALID", normalizer_fn=slim.batch_norm):
        net = masked_conv2d(images, 64, [3, 3], scope="conv1")
    logits = masked_fully_connected(slim.flatten(net), 10, activation_fn=None, scope="logits")

`MaskedConv1D`, `MaskedConv2D`, `MaskedConv3D` and `MaskedFullyConnected` are the same layers as
objects (contrib's core layers), with variables `kernel`, `bias`, `mask` and `threshold`. They
are plain Python over `tf.compat.v1.get_variable`, not Keras layers: `tf.compat.v1.layers` is
unavailable under Keras 3. The slim functions run these classes inside slim's variable scope.

(The module is long because the slim functions repeat slim's full signatures and documents,
which is what lets a slim user swap them in without reading further.)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import tensorflow as tf
import tf_slim as slim

from model_pruning import compat, masking, pruning

# Input rank -> the data formats of tf.nn.convolution for it: (channels last, channels first).
_CONV_DATA_FORMATS = {3: ("NWC", "NCW"), 4: ("NHWC", "NCHW"), 5: ("NDHWC", "NCDHW")}
_PADDINGS = ("VALID", "SAME")
_LAYER_DATA_FORMATS = ("channels_last", "channels_first")
# slim's names for a layer's kernel and bias.
_SLIM_VARIABLE_NAMES = {"kernel": "weights", "bias": "biases"}


def _normalize_tuple(value, rank, name):
    """`value` as a tuple of `rank` positive ints; a single int is repeated."""
    values = (value,) * rank if isinstance(value, numbers.Integral) else value
    if (not isinstance(values, (list, tuple)) or len(values) != rank
            or not all(isinstance(v, numbers.Integral) and v > 0 for v in values)):
        raise ValueError(f"{name} must be a positive int or {rank} positive ints, got {value!r}")
    return tuple(int(v) for v in values)


def _registered_variable(collection, name):
    """The variable named `name` that `pruning.apply_mask` put in `collection`."""
    return next(v for v in tf.compat.v1.get_collection(collection)
                if v.name.split(":")[0] == name)


class _MaskedLayer:
    """What the masked layers share: variable scope, masked kernel, bias, activation.

    Variables are made on the first call, in a scope named after the layer, and reused by later
    calls. The kernel is masked anew on every call with `pruning.apply_mask` (which registers it
    for pruning once), so each call's product lives in that call's graph context (say a
    while-loop body) instead of being shared across contexts.
    """

    _default_name = None

    def __init__(self, activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer, bias_regularizer, activity_regularizer, trainable, name):
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.trainable = trainable
        self.name = name
        self.built = False
        self.kernel = self.bias = self.mask = self.threshold = None
        self._scope = None

    @property
    def scope_name(self):
        """The layer's variable scope once it has been called (unique for unnamed layers)."""
        return self._scope.name if self._scope else None

    @property
    def variables(self):
        return [v for v in (self.kernel, self.bias, self.mask, self.threshold) if v is not None]

    @property
    def trainable_variables(self):
        return [v for v in (self.kernel, self.bias) if v is not None and self.trainable]

    def __call__(self, inputs):
        if self._scope is None:
            with tf.compat.v1.variable_scope(
                    self.name, default_name=self._default_name, values=[inputs]) as scope:
                outputs = self._build_and_call(inputs)
            self._scope = scope  # only now: a failed first call leaves nothing to reuse
            return outputs
        with tf.compat.v1.variable_scope(self._scope, reuse=True, auxiliary_name_scope=False), \
                tf.compat.v1.name_scope(self._scope.original_name_scope):
            return self._build_and_call(inputs)

    apply = __call__  # the tf.layers spelling

    def _build_and_call(self, inputs):
        """Builds on the first call and applies the layer, in the current variable scope."""
        inputs = tf.convert_to_tensor(inputs)
        self._check_inputs(inputs)
        if not self.built:
            self._build(inputs)
        masked_kernel = pruning.apply_mask(self.kernel)
        if self.mask is None:  # made by apply_mask on this first call
            scope = tf.compat.v1.get_variable_scope().name
            self.mask = _registered_variable(pruning.MASK_COLLECTION, scope + "/mask")
            self.threshold = _registered_variable(pruning.THRESHOLD_COLLECTION,
                                                  scope + "/threshold")
        outputs = self._apply_kernel(inputs, masked_kernel)
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, self.bias, data_format=self._bias_data_format)
        if self.activation is not None:
            outputs = self.activation(outputs)
        if self.activity_regularizer is not None:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES,
                                           self.activity_regularizer(outputs))
        return outputs

    def _build(self, inputs):
        dtype = inputs.dtype.base_dtype
        kernel_shape = self._kernel_shape(inputs)
        with masking.suspended():  # masked below, once, even inside masking_scope
            self.kernel = tf.compat.v1.get_variable(
                "kernel", shape=kernel_shape, dtype=dtype, initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer, trainable=self.trainable)
        if self.use_bias:
            self.bias = tf.compat.v1.get_variable(
                "bias", shape=kernel_shape[-1:], dtype=dtype, initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, trainable=self.trainable)
        self.built = True


class _MaskedConv(_MaskedLayer):
    """N-D convolution with a pruning mask on its kernel; subclasses fix N (`rank`)."""

    rank = None
    _default_name = "masked_conv"

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format="channels_last", dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer=tf.compat.v1.zeros_initializer(),
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 trainable=True, name=None):
        """Configures the layer; its variables are made on the first call.

        Args:
          filters: number of output channels.
          kernel_size, strides, dilation_rate: an int or `rank` ints each; strides and dilation
            rates above 1 cannot be combined (tf.nn.convolution).
          padding: 'valid' or 'same', any case.
          data_format: 'channels_last' (NWC, NHWC, NDHWC) or 'channels_first' (NCW, NCHW, NCDHW).
          activation: applied to the output, or None.
          use_bias: whether to add a `bias` variable.
          kernel_initializer: None means get_variable's default (Glorot uniform).
          bias_initializer, kernel_regularizer, bias_regularizer: as for tf.layers.
          activity_regularizer: its value on the output goes to REGULARIZATION_LOSSES.
          trainable: whether kernel and bias are trainable.
          name: the layer's variable scope; by default a unique one per class.
        Raises:
          ValueError: on a bad padding, data_format or size tuple.
        """
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, trainable,
                         name)
        if not isinstance(padding, str) or padding.upper() not in _PADDINGS:
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        if data_format not in _LAYER_DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(_LAYER_DATA_FORMATS)}, "
                             f"got {data_format!r}")
        self.filters = filters
        self.kernel_size = _normalize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = _normalize_tuple(strides, self.rank, "strides")
        self.dilation_rate = _normalize_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = padding.upper()
        self.data_format = data_format
        channels_first = data_format == "channels_first"
        self._conv_data_format = _CONV_DATA_FORMATS[self.rank + 2][channels_first]
        self._bias_data_format = "NC..." if channels_first else "N...C"
        self._channel_axis = 1 if channels_first else -1

    def _check_inputs(self, inputs):
        ndims = inputs.get_shape().ndims
        if ndims != self.rank + 2:
            raise ValueError(f"{type(self).__name__} needs inputs of rank {self.rank + 2} "
                             f"({self._conv_data_format}), got rank {ndims}: {inputs.shape}")
        if inputs.shape[self._channel_axis] is None:
            raise ValueError(f"{type(self).__name__} needs a known channel dimension "
                             f"({self.data_format}), got shape {inputs.shape}")

    def _kernel_shape(self, inputs):
        return self.kernel_size + (inputs.shape[self._channel_axis], self.filters)

    def _apply_kernel(self, inputs, kernel):
        return tf.nn.convolution(inputs, kernel, strides=self.strides, padding=self.padding,
                                 data_format=self._conv_data_format,
                                 dilations=self.dilation_rate)


class MaskedConv1D(_MaskedConv):
    """1-D convolution (inputs NWC or NCW) with a pruning mask on its kernel."""

    rank = 1
    _default_name = "masked_conv1d"


class MaskedConv2D(_MaskedConv):
    """2-D convolution (inputs NHWC or NCHW) with a pruning mask on its kernel.

    contrib's `core_layers.MaskedConv2D`: `layer.apply(x)` or `layer(x)` creates
    `<name>/kernel`, `<name>/mask`, `<name>/threshold` and `<name>/bias`, and convolves with
    `<name>/weights/masked_weight`. Arguments: see `__init__`.
    """

    rank = 2
    _default_name = "masked_conv2d"


class MaskedConv3D(_MaskedConv):
    """3-D convolution (inputs NDHWC or NCDHW) with a pruning mask on its kernel."""

    rank = 3
    _default_name = "masked_conv3d"


_CONV_CLASSES = {1: MaskedConv1D, 2: MaskedConv2D, 3: MaskedConv3D}


class MaskedFullyConnected(_MaskedLayer):
    """A dense layer with a pruning mask on its kernel (contrib's `MaskedFullyConnected`).

    Inputs of rank above 2 keep their leading dimensions: the kernel applies to the last axis.

    Args:
      units: number of outputs.
      activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
      bias_regularizer, activity_regularizer, trainable, name: as for `MaskedConv2D`.
    """

    _default_name = "masked_fully_connected"
    _bias_data_format = None

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer=None,
                 bias_initializer=tf.compat.v1.zeros_initializer(), kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, trainable=True, name=None):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, trainable,
                         name)
        self.units = units

    def _check_inputs(self, inputs):
        ndims = inputs.get_shape().ndims
        if ndims is None or ndims < 2:
            raise ValueError(f"{type(self).__name__} needs inputs of rank 2 or more, got rank "
                             f"{ndims}: {inputs.shape}")
        if inputs.shape[-1] is None:
            raise ValueError(f"{type(self).__name__} needs a known last dimension, got shape "
                             f"{inputs.shape}")

    def _kernel_shape(self, inputs):
        return (inputs.shape[-1], self.units)

    def _apply_kernel(self, inputs, kernel):
        if inputs.shape.ndims == 2:
            return tf.matmul(inputs, kernel)
        outputs = tf.tensordot(inputs, kernel, [[inputs.shape.ndims - 1], [0]])
        outputs.set_shape(inputs.shape[:-1].concatenate([self.units]))
        return outputs


def _slim_variable_getter(getter, name, *args, **kwargs):
    """Names a layer's variables as slim does and makes all of them model variables."""
    scope, _, short_name = name.rpartition("/")
    if short_name in _SLIM_VARIABLE_NAMES:
        name = f"{scope}/{_SLIM_VARIABLE_NAMES[short_name]}"
    collections = list(kwargs.get("collections") or [tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])
    kwargs["collections"] = collections + [tf.compat.v1.GraphKeys.MODEL_VARIABLES]
    return getter(name, *args, **kwargs)


def _add_to_variables_collections(variable, variables_collections, key):
    """Adds `variable` (each part, if partitioned) to slim's `variables_collections[key]`."""
    parts = list(variable) if compat.is_partitioned(variable) else [variable]
    for collection in slim.utils.get_variable_collections(variables_collections, key) or []:
        for part in parts:
            if all(part is not v for v in tf.compat.v1.get_collection(collection)):
                tf.compat.v1.add_to_collection(collection, part)


def _run_as_slim_layer(layer, inputs, scope, normalizer_fn, normalizer_params, activation_fn,
                       variables_collections, outputs_collections):
    """Applies `layer` in the slim scope `scope`, then slim's tail: variable collections,
    normalizer, activation and named outputs."""
    outputs = layer._build_and_call(inputs)  # pylint: disable=protected-access
    _add_to_variables_collections(layer.kernel, variables_collections, "weights")
    if layer.bias is not None:
        _add_to_variables_collections(layer.bias, variables_collections, "biases")
    if normalizer_fn is not None:
        outputs = normalizer_fn(outputs, **(normalizer_params or {}))
    if activation_fn is not None:
        outputs = activation_fn(outputs)
    return slim.utils.collect_named_outputs(outputs_collections, scope.name, outputs)


def _conv_input_rank(inputs, data_format, conv_dims):
    """The rank of `inputs`, checked against `conv_dims` and `data_format`."""
    if conv_dims not in (None, 1, 2, 3):
        raise ValueError(f"conv_dims must be None, 1, 2 or 3, got {conv_dims!r}")
    rank = inputs.get_shape().ndims
    allowed = [conv_dims + 2] if conv_dims else sorted(_CONV_DATA_FORMATS)
    if rank not in allowed:
        raise ValueError(
            f"Masked convolution supports inputs of rank {' or '.join(map(str, allowed))}, "
            f"got rank {rank}: {inputs.shape}")
    if data_format not in (None,) + _CONV_DATA_FORMATS[rank]:
        raise ValueError(f"Invalid data_format {data_format!r} for a rank-{rank} input; use "
                         f"None, {' or '.join(map(repr, _CONV_DATA_FORMATS[rank]))}")
    return rank


@slim.add_arg_scope
def masked_convolution(inputs: tf.Tensor,
                       num_outputs: int,
                       kernel_size: int | Sequence[int],
                       stride: int | Sequence[int] = 1,
                       padding: str = "SAME",
                       data_format: str | None = None,
                       rate: int | Sequence[int] = 1,
                       activation_fn=tf.nn.relu,
                       normalizer_fn=None,
                       normalizer_params=None,
                       weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                       weights_regularizer=None,
                       biases_initializer=tf.compat.v1.zeros_initializer(),
                       biases_regularizer=None,
                       reuse=None,
                       variables_collections=None,
                       outputs_collections=None,
                       trainable: bool = True,
                       scope: str | None = None,
                       conv_dims: int | None = None) -> tf.Tensor:
    """`slim.convolution` with a pruning mask on its weights: 1-D, 2-D or 3-D by input rank.

    Creates `<scope>/weights`, `<scope>/mask`, `<scope>/threshold` and, without a normalizer,
    `<scope>/biases`, all model variables, and convolves with `<scope>/weights/masked_weight`.

    Args:
      inputs: a tensor of rank 3 (NWC, NCW), 4 (NHWC, NCHW) or 5 (NDHWC, NCDHW).
      num_outputs: number of output channels.
      kernel_size: an int or one int per spatial dimension.
      stride: an int or one int per spatial dimension.
      padding: 'SAME' or 'VALID'.
      data_format: None (channels last) or one of the formats above for the input's rank.
      rate: dilation rate, an int or one int per spatial dimension; rate > 1 needs stride 1.
      activation_fn: applied last; None for a linear layer.
      normalizer_fn: applied before the activation instead of adding biases, e.g.
        `slim.batch_norm`.
      normalizer_params: keyword arguments of `normalizer_fn`.
      weights_initializer: initializer of the weights (default Glorot/Xavier uniform).
      weights_regularizer: optional regularizer of the (unmasked) weights.
      biases_initializer: initializer of the biases; None for no biases.
      biases_regularizer: optional regularizer of the biases.
      reuse: whether to reuse the variables of `scope`.
      variables_collections: a list of collections for weights and biases, or a dict with keys
        'weights' and 'biases'.
      outputs_collections: collections to add the output to, aliased by the scope name.
      trainable: whether weights and biases are trainable.
      scope: the variable scope; default 'Conv'.
      conv_dims: None for any supported rank, or 1, 2 or 3 to demand that many spatial dims.
    Returns:
      The output tensor.
    Raises:
      ValueError: if the input rank, data_format or conv_dims is not supported.
    """
    with tf.compat.v1.variable_scope(scope, "Conv", [inputs], reuse=reuse,
                                     custom_getter=_slim_variable_getter) as sc:
        inputs = tf.convert_to_tensor(inputs)
        rank = _conv_input_rank(inputs, data_format, conv_dims)
        channels_first = data_format is not None and data_format.startswith("NC")
        layer = _CONV_CLASSES[rank - 2](
            num_outputs, kernel_size, strides=stride, padding=padding,
            data_format=_LAYER_DATA_FORMATS[channels_first], dilation_rate=rate,
            use_bias=normalizer_fn is None and biases_initializer is not None,
            kernel_initializer=weights_initializer, bias_initializer=biases_initializer,
            kernel_regularizer=weights_regularizer, bias_regularizer=biases_regularizer,
            trainable=trainable, name=sc.name)
        return _run_as_slim_layer(layer, inputs, sc, normalizer_fn, normalizer_params,
                                  activation_fn, variables_collections, outputs_collections)


@slim.add_arg_scope
def masked_conv2d(inputs: tf.Tensor, *args, **kwargs) -> tf.Tensor:
    """`masked_convolution` for rank-4 inputs (NHWC or NCHW) only, as `slim.conv2d` is.

    Takes the arguments of `masked_convolution` except `conv_dims`. Its arg_scope defaults
    override those of `masked_convolution`.
    """
    return masked_convolution(inputs, *args, conv_dims=2, **kwargs)


@slim.add_arg_scope
def masked_fully_connected(inputs: tf.Tensor,
                           num_outputs: int,
                           activation_fn=tf.nn.relu,
                           normalizer_fn=None,
                           normalizer_params=None,
                           weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                           weights_regularizer=None,
                           biases_initializer=tf.compat.v1.zeros_initializer(),
                           biases_regularizer=None,
                           reuse=None,
                           variables_collections=None,
                           outputs_collections=None,
                           trainable: bool = True,
                           scope: str | None = None) -> tf.Tensor:
    """`slim.fully_connected` with a pruning mask on its weights.

    Creates `<scope>/weights`, `<scope>/mask`, `<scope>/threshold` and, without a normalizer,
    `<scope>/biases`, all model variables, and multiplies by `<scope>/weights/masked_weight`.

    Args:
      inputs: a tensor of rank 2 or more with a known last dimension; leading dimensions are
        kept.
      num_outputs: number of outputs, a Python int.
      activation_fn, normalizer_fn, normalizer_params, weights_initializer, weights_regularizer,
      biases_initializer, biases_regularizer, reuse, variables_collections, outputs_collections,
      trainable: as for `masked_convolution`.
      scope: the variable scope; default 'fully_connected'.
    Returns:
      The output tensor.
    Raises:
      ValueError: if num_outputs is not an int, or the input rank is below 2 or its last
        dimension unknown.
    """
    if not isinstance(num_outputs, numbers.Integral):
        raise ValueError(f"num_outputs must be an int, got {type(num_outputs).__name__} "
                         f"{num_outputs!r}")
    with tf.compat.v1.variable_scope(scope, "fully_connected", [inputs], reuse=reuse,
                                     custom_getter=_slim_variable_getter) as sc:
        layer = MaskedFullyConnected(
            num_outputs, use_bias=normalizer_fn is None and biases_initializer is not None,
            kernel_initializer=weights_initializer, bias_initializer=biases_initializer,
            kernel_regularizer=weights_regularizer, bias_regularizer=biases_regularizer,
            trainable=trainable, name=sc.name)
        return _run_as_slim_layer(layer, inputs, sc, normalizer_fn, normalizer_params,
                                  activation_fn, variables_collections, outputs_collections)
