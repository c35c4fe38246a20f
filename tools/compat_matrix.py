"""`make compat`: the smoke tests on each supported TensorFlow, in both Keras modes.

Each row is a virtualenv holding what a user has before installing model_pruning: one
TensorFlow distribution and, for the legacy-Keras rows, the matching tf-keras. The venvs live
under a cache folder (`--cache`, default `$COMPAT_CACHE` or ~/.cache/model_pruning-compat),
are built once and reused. On every run, each row:

1. installs this checkout with `pip install <checkout>`, as a user would, and fails if that
   changed any installed distribution (a second TensorFlow, another numpy, ...) or
   `tf.test.is_built_with_cuda()`; then adds the test tools (the `test` and `examples`
   extras) without changing anything either;
2. runs SMOKE_TESTS with pytest, with TF_USE_LEGACY_KERAS=1 in the legacy rows;
3. reports passed/failed and the first failing test.

    python3 tools/compat_matrix.py                  # every row of MATRIX
    python3 tools/compat_matrix.py 2.13 2.17-legacy  # other rows (see parse_row)
    python3 tools/compat_matrix.py --rebuild nightly # a fresh venv (a newer nightly)

It needs only the standard library; the table also goes to <cache>/last_result.md.
"""

import argparse
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every minor release from the floor up is supported; these rows cover the floor, the last
# Keras 2 default (2.15), the first Keras 3 default (2.16), a middle release, the newest
# release and nightly, on both Keras modes where TensorFlow has two, the full CUDA-built
# package beside tensorflow-cpu, and the oldest and newest Python a row's TensorFlow has
# wheels for.
MATRIX = [
    "2.12", "2.12@py3.10", "2.15", "2.16", "2.16-legacy", "2.19", "2.19-legacy",
    "2.21", "2.21-full", "2.21-legacy", "2.21@py3.13", "nightly", "nightly-legacy",
]

# What a release is checked with: core mask update, masked layers and cells, masking_scope on a
# slim net, slim's batch norm in a net's own arg_scope, strip to .pb and .tflite, the cifar10
# example's short train, and the tests of the version differences (test_compat, test_install).
# pytest fails with "not found" when a test here is renamed: update the list.
SMOKE_TESTS = [
    "tests/test_api.py",
    "tests/test_compat.py",
    "tests/test_install.py",
    "tests/test_pruning.py::test_single_mask_update_keeps_the_largest_weights",
    "tests/test_pruning.py::test_conditional_mask_update_gating",
    "tests/test_pruning.py::test_update_built_after_a_train_op_reads_the_step_that_op_left",
    "tests/test_pruning.py::test_a_step_without_an_update_runs_a_few_ops_of_the_update",
    "tests/test_pruning.py::test_two_by_two_block_masks",
    "tests/test_pruning_utils.py::test_exact_mask_is_the_same_with_any_digit_width",
    "tests/test_layers.py::test_convolution_equals_tf_nn_convolution_with_the_masked_kernel",
    "tests/test_layers.py::test_fully_connected_equals_numpy_with_the_masked_kernel",
    "tests/test_layers.py::test_layer_class_names_its_variables_and_reuses_them_on_every_call",
    "tests/test_layers.py::test_inception_block_with_batch_norm_trains_and_prunes",
    "tests/test_rnn_cells.py::test_half_masked_cell_matches_numpy_with_the_masked_kernel",
    "tests/test_rnn_cells.py::test_dynamic_and_static_rnn_agree_and_share_one_mask_per_kernel",
    "tests/test_rnn_cells.py::test_stacked_and_dropout_wrapped_cells_register_one_mask_per_layer",
    "tests/test_masking.py::test_masking_scope_names_match_apply_mask",
    "tests/test_masking.py::test_slim_nets_prune_and_strip_unmodified[inception_v1]",
    "tests/test_slim_nets.py::test_slim_batch_norm_is_the_fixed_one_and_normalizes",
    "tests/test_slim_nets.py::test_slim_net_with_its_own_arg_scope_trains_and_prunes[resnet_v2_50]",
    "tests/test_strip_pruning_vars.py::test_strip_folds_every_mask",
    "tests/test_strip_pruning_vars.py::test_graph_def_from_checkpoint_freezes_latest_in_a_private_graph",
    "tests/test_strip_cli.py::test_cli_runs_end_to_end_as_a_subprocess",
    "tests/test_export.py::test_sparse_tflite_is_5x_smaller_and_matches_tf",
    "tests/test_export.py::test_cli_writes_sparse_tflite",
    "tests/test_export.py::test_int8_sparse_tflite_keeps_every_kernel_sparse_and_is_under_8_percent_of_dense",
    "tests/test_export.py::test_int8_per_tensor_has_one_scale_per_kernel_and_a_smaller_file",
    "tests/test_export.py::test_int8_refuses_weights_the_converter_stores_in_blocks",
    "tests/test_export.py::test_dynamic_range_tflite_keeps_kernels_sparse_and_runs",
    "tests/test_export.py::test_saved_model_signature_gives_the_stripped_graphs_outputs",
    "tests/test_m_by_n.py::test_groups_ramp_with_the_schedule_and_all_keep_the_pattern_at_its_end",
    "tests/test_m_by_n.py::test_masking_scope_and_do_not_prune",
    "tests/test_strip_cli.py::test_cli_writes_int8_tflite_calibrated_on_an_npz",
    "tests/test_cifar10_example.py::test_train_logs_data_loss_speed_and_sparsity",
    "tests/test_cifar10_example.py::test_exported_checkpoint_strips_to_a_sparse_tflite_model",
]

# Distributions that install the `tensorflow` package itself; two of them in one environment
# overwrite each other's files.
TENSORFLOW_DISTRIBUTION = re.compile(
    r"^(tensorflow(-(cpu|gpu|macos|intel|aarch64|rocm|cpu-aws))?|tf-nightly(-[a-z0-9-]+)?|"
    r"intel-tensorflow(-avx512)?)$")

# Pins a release needs beside it, for a fault of its own that model_pruning cannot fix; the
# README lists them for users of that release. TF 2.20 declares protobuf>=5.28 but its
# graph_io passes `float_format`, which protobuf 7 removed: writing graph.pbtxt (every
# MonitoredTrainingSession with a checkpoint_dir, slim's train) fails without the pin.
RELEASE_PINS = {"2.20": ("protobuf<7",)}

OLDEST_LEGACY_KERAS = (2, 16)  # TF_USE_LEGACY_KERAS exists from 2.16, when Keras 3 came in
SMOKE_TIMEOUT_SECONDS = 1800

# Run inside a row's venv: what the user's environment holds, as JSON.
SNAPSHOT_SCRIPT = r"""
import importlib, importlib.metadata, json, re
import tensorflow as tf
names = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
         for d in importlib.metadata.distributions()}
top = getattr(tf.keras, "__name__", "?").split(".")[0]  # keras, tf_keras
keras = f"{top} {getattr(importlib.import_module(top), '__version__', '?')}"
print(json.dumps({"distributions": names, "tensorflow": tf.__version__,
                  "cuda": tf.test.is_built_with_cuda(), "keras": keras}))
"""


@dataclasses.dataclass(frozen=True)
class Row:
    """One (TensorFlow, Keras mode, Python) environment of the matrix."""

    label: str
    requirements: tuple  # what the user has installed before model_pruning
    legacy_keras: bool
    python: str  # "3.11", or "" for the Python running this script
    pre: bool  # nightly builds are pre-releases


def parse_row(label):
    """A Row from a label: a release (X.Y or nightly), a mode, optionally @py3.N.

    `X.Y` holds `tensorflow-cpu` (what the `[cpu]` extra installs), `X.Y-full` the full,
    CUDA-built `tensorflow`, `X.Y-legacy` the full `tensorflow` and the matching `tf-keras`
    (which requires `tensorflow` itself) with TF_USE_LEGACY_KERAS=1. `nightly` is tf-nightly,
    `nightly-legacy` adds tf-keras-nightly.
    """
    match = re.fullmatch(r"(nightly|\d+\.\d+)(-legacy|-full)?(@py(3\.\d+))?", label)
    if match is None:
        raise ValueError(f"Row {label!r} is not X.Y, X.Y-full, X.Y-legacy, nightly or "
                         "nightly-legacy, optionally followed by @py3.N")
    release, mode, _, python = match.groups()
    legacy = mode == "-legacy"
    if release == "nightly":
        if mode == "-full":
            raise ValueError(f"Row {label!r}: tf-nightly is the full package already")
        requirements = ("tf-nightly", "tf-keras-nightly") if legacy else ("tf-nightly",)
        return Row(label, requirements, legacy, python or "", pre=True)
    version = tuple(int(part) for part in release.split("."))
    if legacy and version < OLDEST_LEGACY_KERAS:
        raise ValueError(f"Row {label!r}: TensorFlow {release} has Keras 2 as tf.keras already; "
                         f"the legacy mode exists from 2.16 on (use the row {release!r})")
    if legacy:
        requirements = (f"tensorflow=={release}.*", f"tf-keras=={release}.*")
    elif mode == "-full":
        requirements = (f"tensorflow=={release}.*",)
    else:
        requirements = (f"tensorflow-cpu=={release}.*",)
    return Row(label, requirements + RELEASE_PINS.get(release, ()), legacy, python or "",
               pre=False)


def find_python(version):
    """An interpreter for `version` ("3.13"): pythonX.Y on PATH if it runs, else pyenv's."""
    if not version:
        return sys.executable
    pyenv = os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")
    candidates = [shutil.which(f"python{version}")] + sorted(glob.glob(pyenv))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    raise FileNotFoundError(f"No Python {version} found on PATH or under ~/.pyenv/versions")


def run(command, log, **kwargs):
    """Runs `command`, appending its output to the file `log`; returns the exit code."""
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, command))}\n")
        out.flush()
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, **kwargs).returncode


def last_error(text):
    """The last line of a traceback (the exception), or the last line at all."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"\w+(Error|Exception)\b", line)]
    return (errors or lines or [""])[-1][:200]


def last_lines(log, count=5):
    return "\n".join(Path(log).read_text(errors="replace").splitlines()[-count:])


def build_venv(row, venv, log):
    """Creates the row's venv holding only `row.requirements` (and pip), once.

    A stamp file records the requirements; a venv whose stamp differs is rebuilt.
    """
    stamp = venv / "compat-requirements.json"
    wanted = json.dumps(list(row.requirements))
    if stamp.exists() and stamp.read_text() == wanted:
        return
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    steps = [[find_python(row.python), "-m", "venv", str(venv)],
             pip + ["--upgrade", "pip"],
             pip + (["--pre"] if row.pre else []) + list(row.requirements)]
    for step in steps:
        if run(step, log) != 0:
            raise RuntimeError(f"building the venv failed: {last_lines(log, 3)}")
    stamp.write_text(wanted)


def snapshot(row, venv, log):
    """The venv's distributions, TensorFlow and Keras versions and CUDA build flag."""
    result = subprocess.run([str(venv / "bin" / "python"), "-c", SNAPSHOT_SCRIPT],
                            capture_output=True, text=True,
                            env=smoke_environment(row.legacy_keras))
    with open(log, "a") as out:
        out.write(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"importing tensorflow failed: {last_error(result.stderr)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tensorflow_distributions(state):
    return {name: version for name, version in state["distributions"].items()
            if TENSORFLOW_DISTRIBUTION.match(name)}


def install_problem(before, after):
    """What installing the checkout changed that it must not, or None.

    It may only add distributions: the TensorFlow one, its CUDA build flag, numpy and every
    other version already installed stay as they were.
    """
    changed = [f"{name} {version} -> {after['distributions'].get(name, 'removed')}"
               for name, version in before["distributions"].items()
               if after["distributions"].get(name) != version]
    if changed:
        return f"pip install changed {', '.join(changed)}"
    old, new = tensorflow_distributions(before), tensorflow_distributions(after)
    if old != new or len(new) != 1:
        return f"TensorFlow distributions went from {old} to {new}"
    if before["cuda"] != after["cuda"]:
        return f"tf.test.is_built_with_cuda() went from {before['cuda']} to {after['cuda']}"
    return None


def install_checkout(row, venv, log):
    """Installs this checkout into the venv as a user would; returns (state, problem or None).

    `pip install <checkout>` must change nothing already installed (install_problem). The test
    tools come after, with every installed version as a constraint: pip ignores what installed
    distributions require, so scikit-learn's newest scipy would upgrade numpy past what
    TensorFlow 2.12-2.13 allow, and TensorFlow would no longer import.
    """
    python = str(venv / "bin" / "python")
    pip_install = [python, "-m", "pip", "install", "--quiet"] + (["--pre"] if row.pre else [])
    run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "model_pruning"], log)
    before = snapshot(row, venv, log)
    if run(pip_install + [str(ROOT)], log) != 0:
        return before, f"pip install of the checkout failed: {last_lines(log, 2)}"
    try:
        after = snapshot(row, venv, log)
    except RuntimeError as error:
        return before, f"after pip install of the checkout, {error}"
    problem = install_problem(before, after)
    if problem:
        return after, problem
    constraints = venv / "compat-constraints.txt"
    constraints.write_text("".join(
        f"{name}=={version}\n" for name, version in sorted(after["distributions"].items())
        if name not in ("model-pruning", "pip", "setuptools", "wheel")))
    if run(pip_install + ["-c", str(constraints), f"{ROOT}[test,examples]"], log) != 0:
        return after, f"installing the test tools failed: {last_lines(log, 2)}"
    return after, None


def smoke_environment(legacy_keras):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("TF_USE_LEGACY_KERAS", None)
    environment.pop("PYTHONPATH", None)
    if legacy_keras:
        environment["TF_USE_LEGACY_KERAS"] = "1"
    return environment


def first_failure(junit_xml):
    """(test id, one-line message) of the first failed or erroring test in a JUnit file."""
    if not junit_xml.exists():
        return None
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            message = (problem.get("message") or "").strip().splitlines()
            test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            return test, (message[0][:160] if message else problem.tag)
    return None


def run_smoke_tests(row, venv, log):
    """Runs SMOKE_TESTS in the venv; returns (counts line, first failure or None)."""
    junit_xml = venv / "smoke.xml"
    junit_xml.unlink(missing_ok=True)
    command = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--durations=10", f"--junitxml={junit_xml}", *SMOKE_TESTS]
    try:
        code = run(command, log, cwd=ROOT, env=smoke_environment(row.legacy_keras),
                   timeout=SMOKE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return "timed out", (f"pytest ran longer than {SMOKE_TIMEOUT_SECONDS} s", "")
    counts = ", ".join(re.findall(r"\d+ (?:passed|failed|skipped|errors?)", last_lines(log, 1)))
    failure = first_failure(junit_xml)
    if code != 0 and failure is None:
        failure = (f"pytest exit {code}", last_lines(log, 2).replace("\n", " ")[:160])
    return counts, failure


def check_row(row, cache):
    """Builds (or reuses) the row's venv, installs the checkout and runs the smoke tests."""
    started = time.monotonic()
    venv = cache / row.label
    log = cache / f"{row.label}.log"
    log.write_text(f"{row}\n")
    result = {"row": row.label, "tensorflow": "?", "keras": "?", "python": "?"}
    try:
        build_venv(row, venv, log)
        state, problem = install_checkout(row, venv, log)
        result.update(tensorflow=" ".join(f"{n} {v}" for n, v in
                                          tensorflow_distributions(state).items())
                      + (" (CUDA build)" if state["cuda"] else ""),
                      keras=state["keras"] + (" (TF_USE_LEGACY_KERAS=1)" if row.legacy_keras
                                              else ""),
                      python=Path(os.path.realpath(venv / "bin" / "python")).name)
        if problem:
            result.update(passed=False, counts="install", failure=("pip install", problem))
        else:
            counts, failure = run_smoke_tests(row, venv, log)
            result.update(passed=failure is None, counts=counts, failure=failure)
    except (RuntimeError, FileNotFoundError) as error:
        result.update(passed=False, counts="setup", failure=("setup", str(error)))
    result["seconds"] = round(time.monotonic() - started)
    return result


def table(results, total_seconds):
    """The results as a Markdown table, with the total wall time."""
    lines = ["| row | TensorFlow | Keras | Python | result | first failing test | time |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        outcome = "passed" if r["passed"] else "**failed**"
        failure = "" if r["failure"] is None else f"`{r['failure'][0]}`: {r['failure'][1]}"
        failure = " ".join(failure.split())[:200].replace("|", "\\|")
        lines.append(f"| {r['row']} | {r['tensorflow']} | {r['keras']} | {r['python']} | "
                     f"{outcome} ({r['counts']}) | {failure} | {r['seconds']} s |")
    passed = sum(r["passed"] for r in results)
    lines.append("")
    lines.append(f"{passed} of {len(results)} rows passed in {total_seconds / 60:.1f} min "
                 f"({time.strftime('%Y-%m-%d')}).")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", help=f"rows to run (default: {' '.join(MATRIX)})")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "COMPAT_CACHE", "~/.cache/model_pruning-compat")).expanduser(),
                        help="folder of the venvs and logs (default: %(default)s)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the rows' venvs")
    args = parser.parse_args(argv)
    try:
        rows = [parse_row(label) for label in (args.rows or MATRIX)]
    except ValueError as error:
        parser.error(str(error))
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = []
    for row in rows:
        if args.rebuild:
            shutil.rmtree(args.cache / row.label, ignore_errors=True)
        print(f"{row.label}: {' '.join(row.requirements)} ...", flush=True)
        result = check_row(row, args.cache)
        print(f"{row.label}: {'passed' if result['passed'] else 'FAILED'} "
              f"({result['counts']}, {result['seconds']} s; log {args.cache / row.label}.log)",
              flush=True)
        results.append(result)
    report = table(results, time.monotonic() - started)
    (args.cache / "last_result.md").write_text(report + "\n")
    print()
    print(report)
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
