"""Masked RNN cells: collections, numerics against numpy, rnn drivers, stacking, training."""

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from model_pruning.compat import DropoutWrapper, LSTMStateTuple, MultiRNNCell
from model_pruning.layers import masked_fully_connected
from model_pruning.rnn_cells import MaskedBasicLSTMCell, MaskedGRUCell, MaskedLSTMCell

BATCH, DIM = 8, 10

CELLS = {
    "basic_lstm": lambda: MaskedBasicLSTMCell(DIM),
    "lstm": lambda: MaskedLSTMCell(DIM),
    "gru": lambda: MaskedGRUCell(DIM),
}
# Kernel shapes of each cell for DIM inputs: [input + state, gates * DIM].
KERNEL_SHAPES = {
    "basic_lstm": [[2 * DIM, 4 * DIM]],
    "lstm": [[2 * DIM, 4 * DIM]],
    "gru": [[2 * DIM, 2 * DIM], [2 * DIM, DIM]],
}


@pytest.fixture
def graph():
    with tf.Graph().as_default() as g:
        yield g


def shapes(tensors):
    return [t.get_shape().as_list() for t in tensors]


def names(variables):
    return [v.name.split(":")[0] for v in variables]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# Reference 9.4: one call registers one mask per kernel.

@pytest.mark.parametrize("kind", CELLS)
def test_one_call_registers_one_mask_per_kernel(graph, kind):
    cell = CELLS[kind]()
    inputs = tf.random.normal([BATCH, DIM])
    state = cell.zero_state(BATCH, tf.float32)
    cell(inputs, state)
    for collection in (model_pruning.get_masks(), model_pruning.get_masked_weights(),
                       model_pruning.get_weights()):
        assert shapes(collection) == KERNEL_SHAPES[kind]
    assert len(model_pruning.get_thresholds()) == len(KERNEL_SHAPES[kind])


def test_basic_lstm_cell_takes_an_lstm_state_tuple(graph):
    c, h = (tf.compat.v1.get_variable(name, [BATCH, DIM]) for name in ("c", "h"))
    output, state = MaskedBasicLSTMCell(DIM)(tf.ones([BATCH, DIM]), LSTMStateTuple(c, h))
    assert isinstance(state, LSTMStateTuple)
    assert shapes([output, state.c, state.h]) == [[BATCH, DIM]] * 3


@pytest.mark.parametrize("kind, expected", [
    ("basic_lstm", ["kernel", "bias", "mask", "threshold"]),
    ("lstm", ["kernel", "bias", "mask", "threshold"]),
    ("gru", ["gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias",
             "gates/mask", "gates/threshold", "candidate/mask", "candidate/threshold"]),
])
def test_variables_sit_in_the_cell_scope_and_in_cell_weights(graph, kind, expected):
    cell = CELLS[kind]()
    tf.compat.v1.nn.dynamic_rnn(cell, tf.ones([BATCH, 3, DIM]), dtype=tf.float32)
    prefix = cell.scope_name + "/"
    assert prefix.startswith("rnn/masked_")
    assert names(cell.weights) == [prefix + name for name in expected]
    assert names(cell.trainable_weights) == [prefix + name for name in expected
                                             if "kernel" in name or "bias" in name]
    assert sorted(names(tf.compat.v1.global_variables())) == sorted(names(cell.weights))
    assert names(model_pruning.get_masks()) == [prefix + name for name in expected
                                                if name.endswith("mask")]


def test_only_the_gate_kernel_of_lstm_cell_is_masked(graph):
    cell = MaskedLSTMCell(DIM, use_peepholes=True, num_proj=4)
    tf.compat.v1.nn.dynamic_rnn(cell, tf.ones([BATCH, 3, DIM]), dtype=tf.float32)
    assert names(model_pruning.get_weights()) == ["rnn/masked_lstm_cell/kernel"]
    assert shapes(model_pruning.get_masks()) == [[DIM + 4, 4 * DIM]]
    assert {"rnn/masked_lstm_cell/w_f_diag", "rnn/masked_lstm_cell/projection/kernel"} <= \
        set(names(tf.compat.v1.trainable_variables()))


# Numerics: a numpy cell with the masked kernel.

def numpy_lstm_step(x, state, v, forget_bias=1.0, cell_clip=None, proj_clip=None):
    """One LSTM step (peepholes, clipping and projection when `v` has their weights)."""
    c, m = state
    i, j, f, o = np.split(np.concatenate([x, m], 1) @ (v["kernel"] * v["mask"]) + v["bias"],
                          4, axis=1)
    peephole = "w_f_diag" in v
    c = (sigmoid(f + forget_bias + (v["w_f_diag"] * c if peephole else 0)) * c
         + sigmoid(i + (v["w_i_diag"] * c if peephole else 0)) * np.tanh(j))
    if cell_clip is not None:
        c = np.clip(c, -cell_clip, cell_clip)
    m = sigmoid(o + (v["w_o_diag"] * c if peephole else 0)) * np.tanh(c)
    if "projection/kernel" in v:
        m = m @ v["projection/kernel"]
        if proj_clip is not None:
            m = np.clip(m, -proj_clip, proj_clip)
    return m, (c, m)


def numpy_gru_step(x, h, v):
    gates = sigmoid(np.concatenate([x, h], 1) @ (v["gates/kernel"] * v["gates/mask"])
                    + v["gates/bias"])
    r, u = np.split(gates, 2, axis=1)
    candidate = np.tanh(np.concatenate([x, r * h], 1)
                        @ (v["candidate/kernel"] * v["candidate/mask"]) + v["candidate/bias"])
    h = u * h + (1 - u) * candidate
    return h, h


REFERENCES = {
    "basic_lstm": (lambda: MaskedBasicLSTMCell(6, forget_bias=0.5),
                   lambda x, s, v: numpy_lstm_step(x, s, v, forget_bias=0.5)),
    "lstm_peepholes_clip_projection": (
        lambda: MaskedLSTMCell(6, use_peepholes=True, cell_clip=0.8, num_proj=4, proj_clip=0.5),
        lambda x, s, v: numpy_lstm_step(x, s, v, cell_clip=0.8, proj_clip=0.5)),
    "gru": (lambda: MaskedGRUCell(6), numpy_gru_step),
}


def zero_state_of(cell):
    return tf.nest.map_structure(lambda size: np.zeros([4, size], np.float32), cell.state_size)


@pytest.mark.parametrize("kind", REFERENCES)
def test_half_masked_cell_matches_numpy_with_the_masked_kernel(graph, kind):
    make_cell, numpy_step = REFERENCES[kind]
    rng = np.random.RandomState(0)
    inputs = rng.randn(4, 5, 3).astype(np.float32)
    cell = make_cell()
    outputs, final_state = tf.compat.v1.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
    prefix = cell.scope_name + "/"
    values = {v.name[len(prefix):-2]: (0.5 * rng.randn(*v.shape)).astype(np.float32)
              for v in cell.trainable_weights}
    for mask in model_pruning.get_masks():
        flat = np.ones(mask.shape.num_elements(), np.float32)
        flat[rng.permutation(flat.size)[:flat.size // 2]] = 0
        values[mask.name[len(prefix):-2]] = flat.reshape(mask.shape)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        for variable in cell.weights:
            name = variable.name[len(prefix):-2]
            if name in values:
                variable.load(values[name], session)
        outputs, final_state = session.run([outputs, final_state])

    state = zero_state_of(cell)
    expected = []
    for t in range(inputs.shape[1]):
        output, state = numpy_step(inputs[:, t], state, values)
        expected.append(output)
    np.testing.assert_allclose(outputs, np.stack(expected, 1), rtol=1e-5, atol=1e-5)
    for actual, wanted in zip(tf.nest.flatten(final_state), tf.nest.flatten(state)):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-5)
    unmasked = dict(values, **{k: np.ones_like(v) for k, v in values.items() if "mask" in k})
    assert not np.allclose(numpy_step(inputs[:, 0], zero_state_of(cell), unmasked)[0],
                           expected[0], atol=1e-3)


# rnn drivers, stacking and wrapping.

@pytest.mark.parametrize("kind", CELLS)
def test_dynamic_and_static_rnn_agree_and_share_one_mask_per_kernel(graph, kind):
    cell = CELLS[kind]()
    inputs = tf.random.normal([BATCH, 6, DIM], seed=1)
    dynamic_outputs, dynamic_state = tf.compat.v1.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
    static_outputs, static_state = tf.compat.v1.nn.static_rnn(
        cell, tf.unstack(inputs, axis=1), dtype=tf.float32)
    assert len(model_pruning.get_masks()) == len(KERNEL_SHAPES[kind])
    # Masked outside the while-loop body, so fetchable like any tensor of the graph.
    assert all(w.graph is graph for w in model_pruning.get_masked_weights())
    # Masking a row of kernels makes the check sensitive to the mask.
    assign_masks = [mask.assign(tf.concat([tf.zeros_like(mask[:3]), mask[3:]], 0))
                    for mask in model_pruning.get_masks()]
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(assign_masks)
        dynamic, static = session.run([(dynamic_outputs, dynamic_state),
                                       (tf.stack(static_outputs, 1), static_state)])
    for d, s in zip(tf.nest.flatten(dynamic), tf.nest.flatten(static)):
        np.testing.assert_allclose(d, s, rtol=1e-5, atol=1e-6)


def test_bidirectional_dynamic_rnn_masks_each_direction(graph):
    (forward, backward), _ = tf.compat.v1.nn.bidirectional_dynamic_rnn(
        MaskedLSTMCell(DIM), MaskedGRUCell(DIM), tf.ones([BATCH, 4, DIM]), dtype=tf.float32)
    assert names(model_pruning.get_masks()) == [
        "bidirectional_rnn/fw/masked_lstm_cell/mask",
        "bidirectional_rnn/bw/masked_gru_cell/gates/mask",
        "bidirectional_rnn/bw/masked_gru_cell/candidate/mask"]
    assert shapes([forward, backward]) == [[BATCH, 4, DIM]] * 2


def test_stacked_and_dropout_wrapped_cells_register_one_mask_per_layer(graph):
    cell = MultiRNNCell([DropoutWrapper(MaskedBasicLSTMCell(DIM), output_keep_prob=0.5),
                         DropoutWrapper(MaskedLSTMCell(DIM), input_keep_prob=0.9)])
    outputs, _ = tf.compat.v1.nn.dynamic_rnn(cell, tf.ones([BATCH, 5, DIM]), dtype=tf.float32)
    assert names(model_pruning.get_masks()) == [
        "rnn/multi_rnn_cell/cell_0/masked_basic_lstm_cell/mask",
        "rnn/multi_rnn_cell/cell_1/masked_lstm_cell/mask"]
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        assert session.run(outputs).shape == (BATCH, 5, DIM)


def test_two_layer_lstm_trains_to_the_target_sparsity(graph):
    rng = np.random.RandomState(4)
    inputs = rng.randn(16, 8, 4).astype(np.float32)
    targets = np.cumsum(inputs[:, :, :1], axis=1) / 4  # a running sum needs the recurrence
    global_step = tf.compat.v1.train.get_or_create_global_step()
    cell = MultiRNNCell([MaskedLSTMCell(16), MaskedLSTMCell(16)])
    outputs, _ = tf.compat.v1.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
    predictions = masked_fully_connected(outputs, 1, activation_fn=None)
    loss = tf.reduce_mean(tf.square(predictions - targets))
    train_op = tf.compat.v1.train.AdamOptimizer(0.02).minimize(loss, global_step=global_step)
    pruning = model_pruning.Pruning(
        "threshold_decay=0.0,pruning_frequency=1,begin_pruning_step=0,"
        "sparsity_function_begin_step=0,sparsity_function_end_step=30,target_sparsity=0.75,"
        "threshold_method=exact", global_step=global_step)
    mask_update_op = pruning.conditional_mask_update_op()
    kernels = [w for w in model_pruning.get_masked_weights() if "lstm" in w.name]
    assert len(kernels) == 2
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        losses = []
        for _ in range(50):
            losses.append(session.run([train_op, loss])[1])
            session.run(mask_update_op)
        final_loss, kernel_values = session.run([loss, kernels])
    for kernel in kernel_values:
        assert np.mean(kernel == 0) == pytest.approx(0.75, abs=1e-3)
    assert final_loss < 0.5 * losses[0]
