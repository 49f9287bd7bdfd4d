# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint format bench mutation floors system-deps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,serial]'
	touch $(STAMP)

# pyzbar (test extra only: tests and benches compare with it; the gate itself reads codes with
# zxing-cpp, whose wheel bundles its library) needs Debian's zbar; install it when missing.
# tests/hardware/test_deploy.py checks the kiosk's unit with systemd-analyze (Debian's systemd): same.
system-deps:
	@python3 -c "import ctypes.util,sys; sys.exit(0 if ctypes.util.find_library('zbar') else 1)" \
	 || { echo "installing libzbar0"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libzbar0 >/dev/null; }
	@command -v systemd-analyze >/dev/null \
	 || { echo "installing systemd (systemd-analyze)"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq systemd >/dev/null; }

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# ruff and mypy are pinned in pyproject's test extra; mypy's file list is in pyproject too.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

demo: $(STAMP)
	$(PY) -m demo

# The floors pyproject.toml declares, proved (by hand, like bench and mutation: ~5 min): a venv
# with the lowest release of each dependency it allows (uv's lowest-direct resolution), and the
# whole suite on it. Raise a floor when this fails, never guess one.
FLOORS_VENV ?= .venv-floors

floors: $(STAMP)
	$(PY) -m pip install --quiet uv
	rm -rf $(FLOORS_VENV)
	$(VENV)/bin/uv venv --quiet --python $(PY) $(FLOORS_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(FLOORS_VENV)/bin/python --resolution lowest-direct -e '.[test,serial]'
	$(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider

# Mutation testing (by hand, not in `make test`: ~10 min on 2 CPUs): mutmut over protocol/
# and manifests/admission.py against the fast pure-core tests ([tool.mutmut] in pyproject.toml),
# then the score per file. A fresh run each time; MUTANTS narrows it to mutant-name globs,
# e.g. make mutation MUTANTS='manifests.admission.* protocol.parse.* protocol.native.*'
MUTATION_STAMP := $(VENV)/.installed-mutation
MUTATION_JOBS ?= 2
MUTANTS ?=

$(MUTATION_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,serial,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(PY) bench/mutation_score.py

clean:
	rm -rf $(VENV)
