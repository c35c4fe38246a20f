"""The subgraphs `shrink` puts where channels were removed, built with `graph_edits.new_node`.

Both compute exactly what the original graph computed on the channels that remain:
`select_channels` reorders kept channels and re-creates removed ones as their constants;
`lrn_over_channels` is a local response normalization in which removed channels still count,
at their original positions, with their constants.
"""

import numpy as np

from model_pruning.graph_edits import new_constant, new_node


def select_channels(scope, base, source, rank, dtype, present, wanted, values):
    """A new tensor holding `wanted` channels made from `source` (of rank 4 or 2), whose last
    axis holds `present`; returns its name.

    The channels are moved by a 1x1 Conv2D (MatMul for rank 2) with a 0/1 kernel and the
    missing ones get their constant from a BiasAdd. For finite activations this is exact
    (products by 1 and 0, sums with zeros) and on CPU several times faster than a GatherV2 on
    the last axis.
    """
    position = {channel: i for i, channel in enumerate(present)}
    selection = np.zeros([len(present), len(wanted)], dtype.as_numpy_dtype)
    for column, channel in enumerate(wanted):
        if channel in position:
            selection[position[channel], column] = 1
    if rank == 4:
        selected = new_node(scope, base + "/select", "Conv2D",
                            [source, new_constant(scope, base + "/selection",
                                                  selection[None, None])],
                            T=dtype, strides=[1, 1, 1, 1], padding=b"VALID", data_format=b"NHWC")
    else:
        selected = new_node(scope, base + "/select", "MatMul",
                            [source, new_constant(scope, base + "/selection", selection)],
                            T=dtype, transpose_a=False, transpose_b=False)
    constants = np.array([0.0 if c in position else values[c] for c in wanted],
                         dtype.as_numpy_dtype)
    if not constants.any():
        return selected
    return new_node(scope, base + "/constants", "BiasAdd",
                    [selected, new_constant(scope, base + "/values", constants)],
                    T=dtype, data_format=b"NHWC")


def lrn_over_channels(scope, lrn, dtype, present, wanted, values):
    """The same normalization as `lrn` computed from the `present` channels only; returns the
    name of its output.

    LRN divides channel j by (bias + alpha * s_j)^beta, where s_j sums the squares of the
    channels within depth_radius positions of j. A removed channel still counts there with
    its constant squared, at its original position; removing it outright would shift the
    window. So s is a 1x1 Conv2D of the squares with a band kernel plus those constants,
    and the output holds the `wanted` channels.
    """
    numpy_dtype = dtype.as_numpy_dtype
    radius, bias = lrn.attr["depth_radius"].i, lrn.attr["bias"].f
    alpha, beta = lrn.attr["alpha"].f, lrn.attr["beta"].f
    band = np.abs(np.subtract.outer(present, wanted)) <= radius
    constant_squares = np.array([sum(value ** 2 for c, value in values.items()
                                     if abs(c - channel) <= radius) for channel in wanted])
    base = f"{lrn.name}/shrunk"
    square = new_node(scope, base + "/square", "Square", [lrn.input[0]], T=dtype)
    sums = new_node(scope, base + "/window_sums", "Conv2D",
                    [square, new_constant(scope, base + "/band",
                                          (alpha * band).astype(numpy_dtype)[None, None])],
                    T=dtype, strides=[1, 1, 1, 1], padding=b"VALID", data_format=b"NHWC")
    denominator = new_node(
        scope, base + "/denominator", "BiasAdd",
        [sums, new_constant(scope, base + "/offset",
                            (bias + alpha * constant_squares).astype(numpy_dtype))],
        T=dtype, data_format=b"NHWC")
    # exp(-beta * log(d)) is d^-beta; the Pow kernel is about 3x slower on CPU.
    log = new_node(scope, base + "/log", "Log", [denominator], T=dtype)
    exponent = new_node(scope, base + "/times_minus_beta", "Mul",
                        [log, new_constant(scope, base + "/minus_beta",
                                           np.array(-beta, numpy_dtype))], T=dtype)
    scale = new_node(scope, base + "/scale", "Exp", [exponent], T=dtype)
    numerator = lrn.input[0]
    if present != wanted:
        numerator = select_channels(scope, base, numerator, 4, dtype, present, wanted, values)
    return new_node(scope, base + "/output", "Mul", [numerator, scale], T=dtype)
