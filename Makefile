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

.PHONY: test demo install compat clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[cpu,test,examples]' '$(DEV_TENSORFLOW)'
	touch $(STAMP)

install: $(STAMP)

# Test files run in parallel, one worker per core (at most 4: each holds a TensorFlow).
test: $(STAMP)
	$(VPY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=10 tests

demo: $(STAMP)
	$(VPY) -m examples.cifar10.demo

# One venv per row under ~/.cache/model_pruning-compat (or $COMPAT_CACHE), reused.
compat:
	$(PYTHON) tools/compat_matrix.py $(COMPAT_ROWS)

clean:
	rm -rf $(VENV) build *.egg-info
