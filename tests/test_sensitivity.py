"""One-shot sweeps and per-layer sensitivity (`model_pruning.sensitivity`) against numpy."""

import numpy as np
import pytest
import tensorflow as tf

import model_pruning
from model_pruning import sensitivity
from model_pruning.spec import PruningSpec
from tests.numpy_reference import numpy_exact_keep

SPARSITIES = [0.25, 0.5, 0.75, 0.9]
RNG = np.random.RandomState(0)
W1 = RNG.randn(6, 8).astype(np.float32)
W2 = RNG.randn(8, 3).astype(np.float32)
# Already pruned: the analysis starts from these masks and must leave them so.
M1 = (RNG.rand(6, 8) > 0.2).astype(np.float32)
M2 = np.ones([8, 3], np.float32)
INPUTS = RNG.randn(5, 6).astype(np.float32)


def numpy_one_shot(weight, mask, sparsity, granularity):
    """The mask that keeps the largest |mask * w| (by weight) or column L2 norms (by channel),
    and nothing the old mask prunes."""
    magnitudes = np.abs(weight * mask)
    if granularity == "weight":
        return numpy_exact_keep(magnitudes, sparsity) * mask
    norms = np.sqrt((magnitudes ** 2).mean(axis=0, keepdims=True))
    return np.broadcast_to(numpy_exact_keep(norms, sparsity), weight.shape) * mask


def numpy_metric(m1, m2):
    return float(np.sum(np.maximum(INPUTS @ (m1 * W1), 0) @ (m2 * W2)))


def two_layer_model():
    """Graph, session and evaluate() of relu(x @ (m1 * w1)) @ (m2 * w2), masks M1 and M2."""
    graph = tf.Graph()
    with graph.as_default():
        layers = []
        for name, weight in (("fc1", W1), ("fc2", W2)):
            variable = tf.compat.v1.get_variable(f"{name}/weights", initializer=weight)
            layers.append(model_pruning.apply_mask(variable, name))
        output = tf.reduce_sum(tf.nn.relu(INPUTS @ layers[0]) @ layers[1])
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    with graph.as_default():
        for mask, value in zip(model_pruning.get_masks(), (M1, M2)):
            mask.load(value, session)
    return graph, session, lambda session: session.run(output)


@pytest.mark.parametrize("granularity, criterion", [("weight", "l1"), ("channel", "l2")])
def test_sweep_and_sensitivity_match_numpy_one_shot_pruning(granularity, criterion):
    graph, session, evaluate = two_layer_model()
    with session:
        analysis = sensitivity.analyze(session, evaluate, SPARSITIES, granularity, criterion,
                                       progress=None)
    assert analysis.baseline == pytest.approx(numpy_metric(M1, M2), rel=1e-5)
    expected_sweep = [numpy_metric(numpy_one_shot(W1, M1, s, granularity),
                                   numpy_one_shot(W2, M2, s, granularity)) for s in SPARSITIES]
    np.testing.assert_allclose(analysis.sweep, expected_sweep, rtol=1e-5)
    expected_fc1 = [numpy_metric(numpy_one_shot(W1, M1, s, granularity), M2) for s in SPARSITIES]
    expected_fc2 = [numpy_metric(M1, numpy_one_shot(W2, M2, s, granularity)) for s in SPARSITIES]
    assert list(analysis.layers) == ["fc1/weights", "fc2/weights"]
    np.testing.assert_allclose(analysis.layers["fc1/weights"], expected_fc1, rtol=1e-5)
    np.testing.assert_allclose(analysis.layers["fc2/weights"], expected_fc2, rtol=1e-5)
    assert analysis.sizes == {"fc1/weights": 48, "fc2/weights": 24}


def test_weights_pruned_already_stay_pruned_at_every_sparsity():
    graph, session, evaluate = two_layer_model()
    with graph.as_default():
        mask = model_pruning.get_masks()[0]
    seen = []
    with session:
        for granularity in ("weight", "channel"):
            sensitivity.analyze(session, lambda session: seen.append(session.run(mask)) or 0.0,
                                [0.0, 0.5], granularity, per_layer=False, progress=None)
    for value in seen:
        assert not value[M1 == 0].any()
    assert np.array_equal(seen[1], M1)  # sparsity 0 keeps every weight the old mask keeps


def test_masks_are_as_they_were_after_the_analysis_and_after_an_interrupt():
    graph, session, evaluate = two_layer_model()
    calls = []

    def interrupted(session):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return evaluate(session)

    with session:
        sensitivity.analyze(session, evaluate, SPARSITIES, progress=None)
        with graph.as_default():
            masks = model_pruning.get_masks()
        np.testing.assert_array_equal(session.run(masks[0]), M1)
        np.testing.assert_array_equal(session.run(masks[1]), M2)
        with pytest.raises(KeyboardInterrupt):
            sensitivity.analyze(session, interrupted, SPARSITIES, progress=None)
        np.testing.assert_array_equal(session.run(masks[0]), M1)
        np.testing.assert_array_equal(session.run(masks[1]), M2)


def test_progress_reports_one_line_per_evaluation():
    graph, session, evaluate = two_layer_model()
    lines = []
    with session:
        sensitivity.analyze(session, evaluate, [0.5], per_layer=False, progress=lines.append)
    assert len(lines) == 2
    assert lines[1].startswith("all weights at sparsity 0.5: ")


ANALYSIS = sensitivity.Analysis(
    baseline=0.90, sparsities=[0.5, 0.8, 0.9], sweep=[0.89, 0.80, 0.5],
    layers={"conv1/weights": [0.90, 0.85, 0.7], "fc/weights": [0.90, 0.895, 0.891],
            "logits/weights": [0.7, 0.6, 0.5]},
    sizes={"conv1/weights": 100, "fc/weights": 800, "logits/weights": 100})


def test_suggested_map_takes_each_layers_highest_sparsity_within_the_drop():
    suggestion = sensitivity.suggest_sparsity_map(ANALYSIS, max_drop=0.01)
    # conv1 drops 0.05 at 0.8; fc stays within 0.01 up to 0.9; logits never does.
    assert suggestion.sparsity_map == {"conv1/weights": 0.5, "fc/weights": 0.9,
                                       "logits/weights": 0.0}
    assert suggestion.overall_sparsity == pytest.approx((100 * 0.5 + 800 * 0.9) / 1000)
    spec = PruningSpec(suggestion.hparams)
    for name, value in suggestion.sparsity_map.items():
        assert spec.target_sparsity(name) == value
    assert spec.target_sparsity("block1/conv1/weights") is None  # anchored: no other weight


def test_a_drop_of_exactly_max_drop_is_within_it():
    analysis = ANALYSIS._replace(baseline=0.71, sparsities=[0.5], sweep=[0.7],
                                 layers={"fc/weights": [0.70]}, sizes={"fc/weights": 10})
    assert sensitivity.suggest_sparsity_map(analysis, 0.01).sparsity_map == {"fc/weights": 0.5}


def test_table_has_a_row_per_layer_and_the_sweep():
    table = sensitivity.format_table(ANALYSIS)
    assert "| fc/weights | 800 | 0.9000 | 0.8950 | 0.8910 |" in table
    assert "| all weights (sweep) | 1000 | 0.8900 | 0.8000 | 0.5000 |" in table


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "sensitivity.png"
    sensitivity.plot(ANALYSIS, str(path), metric_name="precision")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("arguments, message", [
    (dict(sparsities=[0.5, 1.2]), "Sparsities must be numbers in \\[0, 1\\), got 1.2"),
    (dict(granularity="filter"), "granularity must be 'weight', 'channel' or a block"),
    (dict(granularity=(0, 4)), "block dims must be >= 1"),
    (dict(criterion="l3"), "criterion must be one of l1, l2, max, got 'l3'"),
])
def test_bad_arguments_name_what_is_allowed(arguments, message):
    graph, session, evaluate = two_layer_model()
    with session, pytest.raises(ValueError, match=message):
        sensitivity.analyze(session, evaluate, **arguments)


def test_a_graph_without_masked_weights_is_an_error():
    with tf.Graph().as_default() as graph:
        tf.compat.v1.get_variable("w", [2, 2])
        with tf.compat.v1.Session(graph=graph) as session:
            with pytest.raises(ValueError, match="No masked weight in the graph"):
                sensitivity.analyze(session, lambda session: 0.0)


@pytest.mark.parametrize("max_drop, summary", [
    (0.01, "stays within 0.01 up to sparsity 0.5; falls by 0.1000 at 0.8"),
    (0.5, "stays within 0.5 up to sparsity 0.9, the highest tried"),
    (0.001, "falls by more than 0.001 already at sparsity 0.5"),
])
def test_sweep_summary_says_where_the_sweep_falls(max_drop, summary):
    line = sensitivity.sweep_summary(ANALYSIS, max_drop, "precision")
    assert line == f"one-shot sweep: precision 0.9000 {summary}"
