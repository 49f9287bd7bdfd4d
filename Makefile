# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint format bench system-deps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,serial]'
	touch $(STAMP)

# pyzbar (test extra only: tests and benches compare with it; the gate itself reads codes with
# zxing-cpp, whose wheel bundles its library) needs Debian's zbar; install it when missing.
# tests/test_deploy.py checks the kiosk's unit with systemd-analyze (Debian's systemd): same.
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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

demo: $(STAMP)
	$(PY) -m demo

clean:
	rm -rf $(VENV)
