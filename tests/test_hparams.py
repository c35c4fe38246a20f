"""HParams: contrib's parse grammar, typed attributes, and errors that name what is wrong."""

import json

import pytest

from model_pruning import get_pruning_hparams
from model_pruning.hparams import HParams

README_SPEC = ("name=cifar10_pruning,begin_pruning_step=10000,end_pruning_step=100000,"
               "target_sparsity=0.9,sparsity_function_begin_step=10000,"
               "sparsity_function_end_step=100000")


def _hparams():
    return HParams(count=1, rate=0.5, flag=False, label="a", items=[""], sizes=[1])


def test_parse_readme_spec_and_returns_self():
    hparams = get_pruning_hparams()
    assert hparams.parse(README_SPEC) is hparams
    assert hparams.name == "cifar10_pruning"
    assert hparams.begin_pruning_step == 10000
    assert hparams.end_pruning_step == 100000
    assert hparams.target_sparsity == 0.9
    assert hparams.sparsity_function_end_step == 100000


@pytest.mark.parametrize("text, name, expected", [
    ("count=3", "count", 3),
    ("count = -2", "count", -2),
    ("rate=1", "rate", 1.0),
    ("rate=2.5e-1", "rate", 0.25),
    ("flag=true", "flag", True),
    ("flag=True", "flag", True),
    ("flag=1", "flag", True),
    ("flag=false", "flag", False),
    ("flag=0", "flag", False),
    ("label=conv1/weights:0.5", "label", "conv1/weights:0.5"),
    ("label=", "label", ""),
    ("items=[conv1:0.8,conv2/kernel:0.8]", "items", ["conv1:0.8", "conv2/kernel:0.8"]),
    ("items=[a b,,c]", "items", ["a", "b", "c"]),
    ("items=[]", "items", []),
    ("sizes=[1,2,3]", "sizes", [1, 2, 3]),
    ("sizes[0]=7", "sizes", [7]),
])
def test_parse_values_by_default_type(text, name, expected):
    value = _hparams().parse(text).values()[name]
    assert value == expected and type(value) is type(expected)


def test_parse_several_clauses_with_spaces():
    hparams = _hparams().parse("count=2, items=[x,y], rate=0.1")
    assert (hparams.count, hparams.items, hparams.rate) == (2, ["x", "y"], 0.1)


def test_empty_string_changes_nothing():
    assert _hparams().parse("").values() == _hparams().values()


@pytest.mark.parametrize("text, fragments", [
    ("nope=1", ["Unknown hparam 'nope'", "count", "rate"]),
    ("count=1.5", ["count", "'1.5'", "int"]),
    ("flag=yes", ["flag", "'yes'", "bool"]),
    ("rate=fast", ["rate", "'fast'", "float"]),
    ("count=[1,2]", ["count", "single value"]),
    ("items=x", ["items", "list"]),
    ("count=1,count=2", ["count", "more than once"]),
    ("count", ["Could not parse", "name=value"]),
    ("sizes[3]=1", ["Index 3", "sizes"]),
    ("sizes=[1,x]", ["sizes", "'x'", "int"]),
])
def test_parse_errors_name_the_problem(text, fragments):
    with pytest.raises(ValueError) as error:
        _hparams().parse(text)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_unknown_pruning_hparam_lists_known_names():
    with pytest.raises(ValueError, match="Known hparams: .*target_sparsity"):
        get_pruning_hparams().parse("target_sparsty=0.9")


def test_attribute_write_is_typed():
    hparams = get_pruning_hparams()
    hparams.target_sparsity = 0.85
    hparams.begin_pruning_step = 5
    hparams.threshold_decay = 0  # an int is a valid float
    assert (hparams.target_sparsity, hparams.begin_pruning_step) == (0.85, 5)
    assert type(hparams.threshold_decay) is float
    with pytest.raises(ValueError, match="begin_pruning_step.*int"):
        hparams.begin_pruning_step = 1.5
    with pytest.raises(ValueError, match="Unknown hparam 'target_sparsty'"):
        hparams.target_sparsty = 0.9


def test_values_and_json_round_trip():
    hparams = get_pruning_hparams().parse("weight_sparsity_map=[a:0.5],nbins=100")
    assert json.loads(hparams.to_json()) == hparams.values()
    assert hparams.values()["weight_sparsity_map"] == ["a:0.5"]


def test_pruning_hparams_defaults():
    assert get_pruning_hparams().values() == {
        "name": "model_pruning", "begin_pruning_step": 0, "end_pruning_step": -1,
        "do_not_prune": [""], "weight_sparsity_map": [""], "block_dims_map": [""],
        "threshold_decay": 0.9, "pruning_frequency": 10, "nbins": 255,
        "block_height": 1, "block_width": 1, "block_pooling_function": "AVG",
        "initial_sparsity": 0.0, "target_sparsity": 0.5, "sparsity_function_begin_step": 0,
        "sparsity_function_end_step": 100, "sparsity_function_exponent": 3.0,
        "use_tpu": False, "threshold_method": "histogram", "criterion": "magnitude",
        "criterion_map": [""], "taylor_decay": 0.9, "sparsity_m_by_n": [0, 0],
        "channel_groups": False}
