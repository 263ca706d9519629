# sleepnet: `make demo` runs the main job end to end on MNIST, `make test` runs the suite,
# `make bench` the sleep simulator benchmark.
# Each works from a fresh clone: it creates .venv and installs the package into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-long bench lint lock clean-venv

# Every package comes at the version of constraints.txt (the tested set); `make lock` rewrites it.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: this is a CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# AutoAttack's parts (evaluation/attacks/autoattack.py): torchattacks declares torchvision, which
	# does not import beside torch 2.13 and which its attacks never use, so it comes without deps.
	$(PY) -m pip install -q -c constraints.txt --no-deps torchattacks==3.5.1
	touch $(STAMP)

# constraints.txt afresh (after a change of dependencies; commit the result): what pyproject.toml resolves
# to in a new venv installed without the old pins; the file is replaced only if that set changed.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/pip install -q -e ".[dev]"
	$(LOCK_VENV)/bin/pip install -q --no-deps torchattacks==3.5.1
	{ sed -n '1,3p' constraints.txt; $(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v '^#' | \
	  sed 's/+cpu$$//' | sort -f; } > constraints.txt.new
	if cmp -s constraints.txt.new constraints.txt; then rm constraints.txt.new; \
	else mv constraints.txt.new constraints.txt; fi
	rm -rf $(LOCK_VENV)

demo: $(STAMP)
	$(VENV)/bin/sleepnet demo -o runs/demo --seed 0 --force

test: $(STAMP)
	$(PY) -m pytest -q -m "not long" --durations=25

# the slow tests (minutes each: the Brian2 cpp_standalone build)
test-long: $(STAMP)
	$(PY) -m pytest -q -m long

bench: $(STAMP)
	$(PY) benchmarks/bench_sleep.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sleepnet kernels converters tests

clean-venv:
	rm -rf $(VENV)
