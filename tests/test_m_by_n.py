"""N:M sparsity (`sparsity_m_by_n`): the hparam's checks, the ramp of pattern-pruned groups
in `Pruning`, `masking_scope`, the reports of `inspect_checkpoint` and the strip tool, and the
cifar10 example trained 2:4 end to end; masks are checked against numpy."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import model_pruning
from examples.cifar10 import cifar10_pruning
from model_pruning import inspect_checkpoint, strip_pruning_vars
from model_pruning.spec import PruningSpec
from tests.numpy_reference import numpy_m_by_n_keep, numpy_m_by_n_violations
from tests.test_cifar10_example import _run
from tests.test_pruning import graph, session_with_init  # noqa: F401 (a fixture)
from tests.test_strip_cli import error_lines, run_without_tensorflow

TWO_FOUR = "sparsity_m_by_n=[2,4],threshold_decay=0.0"


def masked_variable(name, value, scope):
    weight = tf.compat.v1.get_variable(name, initializer=tf.constant(value))
    return model_pruning.apply_mask(weight, scope)


def test_off_by_default():
    assert model_pruning.get_pruning_hparams().sparsity_m_by_n == [0, 0]
    assert PruningSpec().m_by_n is None
    assert PruningSpec("sparsity_m_by_n=[]").m_by_n is None
    assert PruningSpec("sparsity_m_by_n=[2,4]").m_by_n == (2, 4)
    assert PruningSpec("sparsity_m_by_n=[1,4],target_sparsity=0.75").m_by_n == (1, 4)


@pytest.mark.parametrize("text, message", [
    ("sparsity_m_by_n=[4,2]", r"sparsity_m_by_n must be \[N,M\], keeping N of every M weights "
                              r"with 1 <= N < M < 2\*\*31 \(e.g. \[2,4\]\), or \[0,0\] for off; "
                              r"got \[4, 2\]"),
    ("sparsity_m_by_n=[2,2]", r"1 <= N < M .* got \[2, 2\]"),
    ("sparsity_m_by_n=[0,4]", r"1 <= N < M .* got \[0, 4\]"),
    ("sparsity_m_by_n=[2]", r"1 <= N < M .* got \[2\]"),
    ("sparsity_m_by_n=[1,2,4]", r"1 <= N < M .* got \[1, 2, 4\]"),
    ("sparsity_m_by_n=[1,4]", r"sparsity_m_by_n=\[1,4\] prunes every weight to 1 - 1/4: "
                              r"target_sparsity must be 0.75, got 0.5"),
    ("sparsity_m_by_n=[2,4],target_sparsity=0.9", r"target_sparsity must be 0.5, got 0.9"),
    ("sparsity_m_by_n=[2,4],block_height=-1", r"block_height and block_width must be 1, "
                                              r"got -1x1"),
    ("sparsity_m_by_n=[2,4],block_dims_map=[conv1:2x2]",
     r"sparsity_m_by_n=\[2,4\] prunes every weight to the same pattern: the block_dims_map "
     r"entry for 'conv1' cannot apply \(leave weights dense with do_not_prune\)"),
    ("sparsity_m_by_n=[2,4],weight_sparsity_map=[conv1:0.8]",
     r"the weight_sparsity_map entry for 'conv1' cannot apply"),
    ("sparsity_m_by_n=[2,4],criterion_map=[fc:magnitude,conv1:taylor]",
     r"the criterion_map entry for 'conv1' cannot apply"),
    ("sparsity_m_by_n=[2,4],criterion=taylor", r"criterion must be magnitude, got 'taylor'"),
    ("sparsity_m_by_n=[2,4],end_pruning_step=50",
     r"every group in the pattern at sparsity_function_end_step \(100\), so end_pruning_step "
     r"must be -1 or at least that, got 50"),
])
def test_invalid_combinations_name_the_value_and_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        PruningSpec(text)


def test_a_magnitude_criterion_map_entry_is_allowed():
    assert PruningSpec("sparsity_m_by_n=[2,4],criterion_map=[conv1:magnitude]").m_by_n == (2, 4)


def test_groups_ramp_with_the_schedule_and_all_keep_the_pattern_at_its_end(graph):
    rng = np.random.RandomState(0)
    values = {"fc": rng.randn(16, 6).astype(np.float32),
              "conv": rng.randn(3, 3, 10, 4).astype(np.float32)}
    masked = {scope: masked_variable(scope + "/weights", value, scope)
              for scope, value in values.items()}
    pruning = model_pruning.Pruning(TWO_FOUR + ",sparsity_function_end_step=40")
    update = pruning.mask_update_op()
    step = tf.compat.v1.train.get_global_step()
    pattern_groups = []
    with session_with_init() as session:
        for at in (0, 10, 20, 30, 40, 60):
            session.run(step.assign(at))
            session.run(update)
            sparsity = session.run(pruning.sparsity)
            results = session.run(masked)
            for scope, value in values.items():
                expected = numpy_m_by_n_keep(np.abs(value), 2, 4, sparsity / 0.5)
                np.testing.assert_array_equal(results[scope] != 0, expected, err_msg=scope)
            fc_groups = 6 * 4  # 16 inputs: 4 groups of 4 per output channel
            pattern_groups.append(fc_groups - numpy_m_by_n_violations(results["fc"], 2, 4)[0])
    assert pattern_groups == sorted(pattern_groups) and pattern_groups[0] == 0
    assert pattern_groups[-2:] == [24, 24]
    for value in results.values():
        assert numpy_m_by_n_violations(value, 2, 4)[0] == 0
    # 6 fc channels keep 2 of each 4 of 16 inputs; conv: 2 + 2 + 2 (of a padded 2) of 10.
    assert np.count_nonzero(results["fc"]) == 6 * 8
    assert np.count_nonzero(results["conv"]) == 3 * 3 * 4 * 6


def test_threshold_is_the_largest_magnitude_removed(graph):
    value = np.random.RandomState(1).randn(8, 5).astype(np.float32)
    masked = masked_variable("w", value, "layer")
    update = model_pruning.Pruning(TWO_FOUR + ",sparsity_function_end_step=1").mask_update_op()
    with session_with_init() as session:
        session.run(tf.compat.v1.train.get_global_step().assign(1))
        session.run(update)
        kept = session.run(masked) != 0
        threshold = session.run(model_pruning.get_thresholds()[0])
    np.testing.assert_array_equal(kept, numpy_m_by_n_keep(np.abs(value), 2, 4))
    assert threshold == np.abs(value)[~kept].max()


def test_an_external_sparsity_sets_the_fraction_of_pattern_groups(graph):
    value = np.random.RandomState(2).randn(32, 3).astype(np.float32)
    masked = masked_variable("w", value, "layer")
    sparsity = tf.compat.v1.get_variable("s", initializer=0.2)
    update = model_pruning.Pruning(TWO_FOUR, sparsity=sparsity).mask_update_op()
    with session_with_init() as session:
        for target in (0.2, 0.5):
            session.run(sparsity.assign(target))
            session.run(update)
            np.testing.assert_array_equal(session.run(masked) != 0, numpy_m_by_n_keep(
                np.abs(value), 2, 4, np.float32(target) / np.float32(0.5)))


def test_masking_scope_and_do_not_prune(graph):
    images = tf.random.uniform([2, 8, 8, 6])
    with model_pruning.masking_scope():
        net = slim.conv2d(images, 8, [3, 3], scope="conv1")
        net = slim.conv2d(net, 8, [3, 3], scope="conv2")
        slim.fully_connected(slim.flatten(net), 10, scope="logits")
    pruning = model_pruning.Pruning(TWO_FOUR + ",do_not_prune=[conv2],sparsity_function_end_step=1")
    update = pruning.mask_update_op()
    with session_with_init() as session:
        session.run(tf.compat.v1.train.get_global_step().assign(1))
        session.run(update)
        weights = session.run(model_pruning.get_weights())
        masked = session.run(model_pruning.get_masked_weights())
    names = [weight.op.name for weight in model_pruning.get_weights()]
    assert names == ["conv1/weights", "conv2/weights", "logits/weights"]
    for name, weight, value in zip(names, weights, masked):
        if name == "conv2/weights":
            np.testing.assert_array_equal(value, weight)
            assert numpy_m_by_n_violations(value, 2, 4)[0] > 0
        else:
            np.testing.assert_array_equal(value != 0, numpy_m_by_n_keep(np.abs(weight), 2, 4))


def test_a_weight_of_rank_one_is_an_error_naming_it(graph):
    masked_variable("bias", np.ones(8, np.float32), "layer")
    pruning = model_pruning.Pruning(TWO_FOUR)
    with pytest.raises(ValueError, match=r"sparsity_m_by_n=\[2,4\] groups a kernel along its "
                                         r"input axis.*bias has shape \(8,\): leave it out "
                                         r"with do_not_prune"):
        pruning.mask_update_op()


def kernels():
    """A kernel [in=8, out=3] that keeps 2:4, one of [kh, kw, in=6, out] that does not (its
    first group of channel 0 keeps 3), and a vector."""
    rng = np.random.RandomState(3)
    fc = rng.randn(8, 3).astype(np.float32) * numpy_m_by_n_keep(rng.rand(8, 3), 2, 4)
    conv = rng.randn(2, 2, 6, 2).astype(np.float32) * numpy_m_by_n_keep(rng.rand(2, 2, 6, 2), 2, 4)
    conv[0, 0, :3, 0] = 1.0
    return {"fc/weights": fc, "conv/weights": conv, "bias/weights": np.ones(4, np.float32)}


def test_strip_layer_table_says_whether_each_kernel_keeps_the_pattern():
    table = strip_pruning_vars.layer_table(list(kernels().items()), (2, 4))
    assert re.fullmatch(r"masked weight +shape +nonzeros +sparsity +2:4", table[0])
    rows = {line.split()[0]: line for line in table[1:]}
    assert rows["fc/weights"].endswith("  yes")
    groups = 2 * 2 * 2 * 2  # 6 inputs: a group of 4 and a padded 2, per (kh, kw, out)
    assert rows["conv/weights"].endswith(f"  no (1/{groups} groups)")
    assert rows["bias/weights"].endswith("  n/a (rank < 2)")
    assert "2:4" not in strip_pruning_vars.layer_table(list(kernels().items()))[0]


@pytest.fixture(scope="module")
def kernel_checkpoint(tmp_path_factory):
    """fc's mask is all ones, and its weight keeps 2:4: the check reads mask * weight."""
    values = {name: value for name, value in kernels().items() if name != "bias/weights"}
    values["fc/mask"] = np.ones_like(values["fc/weights"])
    values["conv/mask"] = (values["conv/weights"] != 0).astype(np.float32)
    prefix = str(tmp_path_factory.mktemp("ckpt") / "model.ckpt")
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=value)
                     for name, value in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(session, prefix)
    return prefix


def inspect(capsys, *args):
    status = inspect_checkpoint.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("flag", ["--m_by_n=2:4", "--m_by_n=2,4",
                                  "--pruning_hparams=sparsity_m_by_n=[2,4]"])
def test_inspect_says_whether_each_kernel_keeps_the_pattern(kernel_checkpoint, capsys, flag):
    status, out, _ = inspect(capsys, kernel_checkpoint, flag)
    assert status == 0
    assert re.search(r"^masked weight +shape +nonzeros +sparsity +2:4$", out, re.M), out
    assert re.search(r"^fc/weights +8x3 .* yes$", out, re.M), out
    assert re.search(r"^conv/weights +2x2x6x2 .* no \(1/16 groups\)$", out, re.M), out
    assert re.search(r"^all 2 .* no \(1/22 groups\)$", out, re.M), out  # fc: 2 groups x 3


def test_inspect_reports_the_fraction_of_pattern_groups_at_the_step(tmp_path, capsys):
    prefix = tmp_path / "model.ckpt"
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable("fc/weights", initializer=np.ones([4, 2], "f")),
                     tf.compat.v1.get_variable("fc/mask", initializer=np.ones([4, 2], "f")),
                     tf.compat.v1.get_variable("global_step", initializer=np.int64(5))]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(session, str(prefix))
    hparams = "sparsity_m_by_n=[2,4],sparsity_function_end_step=10,sparsity_function_exponent=1"
    _, out, _ = inspect(capsys, prefix, f"--pruning_hparams={hparams}")
    # Linear ramp to 0.5 over 10 steps: 0.25 at step 5, half the groups.
    assert "step 5: schedule target 25.00%" in out
    assert "; sparsity_m_by_n: 50.00% of each weight's groups of 4 keep 2" in out
    assert re.search(r"^fc/weights +4x2 .* no \(2/2 groups\)$", out, re.M), out


@pytest.mark.parametrize("module", ["model_pruning.inspect_checkpoint",
                                    "model_pruning.strip_pruning_vars"])
@pytest.mark.parametrize("value", ["4:2", "2", "2:4:8", "0:4", "a:b"])
def test_a_bad_m_by_n_flag_is_a_one_line_error_before_tensorflow(module, value):
    args = (["ckpt"] if module.endswith("inspect_checkpoint") else
            ["--checkpoint_dir=ckpt", "--output_node_names=logits"])
    status, _, err = run_without_tensorflow(module, *args, f"--m_by_n={value}")
    assert status == 2
    [line] = error_lines(err)
    assert line.endswith(f"argument --m_by_n: {value!r} is not an N:M pattern: give the weights "
                         "kept and the group size as N:M with 1 <= N < M (e.g. 2:4) "
                         "(see --help)"), line


# A ramp over steps 2-10, updates every 4 steps; the update at step 12 is past the ramp.
EXAMPLE_HPARAMS = ("name=cifar10_pruning,begin_pruning_step=2,sparsity_m_by_n=[2,4],"
                   "sparsity_function_begin_step=2,sparsity_function_end_step=10,"
                   "pruning_frequency=4")
LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")


@pytest.mark.long  # an end-to-end run of the example (~20 s)
def test_cifar10_example_trained_2_4_keeps_the_pattern_in_training_and_after_strip(tmp_path):
    train_dir = tmp_path / "train"
    _run("examples.cifar10.cifar10_train", f"--train_dir={train_dir}",
         f"--data_dir={tmp_path / 'data'}", "--batch_size=16", "--max_steps=12", "--seed=1",
         f"--pruning_hparams={EXAMPLE_HPARAMS}")
    reader = tf.train.load_checkpoint(str(train_dir))
    for layer in LAYERS:
        effective = reader.get_tensor(f"{layer}/mask") * reader.get_tensor(f"{layer}/weights")
        violations, groups = numpy_m_by_n_violations(effective, 2, 4)
        assert violations == 0, layer
        in_channels = effective.shape[-2]
        # Every group keeps exactly 2 (conv1: 2 of its 3 input channels).
        assert np.count_nonzero(effective) == 2 * groups == \
            effective.size // in_channels * 2 * -(-in_channels // 4), layer

    output = _run("model_pruning.strip_pruning_vars", f"--checkpoint_dir={train_dir}",
                  f"--output_node_names={cifar10_pruning.LOGITS_NODE}",
                  "--input_node_names=IteratorGetNext", "--input_shapes=-1,24,24,3",
                  f"--output_dir={tmp_path}", "--m_by_n=2:4")
    table = dict(re.findall(r"^(\S+)/weights/masked_weight\s.*\s(\S+)$", output, re.M))
    assert table == {layer: "yes" for layer in LAYERS}, output
    graph_def = tf.compat.v1.GraphDef.FromString(
        (tmp_path / "pruning_stripped.pb").read_bytes())
    folded = {node.name: tf.make_ndarray(node.attr["value"].tensor) for node in graph_def.node
              if node.name.endswith("/weights/masked_weight")}
    assert sorted(folded) == sorted(f"{layer}/weights/masked_weight" for layer in LAYERS)
    for name, value in folded.items():
        assert value.shape == reader.get_tensor(name.split("/")[0] + "/weights").shape
        assert numpy_m_by_n_violations(value, 2, 4)[0] == 0, name
