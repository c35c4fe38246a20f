"""Freezing and folding (`freeze`, `fold`, and contrib's `strip_pruning_vars_lib` that
re-exports them), checked against numpy mask * weight (the CLI: test_strip_cli.py).

Each model is pruned once to an exact sparsity (threshold_method=exact), frozen, stripped and
run. Frozen and stripped graphs are run with grappler off: with it on, oneDNN picks other
fused kernels once a weight is a constant and results move by ~1e-10, which would hide
whether stripping itself changed anything.
"""

import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from model_pruning import fold, freeze, graphdef, strip_pruning_vars_lib
from model_pruning.fold import strip_pruning_vars_fn
from model_pruning.freeze import graph_def_from_checkpoint

SPARSITIES = [0.5, 0.9]
_RNG = np.random.RandomState(0)


def exact_config():
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def prune_once(sparsity):
    """Builds a Pruning with a fixed sparsity in the default graph; returns its update op."""
    hparams = model_pruning.get_pruning_hparams().parse("threshold_method=exact")
    global_step = tf.compat.v1.train.get_or_create_global_step()
    return model_pruning.Pruning(hparams, global_step=global_step,
                                 sparsity=tf.constant(sparsity)).mask_update_op()


def prune_and_freeze(build, sparsity):
    """Builds `build()` in its own graph, prunes it once to `sparsity` and freezes `output`.

    `build` returns the feeds {placeholder name: value}.
    Returns (frozen GraphDef, feeds, list of numpy mask * weight).
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        feeds = build()
        update = prune_once(sparsity)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            masks, weights = session.run([model_pruning.get_masks(),
                                          model_pruning.get_weights()])
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["output"])
    return frozen, feeds, [mask * weight for mask, weight in zip(masks, weights)]


def run_graph_def(graph_def, feeds, output="output"):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph, config=exact_config()) as session:
        return session.run(output + ":0", {name + ":0": value for name, value in feeds.items()})


def all_names(graph_def):
    """Node names of the graph and of its functions, and the functions' argument names."""
    names = [node.name for node in graph_def.node]
    for function in graph_def.library.function:
        names += [node.name for node in function.node_def]
        names += [arg.name for arg in function.signature.input_arg]
    return names


def pruning_var_names(graph_def):
    """Names with a `mask` or `threshold` part (`last_mask_update_step` included), split at
    `/` and at the `_` that joins parts in function argument names."""
    return [name for name in all_names(graph_def)
            if {"mask", "threshold"} & set(re.split(r"[/_]", name))]


def mask_nodes(graph_def):
    return [name for name in all_names(graph_def) if re.search(r"(^|/)mask$", name)]


def folded_values(graph_def):
    return [tf.make_ndarray(node.attr["value"].tensor)
            for _, node in graphdef.masked_weight_nodes(graph_def)
            if node.op == "Const"]


def assert_strips_exactly(build, sparsity, num_masked):
    """Frozen graph has `num_masked` masks; stripped graph has no pruning variable, holds
    numpy's mask * weight, has the exact sparsity and gives bit-identical outputs."""
    frozen, feeds, products = prune_and_freeze(build, sparsity)
    stripped = strip_pruning_vars_fn(frozen, ["output"])

    assert len(mask_nodes(frozen)) == num_masked
    assert pruning_var_names(stripped) == []
    folded = folded_values(stripped)
    assert sorted(v.tobytes() for v in folded) == sorted(p.tobytes() for p in products)
    for value in folded:  # the sparsity reaches Pruning as a float32
        assert np.count_nonzero(value) == round(value.size * (1 - float(np.float32(sparsity))))
    assert run_graph_def(stripped, feeds).tobytes() == run_graph_def(frozen, feeds).tobytes()
    return frozen, stripped


def input_placeholder(shape):
    value = _RNG.uniform(-1, 1, shape).astype(np.float32)
    placeholder = tf.compat.v1.placeholder(tf.float32, [None, *shape[1:]], name="input")
    return placeholder, {"input": value}


def weight(name, shape):
    return tf.compat.v1.get_variable(name, shape,
                                     initializer=tf.compat.v1.random_normal_initializer())


def conv_model_with_apply_mask():
    net, feeds = input_placeholder((8, 7, 9, 4))
    for i, depth in enumerate([11, 18, 25, 32, 39]):
        with tf.compat.v1.variable_scope(f"conv{i}"):
            kernel = weight("weights", [3, 3, net.shape[-1], depth])
            net = tf.nn.relu(tf.nn.conv2d(net, model_pruning.apply_mask(kernel), 1, "SAME"))
    tf.identity(net, name="output")
    return feeds


def fc_model_with_apply_mask():
    net, feeds = input_placeholder((8, 4))
    for i, units in enumerate([20, 15, 3]):
        with tf.compat.v1.variable_scope(f"fc{i}"):
            net = tf.matmul(net, model_pruning.apply_mask(weight("weights", [net.shape[-1],
                                                                             units])))
    tf.identity(net, name="output")
    return feeds


def conv_model_with_layers():
    layers = pytest.importorskip("model_pruning.layers")
    net, feeds = input_placeholder((8, 7, 9, 4))
    with tf.compat.v1.variable_scope("conv_model"):
        for depth in [11, 18, 25, 32, 39]:
            net = layers.masked_conv2d(net, depth, 3)
    tf.identity(net, name="output")
    return feeds


def fc_model_with_layers():
    layers = pytest.importorskip("model_pruning.layers")
    net, feeds = input_placeholder((8, 4))
    with tf.compat.v1.variable_scope("fc_model"):
        for units in [20, 15, 3]:
            net = layers.masked_fully_connected(net, units)
    tf.identity(net, name="output")
    return feeds


def stacked_lstm_cell():
    rnn_cells = pytest.importorskip("model_pruning.rnn_cells")
    return model_pruning.compat.MultiRNNCell(
        [rnn_cells.MaskedBasicLSTMCell(10, forget_bias=0.0, reuse=False) for _ in range(2)])


def static_lstm_model():
    cell = stacked_lstm_cell()
    inputs, feeds = input_placeholder((8, 3, 10))
    outputs, _ = tf.compat.v1.nn.static_rnn(cell, tf.unstack(inputs, axis=1), dtype=tf.float32)
    tf.identity(outputs[-1], name="output")
    return feeds


def dynamic_lstm_model():
    cell = stacked_lstm_cell()
    inputs, feeds = input_placeholder((8, 3, 10))
    outputs, _ = tf.compat.v1.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
    tf.identity(outputs, name="output")
    return feeds


def masked_loop(h, scope, steps=3):
    """A while loop whose body multiplies by a masked weight created inside the body."""
    kernel = weight(f"{scope}/weights", [h.shape[-1], h.shape[-1]])

    def body(i, h):
        return i + 1, tf.tanh(tf.matmul(h, model_pruning.apply_mask(kernel, scope)))

    return tf.compat.v1.while_loop(lambda i, _: i < steps, body, [0, h])[1]


def while_loop_model():
    inputs, feeds = input_placeholder((8, 6))
    tf.identity(masked_loop(inputs, "loop"), name="output")
    return feeds


def nested_while_loop_model():
    inputs, feeds = input_placeholder((8, 6))
    outer = tf.compat.v1.while_loop(
        lambda i, _: i < 2, lambda i, h: (i + 1, masked_loop(h, "inner")), [0, inputs])[1]
    tf.identity(outer, name="output")
    return feeds


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("build, num_masked", [
    (conv_model_with_apply_mask, 5),
    (fc_model_with_apply_mask, 3),
    (conv_model_with_layers, 5),
    (fc_model_with_layers, 3),
    (static_lstm_model, 2),
    (dynamic_lstm_model, 2),
], ids=["conv-apply_mask", "fc-apply_mask", "conv-layers", "fc-layers", "lstm-static_rnn",
        "lstm-dynamic_rnn"])
def test_strip_folds_every_mask(build, num_masked, sparsity):
    assert_strips_exactly(build, sparsity, num_masked)


@pytest.fixture
def tf1_control_flow():
    """Builds while loops as TF1 Enter/Exit frames, as graphs saved by TF 1.x have them."""
    was_v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()
    yield
    if was_v2:
        tf.compat.v1.enable_control_flow_v2()


@pytest.mark.parametrize("build", [while_loop_model, nested_while_loop_model])
def test_strip_folds_mask_inside_functional_while_loops(build):
    _, stripped = assert_strips_exactly(build, 0.9, 1)
    [(scope, node)] = graphdef.masked_weight_nodes(stripped)
    assert node.op == "Const" and "while_body" in scope


def test_strip_folds_mask_inside_tf1_while_frame(tf1_control_flow):
    frozen, stripped = assert_strips_exactly(while_loop_model, 0.9, 1)
    assert any(node.op == "Enter" for node in frozen.node)
    assert not stripped.library.function


def test_strip_folds_lstm_inside_tf1_while_frame(tf1_control_flow):
    assert_strips_exactly(dynamic_lstm_model, 0.5, 2)


def test_strip_needs_no_feed_when_a_masked_weight_depends_on_the_input(caplog):
    """Contrib evaluated every node named like a masked weight with no feed, so one computed
    from the input placeholder failed with "You must feed a value". Folding never runs the
    graph: that product is left as is, with a warning, and the real masks still fold."""

    def model_with_input_dependent_product():
        inputs, feeds = input_placeholder((8, 4))
        scaled = tf.multiply(inputs, 2.0, name="scale/masked_weight")
        with tf.compat.v1.variable_scope("fc"):
            masked = model_pruning.apply_mask(weight("weights", [4, 3]))
        tf.identity(tf.matmul(scaled, masked), name="output")
        return feeds

    frozen, feeds, [product] = prune_and_freeze(model_with_input_dependent_product, 0.5)
    with caplog.at_level(logging.WARNING, logger=fold.__name__):
        stripped = strip_pruning_vars_fn(frozen, ["output"])
    assert "Masked weight scale/masked_weight in the graph was left as is: its value comes " \
           "from input, a Placeholder node" in caplog.text
    assert pruning_var_names(stripped) == []
    assert [v.tobytes() for v in folded_values(stripped)] == [product.tobytes()]
    assert run_graph_def(stripped, feeds).tobytes() == run_graph_def(frozen, feeds).tobytes()


def test_strip_does_not_modify_its_input_or_the_default_graph():
    frozen, _, _ = prune_and_freeze(fc_model_with_apply_mask, 0.5)
    before = frozen.SerializeToString()
    with tf.Graph().as_default() as caller_graph:
        strip_pruning_vars_fn(frozen, ["output"])
        assert caller_graph.get_operations() == []
    assert frozen.SerializeToString() == before


def test_strip_accepts_tensor_names_and_comma_separated_string():
    frozen, _, _ = prune_and_freeze(fc_model_with_apply_mask, 0.5)
    by_list = strip_pruning_vars_fn(frozen, ["output"])
    by_string = strip_pruning_vars_fn(frozen, " output:0 ,")
    assert by_string == by_list


def test_strip_without_masked_weights_warns_and_still_gives_a_valid_graph(caplog):
    def plain_model():
        inputs, feeds = input_placeholder((8, 4))
        tf.identity(tf.matmul(inputs, tf.ones([4, 2])), name="output")
        return feeds

    graph = tf.Graph()
    with graph.as_default():
        feeds = plain_model()
    with caplog.at_level(logging.WARNING, logger=fold.__name__):
        stripped = strip_pruning_vars_fn(graph.as_graph_def(), ["output"])
    assert "no masked weight" in caplog.text
    np.testing.assert_array_equal(run_graph_def(stripped, feeds),
                                  feeds["input"] @ np.ones([4, 2], np.float32))


def test_strip_rejects_missing_output_node_with_close_names():
    frozen, _, _ = prune_and_freeze(fc_model_with_apply_mask, 0.5)
    with pytest.raises(ValueError, match=r"Output node 'outptu' is not in the graph\. "
                                         r"Close names: output"):
        strip_pruning_vars_fn(frozen, ["outptu"])


@pytest.mark.parametrize("names", [[], "", " , "])
def test_strip_rejects_empty_output_node_names(names):
    with pytest.raises(ValueError, match="output_node_names is empty"):
        strip_pruning_vars_fn(tf.compat.v1.GraphDef(), names)


def test_strip_rejects_a_graph_that_is_not_frozen():
    graph = tf.Graph()
    with graph.as_default():
        fc_model_with_apply_mask()
    with pytest.raises(ValueError, match=r"not frozen: fc0/weights/masked_weight/ReadVariableOp "
                                         r"is a ReadVariableOp node"):
        strip_pruning_vars_fn(graph.as_graph_def(), ["output"])


def save_pruned_checkpoints(directory, sparsities):
    """Trains nothing: prunes the fc model to each sparsity in turn and saves a checkpoint
    at steps 1, 2, ... Returns the feeds."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        feeds = fc_model_with_apply_mask()
        sparsity = tf.compat.v1.placeholder(tf.float32, [])
        hparams = model_pruning.get_pruning_hparams().parse("threshold_method=exact")
        global_step = tf.compat.v1.train.get_or_create_global_step()
        update = model_pruning.Pruning(hparams, global_step=global_step,
                                       sparsity=sparsity).mask_update_op()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for step, value in enumerate(sparsities, start=1):
                session.run(update, {sparsity: value})
                saver.save(session, os.path.join(directory, "model.ckpt"), global_step=step)
    return feeds


def sparsities_of(graph_def):
    return [1 - np.count_nonzero(v) / v.size for v in folded_values(graph_def)]


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """Checkpoints of the fc model at 50% (step 1) and 90% (step 2, the latest)."""
    directory = str(tmp_path_factory.mktemp("train"))
    return directory, save_pruned_checkpoints(directory, [0.5, 0.9])


def test_graph_def_from_checkpoint_freezes_latest_in_a_private_graph(checkpoint_dir):
    directory, feeds = checkpoint_dir
    with tf.Graph().as_default() as caller_graph:
        frozen = graph_def_from_checkpoint(directory, ["output"])
        again = graph_def_from_checkpoint(directory, ["output"])
        stripped = strip_pruning_vars_fn(frozen, ["output"])
        assert caller_graph.get_operations() == []
    assert again == frozen
    assert len(mask_nodes(frozen)) == 3
    assert pruning_var_names(stripped) == []
    assert sparsities_of(stripped) == pytest.approx([0.9] * 3, abs=0.02)
    assert run_graph_def(stripped, feeds).tobytes() == run_graph_def(frozen, feeds).tobytes()


@pytest.mark.parametrize("relative", [False, True])
def test_graph_def_from_checkpoint_uses_a_given_checkpoint(checkpoint_dir, relative):
    directory, _ = checkpoint_dir
    prefix = "model.ckpt-1" if relative else os.path.join(directory, "model.ckpt-1")
    frozen = graph_def_from_checkpoint(directory, ["output"], checkpoint=prefix)
    assert sparsities_of(strip_pruning_vars_fn(frozen, ["output"])) == \
        pytest.approx([0.5] * 3, abs=0.04)


def test_graph_def_from_checkpoint_rejects_missing_checkpoint_prefix(checkpoint_dir):
    directory, _ = checkpoint_dir
    with pytest.raises(ValueError, match=r"Checkpoint 'model.ckpt-7' not found: none of "
                                         r"model.ckpt-7.index, .*model.ckpt-7.index exists"):
        graph_def_from_checkpoint(directory, ["output"], checkpoint="model.ckpt-7")


def test_graph_def_from_checkpoint_needs_the_meta_graph(tmp_path):
    (tmp_path / "model.ckpt-5.index").write_text("")
    with pytest.raises(ValueError, match=r"model.ckpt-5 has no meta graph .*model.ckpt-5.meta "
                                         r"\(was it saved with write_meta_graph=False\?\)"):
        graph_def_from_checkpoint(str(tmp_path), ["output"], checkpoint="model.ckpt-5")


def test_graph_def_from_checkpoint_rejects_missing_output_node(checkpoint_dir):
    directory, _ = checkpoint_dir
    with pytest.raises(ValueError, match=r"Output node 'fc2/weight' is not in the graph\. "
                                         r"Close names: fc2/weights"):
        graph_def_from_checkpoint(directory, ["fc2/weight"])


def test_no_checkpoint_in_empty_directory(tmp_path):
    with pytest.raises(ValueError, match=rf"Could not find a checkpoint at: {tmp_path} "
                                         r"\(it is empty\)"):
        graph_def_from_checkpoint(str(tmp_path), ["output"])


def test_no_checkpoint_in_missing_directory(tmp_path):
    with pytest.raises(ValueError, match=r"Could not find a checkpoint at: .*nowhere "
                                         r"\(it does not exist\)"):
        graph_def_from_checkpoint(str(tmp_path / "nowhere"), ["output"])


def test_no_checkpoint_state_file_lists_contents_and_suggests_a_prefix(tmp_path):
    for name in ["model.ckpt-3.index", "model.ckpt-3.meta", "notes.txt"]:
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=r"it holds model.ckpt-3.index, model.ckpt-3.meta, "
                                         r"notes.txt; .* --checkpoint, e.g. model.ckpt-3"):
        graph_def_from_checkpoint(str(tmp_path), ["output"])


def test_no_checkpoint_dir_given():
    with pytest.raises(ValueError, match="No checkpoint_dir given"):
        graph_def_from_checkpoint("", ["output"])



@pytest.mark.parametrize("dtype", [tf.float64, tf.float16], ids=["float64", "float16"])
def test_strip_keeps_the_weights_dtype(dtype):
    """A float64 or float16 product folded as float32 would not even import."""

    def fc_model():
        inputs = tf.compat.v1.placeholder(dtype, [None, 4], name="input")
        with tf.compat.v1.variable_scope("fc"):
            kernel = tf.compat.v1.get_variable(
                "weights", [4, 3], dtype=dtype,
                initializer=tf.compat.v1.random_normal_initializer())
            masked = model_pruning.apply_mask(kernel)
        tf.identity(tf.matmul(inputs, masked), name="output")
        return {"input": _RNG.uniform(-1, 1, (8, 4)).astype(dtype.as_numpy_dtype)}

    _, stripped = assert_strips_exactly(fc_model, 0.5, 1)
    assert [value.dtype for value in folded_values(stripped)] == [dtype.as_numpy_dtype]
    graphdef.check_graph_loads(stripped)


def save_tf_data_checkpoint(directory):
    """Saves, as training does, an fc model that reads (features, scale, label) batches from a
    tf.data iterator and waits, by a control dependency, for a second iterator.

    Returns {tensor name: the first batch's value} of the inputs, and the first batch's output.
    """
    rng = np.random.RandomState(3)
    features = rng.uniform(-1, 1, (6, 4)).astype(np.float32)
    scales = rng.uniform(1, 2, 6).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        dataset = tf.data.Dataset.from_tensor_slices((features, scales, np.arange(6)))
        batch, scale, _ = tf.compat.v1.data.make_one_shot_iterator(
            dataset.batch(3).repeat()).get_next()
        warm_up = tf.compat.v1.data.make_one_shot_iterator(tf.data.Dataset.range(9)).get_next()
        with tf.compat.v1.variable_scope("fc"):
            masked = model_pruning.apply_mask(weight("weights", [4, 3]))
        with tf.control_dependencies([warm_up]):
            output = tf.identity(tf.matmul(batch, masked) * scale[:, None], name="output")
        update = prune_once(0.5)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update)
            first_output = session.run(output)
            tf.compat.v1.train.Saver().save(session, os.path.join(directory, "model.ckpt"))
    return {"IteratorGetNext": features[:3], "IteratorGetNext_1_1": scales[:3]}, first_output


@pytest.fixture(scope="module")
def tf_data_checkpoint(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tf_data"))
    return (directory, *save_tf_data_checkpoint(directory))


def input_pipeline_ops(graph_def):
    return [node.op for node in graph_def.node
            if re.search("Dataset|Iterator|Queue|Reader", node.op)]


def test_named_inputs_become_placeholders_and_the_input_pipeline_is_left_out(
        tf_data_checkpoint):
    directory, feeds, first_output = tf_data_checkpoint
    frozen = graph_def_from_checkpoint(directory, "output",
                                       input_node_names="IteratorGetNext,IteratorGetNext:1",
                                       input_shapes=[[None, 4], [None]])
    assert input_pipeline_ops(frozen) == []
    placeholders = {node.name: (node.attr["dtype"].type, tf.TensorShape(node.attr["shape"].shape))
                    for node in frozen.node if node.op == "Placeholder"}
    # Output 1's placeholder would be IteratorGetNext_1, but the second iterator has that name.
    assert placeholders == {"IteratorGetNext": (tf.float32.as_datatype_enum, [None, 4]),
                            "IteratorGetNext_1_1": (tf.float32.as_datatype_enum, [None])}
    stripped = strip_pruning_vars_fn(frozen, "output")
    graphdef.check_graph_loads(stripped)
    assert run_graph_def(stripped, feeds).tobytes() == run_graph_def(frozen, feeds).tobytes()
    # The training graph computed mask * weight at run time, the stripped one reads it as a
    # constant: oneDNN may then sum in another order, which moves a result by about 1 ULP.
    np.testing.assert_allclose(run_graph_def(stripped, feeds), first_output, rtol=1e-6)


def test_a_graph_reading_its_input_pipeline_still_loads_and_says_what_to_feed(
        tf_data_checkpoint, caplog):
    """The stripped graph keeps the iterator but not the dataset nodes it is colocated with:
    those colocation entries are removed, or TensorFlow would refuse to import the graph."""
    directory, _, _ = tf_data_checkpoint
    with caplog.at_level(logging.WARNING, logger=freeze.__name__):
        frozen = graph_def_from_checkpoint(directory, "output")
    assert "read the training input pipeline at IteratorGetNext:0, IteratorGetNext:1; to feed " \
           "the model instead, pass input_node_names=IteratorGetNext:0,IteratorGetNext:1" \
           in caplog.text
    assert "OneShotIterator" in input_pipeline_ops(frozen)
    graphdef.check_graph_loads(frozen)
    graphdef.check_graph_loads(strip_pruning_vars_fn(frozen, "output"))


@pytest.mark.parametrize("inputs, shapes, message", [
    ("IteratorGetNxt", None,
     r"Input node 'IteratorGetNxt' is not in the graph\. Close names: IteratorGetNext"),
    ("IteratorGetNext:3", None, r"Input tensor 'IteratorGetNext:3' is not in the graph: "
                                r"IteratorGetNext has 3 outputs, IteratorGetNext:0 to "
                                r"IteratorGetNext:2"),
    ("IteratorGetNext", [[4]], r"input_shapes gives IteratorGetNext:0 the shape \[4\]; the "
                               r"tensor has rank 2 \(shape \(None, 4\)\)"),
    ("IteratorGetNext", [[None, 4], [None]],
     r"input_shapes gives 2 shapes for the 1 input_node_names IteratorGetNext:0"),
    (" , ", None, r"input_node_names is empty"),
], ids=["missing node", "missing output", "rank", "count", "empty"])
def test_input_errors_name_the_input(tf_data_checkpoint, inputs, shapes, message):
    directory, _, _ = tf_data_checkpoint
    with pytest.raises(ValueError, match=message):
        graph_def_from_checkpoint(directory, "output", input_node_names=inputs,
                                  input_shapes=shapes)


def colocated_graph_def():
    """`b` is colocated with `a`, and reads nothing from it."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf.constant(1.0, name="a")
        with tf.compat.v1.colocate_with(a):
            tf.constant(2.0, name="b")
    return graph.as_graph_def()


def test_keep_reachable_drops_colocations_with_removed_nodes():
    graph_def = colocated_graph_def()
    assert list(graph_def.node[1].attr["_class"].list.s) == [b"loc:@a"]
    graphdef.keep_reachable(graph_def, ["b"])
    assert [(node.name, "_class" in node.attr) for node in graph_def.node] == [("b", False)]
    graphdef.check_graph_loads(graph_def)


def test_check_graph_loads_names_the_bad_node_in_one_line():
    graph_def = colocated_graph_def()
    del graph_def.node[0]
    with pytest.raises(ValueError) as error:
        graphdef.check_graph_loads(graph_def)
    assert str(error.value) == ("The graph would not load: Node 'b' expects to be colocated "
                                "with unknown node 'a'")


@pytest.mark.parametrize("name", [
    "graph_def_from_checkpoint", "strip_pruning_vars_fn", "check_graph_loads", "check_node_names",
    "checkpoint_path", "find_checkpoint", "folded_weights", "keep_reachable",
    "masked_weight_nodes", "normalize_node_names", "normalize_tensor_names", "open_checkpoint",
    "read_tensor", "reachable_nodes"])
def test_strip_pruning_vars_lib_keeps_its_names(name):
    """Contrib's module re-exports what it used to define, from freeze, fold and graphdef."""
    assert getattr(strip_pruning_vars_lib, name).__module__ in (
        freeze.__name__, fold.__name__, graphdef.__name__)
