"""apply_mask, the collections and Pruning: schedule, gating, thresholds, blocks, maps, dtypes."""

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from tests.numpy_reference import numpy_histogram_threshold

METHODS = ["histogram", "exact"]


@pytest.fixture
def graph():
    with tf.Graph().as_default() as g:
        tf.compat.v1.train.get_or_create_global_step()
        yield g


def session_with_init():
    session = tf.compat.v1.Session()
    session.run(tf.compat.v1.global_variables_initializer())
    return session


def variable(name, value, dtype=tf.float32):
    return tf.compat.v1.get_variable(name, initializer=tf.constant(value, dtype=dtype))


def hparams(text):
    return model_pruning.get_pruning_hparams().parse(text)


def one_to_hundred(shape=(100,)):
    return np.arange(1, 101, dtype=np.float32).reshape(shape)


def test_apply_mask_names_and_collections(graph):
    weights = variable("conv1/weights", np.ones([3, 3, 2, 4], np.float32))
    with tf.compat.v1.variable_scope("conv1"):
        masked = model_pruning.apply_mask(weights, "")
    assert masked.op.name == "conv1/weights/masked_weight"
    assert [m.op.name for m in model_pruning.get_masks()] == ["conv1/mask"]
    assert [t.op.name for t in model_pruning.get_thresholds()] == ["conv1/threshold"]
    assert model_pruning.get_weights() == [weights]
    assert model_pruning.get_masked_weights() == [masked]
    assert not any(m in tf.compat.v1.trainable_variables() for m in model_pruning.get_masks())


def test_apply_mask_under_reuse_registers_once(graph):
    weights = variable("w", np.ones([4, 4], np.float32))
    with tf.compat.v1.variable_scope("cell"):
        model_pruning.apply_mask(weights)
    with tf.compat.v1.variable_scope("cell", reuse=True):
        model_pruning.apply_mask(weights)
    assert len(model_pruning.get_masks()) == len(model_pruning.get_weights()) == 1


def test_masked_weights_start_equal_to_weights(graph):
    values = np.random.RandomState(0).randn(10, 20).astype(np.float32)
    masked = model_pruning.apply_mask(variable("w", values), "layer")
    with session_with_init() as session:
        np.testing.assert_array_equal(session.run(masked), values)


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64])
def test_mask_and_threshold_take_the_weight_dtype(graph, dtype):
    weights = variable("w", one_to_hundred(), dtype)
    masked = model_pruning.apply_mask(weights, "layer")
    mask, threshold = model_pruning.get_masks()[0], model_pruning.get_thresholds()[0]
    assert mask.dtype.base_dtype == threshold.dtype.base_dtype == dtype
    update = model_pruning.Pruning(
        hparams("threshold_decay=0.0,threshold_method=exact"),
        sparsity=tf.constant(0.95)).mask_update_op()
    with session_with_init() as session:
        session.run(update)
        np.testing.assert_array_equal(np.flatnonzero(session.run(masked)), np.arange(95, 100))


@pytest.mark.parametrize("sparsity", [0.95, 0.5, 0.2])
@pytest.mark.parametrize("method", METHODS)
def test_single_mask_update_keeps_the_largest_weights(graph, method, sparsity):
    values = one_to_hundred()
    masked = model_pruning.apply_mask(variable("w", values), "layer")
    update = model_pruning.Pruning(
        hparams(f"threshold_decay=0.0,threshold_method={method}"),
        sparsity=tf.constant(sparsity)).mask_update_op()
    with session_with_init() as session:
        assert np.count_nonzero(session.run(masked)) == 100
        session.run(update)
        result = session.run(masked)
    if method == "exact":
        kept = round(100 * (1 - sparsity))
    else:
        kept = np.count_nonzero(values > numpy_histogram_threshold(values, sparsity, 255))
    np.testing.assert_array_equal(np.flatnonzero(result), np.arange(100 - kept, 100))


@pytest.mark.parametrize("sparsity", [0.996, 1.0 - 1e-7])
@pytest.mark.parametrize("method", METHODS)
def test_sparsity_that_rounds_to_keeping_nothing(graph, method, sparsity):
    masked = model_pruning.apply_mask(variable("w", one_to_hundred()), "layer")
    update = model_pruning.Pruning(hparams(f"threshold_decay=0.0,threshold_method={method}"),
                                   sparsity=tf.constant(sparsity)).mask_update_op()
    with session_with_init() as session:
        session.run(update)
        assert np.count_nonzero(session.run(masked)) <= 1


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_weight_updates_without_error(graph, method):
    model_pruning.apply_mask(variable("w", np.zeros([10, 10], np.float32)), "layer")
    update = model_pruning.Pruning(hparams(f"threshold_decay=0.0,threshold_method={method}"),
                                   sparsity=tf.constant(0.5)).mask_update_op()
    with session_with_init() as session:
        session.run(update)
        assert np.isfinite(session.run(model_pruning.get_thresholds()[0]))


@pytest.mark.parametrize("method", METHODS)
def test_conditional_mask_update_gating(graph, method):
    """Reference 3.9: updates at steps 2, 4 and 6 only."""
    global_step = tf.compat.v1.train.get_global_step()
    sparsity = variable("sparsity", 0.0)
    masked = model_pruning.apply_mask(variable("w", one_to_hundred()), "layer")
    p = model_pruning.Pruning(
        hparams(f"pruning_frequency=2,begin_pruning_step=1,end_pruning_step=6,"
                f"threshold_decay=0.0,threshold_method={method}"),
        global_step=global_step, sparsity=sparsity)
    update = p.conditional_mask_update_op()
    increment = tf.compat.v1.assign_add(global_step, 1)
    counts = []
    with session_with_init() as session:
        for value in np.linspace(0, 0.9, 10):
            session.run(sparsity.assign(value))
            session.run(update)
            counts.append(np.count_nonzero(session.run(masked)))
            session.run(increment)
    assert counts == [100, 100, 80, 80, 60, 60, 40, 40, 40, 40]


def test_update_built_after_a_train_op_reads_the_step_that_op_left(graph):
    """Pruning built before the train op, its update under the train op's control dependency:
    each run records the incremented step, never the one before (which a read made when
    Pruning was built would race to)."""
    global_step = tf.compat.v1.train.get_global_step()
    model_pruning.apply_mask(variable("w", one_to_hundred()), "layer")
    p = model_pruning.Pruning(hparams("pruning_frequency=1,threshold_method=exact"),
                              sparsity=tf.constant(0.5))
    with tf.control_dependencies([tf.compat.v1.assign_add(global_step, 1)]):
        train_and_prune = p.conditional_mask_update_op()
    recorded = []
    with session_with_init() as session:
        session.run(tf.compat.v1.local_variables_initializer())
        for _ in range(20):
            session.run(train_and_prune)
            recorded.append(session.run(p.last_mask_update_step()))
    assert recorded == list(range(1, 21))


def executed_node_names(session, fetch):
    """The nodes one run of `fetch` executes but constants and variable handles (which have no
    inputs and any step runs)."""
    metadata = tf.compat.v1.RunMetadata()
    session.run(fetch, options=tf.compat.v1.RunOptions(
        trace_level=tf.compat.v1.RunOptions.FULL_TRACE), run_metadata=metadata)
    return {node.node_name for device in metadata.step_stats.dev_stats
            for node in device.node_stats
            if node.node_name != "_SOURCE"
            and node.timeline_label.partition(" = ")[2].partition("(")[0] not in (
                "Const", "VarHandleOp")}


@pytest.mark.parametrize("method", METHODS)
def test_a_step_without_an_update_runs_a_few_ops_of_the_update(graph, method):
    """The gate skips the whole update when none is due: of the hundreds of ops that update
    twelve masks, a step without an update runs a handful (the step, the comparison, the
    switch and the merge), while a step with one runs them all."""
    for i in range(12):
        model_pruning.apply_mask(variable(f"w{i}", one_to_hundred((10, 10))), f"layer{i}")
    p = model_pruning.Pruning(hparams(f"pruning_frequency=10,threshold_method={method}"))
    update = p.conditional_mask_update_op()
    increment = tf.compat.v1.assign_add(tf.compat.v1.train.get_global_step(), 1)
    with session_with_init() as session:
        session.run(tf.compat.v1.local_variables_initializer())
        session.run(increment)
        for _ in range(9):
            session.run(increment)
        due = executed_node_names(session, update)
        assert session.run(p.last_mask_update_step()) == 10
        session.run(increment)
        idle = executed_node_names(session, update)
        assert session.run(p.last_mask_update_step()) == 10
    assert len(due) > 200
    assert len(idle) <= 20, "\n".join(sorted(idle))


def test_conditional_mask_update_op_twice_gives_working_ops(graph):
    sparsity = variable("sparsity", 0.5)
    masked = model_pruning.apply_mask(variable("w", one_to_hundred()), "layer")
    p = model_pruning.Pruning(hparams("threshold_method=exact,pruning_frequency=1"),
                              sparsity=sparsity)
    first, second = p.conditional_mask_update_op(), p.conditional_mask_update_op()
    increment = tf.compat.v1.assign_add(tf.compat.v1.train.get_global_step(), 1)
    with session_with_init() as session:
        session.run(increment)
        session.run(first)
        assert np.count_nonzero(session.run(masked)) == 50
        session.run([sparsity.assign(0.8), increment])
        session.run(second)
        assert np.count_nonzero(session.run(masked)) == 20


@pytest.mark.parametrize("step", [0, 5, 10, 50, 100, 150])
def test_schedule_before_inside_and_after_the_ramp(graph, step):
    global_step = tf.compat.v1.train.get_global_step()
    p = model_pruning.Pruning(hparams(
        "initial_sparsity=0.1,target_sparsity=0.8,sparsity_function_begin_step=10,"
        "sparsity_function_end_step=110,sparsity_function_exponent=3"))
    assert p.sparsity.op.name == "model_pruning/sparsity"
    with session_with_init() as session:
        session.run(global_step.assign(step))
        progress = min(max((step - 10) / 100.0, 0.0), 1.0)
        expected = 0.8 + (0.1 - 0.8) * (1 - progress) ** 3
        np.testing.assert_allclose(session.run(p.sparsity), expected, rtol=1e-6)


def test_external_sparsity_replaces_the_schedule(graph):
    p = model_pruning.Pruning(hparams("target_sparsity=0.9"), sparsity=variable("s", 0.5))
    with session_with_init() as session:
        assert session.run(p.sparsity) == 0.5


def test_two_pruning_objects_share_the_step_variable(graph):
    first = model_pruning.Pruning(hparams("name=test"))
    second = model_pruning.Pruning(hparams("name=test"))
    assert first._last_update_step is second._last_update_step
    assert first._last_update_step.op.name == "test/last_mask_update_step"


def test_spec_values_and_maps_are_kept(graph):
    p = model_pruning.Pruning(hparams(
        "name=test,threshold_decay=0.9,pruning_frequency=10,sparsity_function_end_step=100,"
        "target_sparsity=0.9,weight_sparsity_map=[conv1:0.8,conv2/kernel:0.8],"
        "block_dims_map=[dense1:4x4,dense2:1x4]"))
    spec = p._spec
    assert (spec.hparams.name, spec.hparams.pruning_frequency) == ("test", 10)
    assert [spec.target_sparsity(w) for w in ("conv1/weights", "conv2/kernel", "fc/w")] == [
        0.8, 0.8, None]
    assert [spec.block_dims(w) for w in ("dense1/kernel", "dense2/kernel", "fc/w")] == [
        [4, 4], [1, 4], [1, 1]]


def block_mask(weights, spec_text, name="weights"):
    """The mask `Pruning._threshold_and_mask` computes for `weights` at sparsity 0.5."""
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        p = model_pruning.Pruning(hparams(spec_text + ",threshold_decay=0.0"),
                                  sparsity=tf.constant(0.5))
        weight_tensor = tf.constant(weights, name=name)
        _, mask = p._threshold_and_mask(weight_tensor, tf.constant(0.0), name,
                                        p._at_step(p.global_step))
        assert mask.get_shape() == weight_tensor.get_shape()
        with tf.compat.v1.Session() as session:
            return session.run(mask)


TWO_BY_TWO_EXPECTED = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pooling, weights", [
    ("MAX", [[0.1, 0.0, 0.2, 0.0], [0.0, -0.1, 0.0, -0.2],
             [0.3, 0.0, 0.4, 0.0], [0.0, -0.3, 0.0, -0.4]]),
    ("AVG", [[0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2],
             [0.3, 0.3, 0.4, 0.4], [0.3, 0.3, 0.4, 0.4]]),
])
def test_two_by_two_block_masks(method, pooling, weights):
    spec = f"block_height=2,block_width=2,block_pooling_function={pooling},threshold_method={method}"
    np.testing.assert_array_equal(block_mask(np.float32(weights), spec), TWO_BY_TWO_EXPECTED)
    np.testing.assert_array_equal(
        block_mask(np.float32(weights).reshape(1, 4, 4), spec), TWO_BY_TWO_EXPECTED[None])


@pytest.mark.parametrize("pooling", ["MAX", "AVG", "L2"])
def test_whole_row_blocks(pooling):
    weights = np.float32([[0.1] * 4, [0.2] * 4, [0.3] * 4, [0.4] * 4])
    mask = block_mask(weights, f"block_height=1,block_width=-1,block_pooling_function={pooling},"
                               "threshold_method=exact")
    np.testing.assert_array_equal(mask, TWO_BY_TWO_EXPECTED)


def test_block_dims_minus_one_resolves_per_weight():
    """Contrib mutated the shared block dims in place; a second, wider weight must still work."""
    with tf.Graph().as_default():
        tf.compat.v1.train.get_or_create_global_step()
        p = model_pruning.Pruning(hparams("block_height=1,block_width=-1,threshold_decay=0.0"),
                                  sparsity=tf.constant(0.5))
        at = p._at_step(p.global_step)
        narrow = p._threshold_and_mask(tf.ones([4, 2]), tf.constant(0.0), "narrow", at)[1]
        wide = p._threshold_and_mask(tf.ones([4, 6]), tf.constant(0.0), "wide", at)[1]
        assert p._spec.block_dims("wide") == [1, -1]
        assert narrow.get_shape() == [4, 2] and wide.get_shape() == [4, 6]


@pytest.mark.parametrize("method", METHODS)
def test_per_layer_block_dims(graph, method):
    layer1 = model_pruning.apply_mask(variable("layer1/weights", [[-0.1, 0.1], [-0.2, 0.2]]),
                                      "layer1")
    layer2 = model_pruning.apply_mask(
        variable("layer2/weights", [[0.1, 0.1, 0.3, 0.3], [0.2, 0.2, 0.4, 0.4]]), "layer2")
    update = model_pruning.Pruning(hparams(
        f"block_dims_map=[layer1/weights:1x1,layer2/weights:1x2],block_pooling_function=AVG,"
        f"threshold_decay=0.0,threshold_method={method}"),
        sparsity=tf.constant(0.5)).mask_update_op()
    with session_with_init() as session:
        session.run(update)
        masks = session.run(model_pruning.get_masks())
        np.testing.assert_array_equal(masks[0], [[0, 0], [1, 1]])
        np.testing.assert_array_equal(masks[1], [[0, 0, 1, 1], [0, 0, 1, 1]])
        np.testing.assert_allclose(session.run(layer1), [[0, 0], [-0.2, 0.2]])
        np.testing.assert_allclose(session.run(model_pruning.get_weight_sparsity()), [0.5, 0.5])
        assert np.count_nonzero(session.run(layer2)) == 4


@pytest.mark.parametrize("method", METHODS)
def test_weight_specific_sparsity(graph, method):
    global_step = tf.compat.v1.train.get_global_step()
    values = np.random.RandomState(0).rand(100).astype(np.float32) + 0.01
    for name in ("layer1/weights", "layer2/weights", "layer3/kernel"):
        model_pruning.apply_mask(variable(name, values), name.split("/")[0])
    update = model_pruning.Pruning(hparams(
        f"begin_pruning_step=1,pruning_frequency=1,end_pruning_step=100,target_sparsity=0.5,"
        f"weight_sparsity_map=[layer1:0.6,layer2/weights:0.75,.*kernel:0.6],"
        f"threshold_decay=0.0,threshold_method={method}"),
        global_step=global_step).conditional_mask_update_op()
    increment = tf.compat.v1.assign_add(global_step, 1)
    with session_with_init() as session:
        for _ in range(110):
            session.run(update)
            session.run(increment)
        sparsities, overall, masks = session.run([
            model_pruning.get_weight_sparsity(), model_pruning.get_overall_weight_sparsity(),
            model_pruning.get_masks()])
    np.testing.assert_allclose(sparsities, [0.6, 0.75, 0.6], atol=0.02)
    zeros = sum(np.count_nonzero(mask == 0) for mask in masks)
    assert overall == pytest.approx(zeros / sum(mask.size for mask in masks))


def test_weight_matching_two_map_entries_fails_when_pruning_is_built(graph):
    model_pruning.apply_mask(variable("layer1/weights", one_to_hundred()), "layer1")
    with pytest.raises(ValueError, match="Weight layer1/weights matches more than one "
                                         "weight_sparsity_map entry: layer, weights"):
        model_pruning.Pruning(hparams("weight_sparsity_map=[layer:0.6,weights:0.7]"))


def test_weight_masked_after_pruning_is_built_is_checked_with_the_update_op(graph):
    p = model_pruning.Pruning(hparams("block_dims_map=[layer:1x2,weights:2x1]"))
    model_pruning.apply_mask(variable("layer1/weights", one_to_hundred()), "layer1")
    with pytest.raises(ValueError, match="matches more than one block_dims_map entry"):
        p.mask_update_op()


def test_do_not_prune_keeps_masks_and_skips_summaries(graph):
    kept = model_pruning.apply_mask(variable("conv1/weights", one_to_hundred()), "conv1")
    pruned = model_pruning.apply_mask(variable("fc/weights", one_to_hundred()), "fc")
    p = model_pruning.Pruning(hparams("do_not_prune=[conv1],threshold_method=exact"),
                              sparsity=tf.constant(0.5))
    update = p.mask_update_op()
    p.add_pruning_summaries()
    summaries = [t.op.name for t in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)]
    with session_with_init() as session:
        session.run(update)
        assert np.count_nonzero(session.run(kept)) == 100
        assert np.count_nonzero(session.run(pruned)) == 50
    assert not any("conv1" in name for name in summaries)
    assert "model_pruning_summaries/fc/mask/sparsity" in summaries


def test_partitioned_weight_is_masked_as_a_whole(graph):
    values = one_to_hundred((10, 10))

    def initializer(shape, dtype=None, partition_info=None):
        start = partition_info.var_offset[0]
        return tf.constant(values[start:start + shape[0]], dtype)

    partitioner = tf.compat.v1.variable_axis_size_partitioner(40)
    with tf.compat.v1.variable_scope("partitioned", partitioner=partitioner):
        weights = tf.compat.v1.get_variable("weights", shape=[10, 10], initializer=initializer)
        masked = model_pruning.apply_mask(weights)
    assert len(list(model_pruning.get_masks()[0])) > 1
    update = model_pruning.Pruning(hparams("threshold_decay=0.0,threshold_method=exact"),
                                   sparsity=tf.constant(0.5)).mask_update_op()
    with session_with_init() as session:
        session.run(update)
        result = session.run(masked)
    assert np.count_nonzero(result) == 50
    np.testing.assert_array_equal(np.flatnonzero(result), np.arange(50, 100))


def test_summaries_have_legal_names(graph):
    model_pruning.apply_mask(variable("conv1/weights", one_to_hundred()), "conv1")
    model_pruning.Pruning(hparams("name=cifar10_pruning")).add_pruning_summaries()
    names = sorted(t.op.name for t in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES))
    assert names == ["cifar10_pruning_summaries/conv1/mask/sparsity",
                     "cifar10_pruning_summaries/conv1/threshold/threshold",
                     "cifar10_pruning_summaries/last_mask_update_step",
                     "cifar10_pruning_summaries/sparsity"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("size, position", [(100, 3), (1 << 20, (1 << 20) - 5)])
def test_non_finite_weight_fails_naming_the_weight(graph, method, bad, size, position):
    values = np.linspace(-1.0, 1.0, size, dtype=np.float32).reshape(-1, 4)
    values.reshape(-1)[position] = bad
    model_pruning.apply_mask(variable("conv1/weights", values), "conv1")
    update = model_pruning.Pruning(hparams(f"threshold_decay=0.0,threshold_method={method}"),
                                   sparsity=tf.constant(0.5)).mask_update_op()
    with session_with_init() as session:
        with pytest.raises(tf.errors.InvalidArgumentError, match="conv1/weights.*NaN or Inf"):
            session.run(update)
        assert np.all(session.run(model_pruning.get_masks()[0]) == 1)


@pytest.mark.parametrize("sizes, min_group_size, groups", [
    ([10, 10, 10], 100, [[0, 1, 2]]),
    ([50, 20, 20, 10, 40], 10, [[0], [1, 2, 3], [4]]),
    ([5, None, 5, 5], 8, [[0], [1], [2], [3]]),
    ([3, None, 3], 20, [[0], [1], [2]]),
    ([], 10, []),
])
def test_update_groups_hold_at_most_the_largest_weight(sizes, min_group_size, groups):
    assert model_pruning.pruning._update_groups(sizes, min_group_size) == groups


def ancestor_names(op):
    """Names of every op that `op` waits for, through data or control inputs."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent.name not in seen:
                seen.add(parent.name)
                stack.append(parent)
    return seen


@pytest.mark.parametrize("method", METHODS)
def test_large_weights_update_one_group_after_another(graph, monkeypatch, method):
    monkeypatch.setattr(model_pruning.pruning, "UPDATE_GROUP_SIZE", 64)
    names = ["big1", "small1", "small2", "big2", "big3"]
    for name, size in zip(names, [256, 16, 16, 256, 128]):
        values = np.random.RandomState(size).randn(size // 4, 4).astype(np.float32)
        model_pruning.apply_mask(variable(f"{name}/weights", values), name)
    update = model_pruning.Pruning(hparams(f"threshold_method={method}"),
                                   sparsity=tf.constant(0.5)).mask_update_op()
    assigns = {op.name.split("/")[-2]: op for op in update.control_inputs
               if op.name.endswith("/mask_assign")}
    assert sorted(assigns) == sorted(names)
    waits_for = {name: {other for other in names
                        if assigns[other].name in ancestor_names(assigns[name])}
                 for name in names}
    # Groups of at most 256 elements: [big1], [small1, small2], [big2], [big3].
    assert waits_for == {"big1": set(), "small1": {"big1"}, "small2": {"big1"},
                         "big2": {"big1", "small1", "small2"},
                         "big3": {"big1", "small1", "small2", "big2"}}


def test_missing_global_step_is_a_clear_error():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="needs a global step"):
            model_pruning.Pruning()


@pytest.mark.parametrize("text, fragment", [
    ("begin_pruning_step=-1", "begin_pruning_step must be >= 0"),
    ("begin_pruning_step=10,end_pruning_step=5", "end_pruning_step must be -1"),
    ("sparsity_function_begin_step=-1", "sparsity_function_begin_step must be >= 0"),
    ("sparsity_function_begin_step=100,sparsity_function_end_step=100",
     "sparsity_function_end_step must be >"),
    ("threshold_decay=1.0", "threshold_decay must be in \\[0, 1\\), got 1.0"),
    ("initial_sparsity=-0.1", "initial_sparsity must be in"),
    ("target_sparsity=1.2", "target_sparsity must be in \\[0, 1\\), got 1.2"),
    ("pruning_frequency=0", "pruning_frequency must be >= 1"),
    ("nbins=1", "nbins must be in \\[2, 4194304\\], got 1"),
    ("nbins=4194305", "nbins must be in \\[2, 4194304\\], got 4194305"),
    ("begin_pruning_step=18446744073709551616", "begin_pruning_step must be an int32"),
    ("block_height=2147483648", "block_height must be an int32, in \\[-2\\*\\*31, 2\\*\\*31\\)"),
    ("block_height=0", "block dims must be >= 1 \\(int32\\) or -1"),
    ("block_width=-2", "block dims must be >= 1 \\(int32\\) or -1"),
    ("block_pooling_function=SUM", "AVG, MAX, L2, got 'SUM'"),
    ("threshold_method=sort", "histogram, exact, got 'sort'"),
    ("sparsity_function_exponent=0", "sparsity_function_exponent must be > 0"),
    ("weight_sparsity_map=[conv1]", "conv1.*<regex>:<sparsity>"),
    ("weight_sparsity_map=[conv1:1.0]", "sparsity must be in \\[0, 1\\)"),
    ("weight_sparsity_map=[conv1:lots]", "'lots' is not a number"),
    ("weight_sparsity_map=[(conv:0.5]", "not a valid regex"),
    ("block_dims_map=[conv1:4]", "expected 2 integers"),
    ("block_dims_map=[conv1:4x0]", "block dims must be >= 1 \\(int32\\) or -1"),
    ("block_dims_map=[conv1:4x2147483648]", "block dims must be >= 1 \\(int32\\) or -1"),
])
def test_invalid_spec_fails_at_construction(graph, text, fragment):
    with pytest.raises(ValueError, match=fragment):
        model_pruning.Pruning(hparams(text))


def test_spec_may_be_a_string(graph):
    assert model_pruning.Pruning("name=from_text")._hparams.name == "from_text"


def test_histogram_threshold_is_smoothed_with_the_last_update_threshold(graph):
    """threshold_k = (1 - d) * raw_k + d * threshold_(k-1): the previous update's threshold,
    not the initial zero."""
    values = np.random.RandomState(3).randn(50, 40).astype(np.float32)
    sparsity = variable("sparsity", 0.5)
    model_pruning.apply_mask(variable("w", values), "layer")
    update = model_pruning.Pruning(hparams("threshold_decay=0.9"), sparsity=sparsity)
    update_op = update.mask_update_op()
    threshold = model_pruning.get_thresholds()[0]
    expected = 0.0
    with session_with_init() as session:
        for target in (0.5, 0.8, 0.9):
            session.run(sparsity.assign(target))
            session.run(update_op)
            expected = 0.1 * numpy_histogram_threshold(np.abs(values), target, 255) + 0.9 * expected
            np.testing.assert_allclose(session.run(threshold), expected, rtol=1e-5)


@pytest.mark.parametrize("step, smoothed", [(50, True), (99, True), (100, False), (150, False)])
def test_threshold_decay_applies_only_until_the_end_of_the_ramp(graph, step, smoothed):
    values = np.random.RandomState(4).randn(50, 40).astype(np.float32)
    masked = model_pruning.apply_mask(variable("w", values), "layer")
    update = model_pruning.Pruning(hparams("threshold_decay=0.9,target_sparsity=0.9,"
                                           "sparsity_function_end_step=100"))
    update_op = update.mask_update_op()
    with session_with_init() as session:
        session.run(tf.compat.v1.train.get_global_step().assign(step))
        scheduled = session.run(update.sparsity)
        session.run(update_op)
        raw = numpy_histogram_threshold(np.abs(values), scheduled, 255)
        expected = 0.1 * raw if smoothed else raw
        np.testing.assert_allclose(session.run(model_pruning.get_thresholds()[0]), expected,
                                   rtol=1e-5)
        if not smoothed:  # at the target, within one bin's share of the weights
            assert 0.9 - 0.01 <= 1 - np.count_nonzero(session.run(masked)) / values.size <= 0.9
