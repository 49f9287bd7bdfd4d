# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint format bench mutation floors system-deps venv clean pretix tickettoken-deps chromium

venv: $(STAMP)

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,serial]'
	touch $(STAMP)

# pyzbar (test extra only: tests and benches compare with it; the gate itself reads codes with
# zxing-cpp, whose wheel bundles its library) needs Debian's zbar; install it when missing.
# tests/hardware/test_deploy.py checks the kiosk's unit with systemd-analyze (Debian's systemd): same.
# The will-call tickets PDF (hub/ticket_pdf.py) sets names in DejaVu Sans: Debian's fonts-dejavu-core.
system-deps:
	@python3 -c "import ctypes.util,sys; sys.exit(0 if ctypes.util.find_library('zbar') else 1)" \
	 || { echo "installing libzbar0"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libzbar0 >/dev/null; }
	@command -v systemd-analyze >/dev/null \
	 || { echo "installing systemd (systemd-analyze)"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq systemd >/dev/null; }
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
	 || { echo "installing fonts-dejavu-core (the will-call tickets PDF's font)"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fonts-dejavu-core >/dev/null; }

# A real pretix for the tests marked `pretix` (tests/pretix_server.py starts and stops it): its
# own venv in build/ (pretix pins Django and friends, which must not meet ours), and a template
# SQLite database migrated once (~70 s), which each test session copies instead of migrating.
# Only wheels from PyPI: no Debian package beyond what python3 -m venv needs. gunicorn serves it
# (pinned: the harness passes --no-control-socket). The stamp names the versions, so changing
# one here reinstalls; nothing else does.
PRETIX_VERSION := 2026.8.0
GUNICORN_VERSION := 27.0.1
PRETIX_VENV := build/pretix-venv
PRETIX_STAMP := $(PRETIX_VENV)/.installed-$(PRETIX_VERSION)-$(GUNICORN_VERSION)
PRETIX_TEMPLATE := build/pretix-template

pretix: $(PRETIX_TEMPLATE)/db.sqlite3

$(PRETIX_STAMP):
	rm -rf $(PRETIX_VENV) $(PRETIX_TEMPLATE)
	python3 -m venv $(PRETIX_VENV)
	$(PRETIX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PRETIX_VENV)/bin/python -m pip install --quiet pretix==$(PRETIX_VERSION) gunicorn==$(GUNICORN_VERSION)
	touch $@

# Migrated under another name and moved at the end: an interrupted migrate leaves no template.
$(PRETIX_TEMPLATE)/db.sqlite3: $(PRETIX_STAMP)
	rm -rf $(PRETIX_TEMPLATE)
	mkdir -p $(PRETIX_TEMPLATE)/data
	printf '[pretix]\ninstance_name=template\ndatadir=%s\n[django]\ndebug=off\nsecret=template-only\n[database]\nbackend=sqlite3\nname=%s\n' \
	  $(abspath $(PRETIX_TEMPLATE)/data) $(abspath $(PRETIX_TEMPLATE)/migrating.sqlite3) > $(PRETIX_TEMPLATE)/pretix.cfg
	PRETIX_CONFIG_FILE=$(abspath $(PRETIX_TEMPLATE)/pretix.cfg) $(PRETIX_VENV)/bin/python -m pretix migrate --noinput >$(PRETIX_TEMPLATE)/migrate.log
	mv $(PRETIX_TEMPLATE)/migrating.sqlite3 $@

# A real PostgreSQL and RabbitMQ for the tests marked `tickettoken` (tests/tickettoken_db.py and
# tests/rabbitmq_node.py start throwaway ones in temp dirs, as the postgres user when root; never
# the system services): Debian's packages when missing. Installing them must neither start nor
# wait for a system service: a policy-rc.d refusing every start (only while installing, and only
# when the machine has none of its own) and RUNLEVEL=1 for invoke-rc.d.
tickettoken-deps:
	@{ ls /usr/lib/postgresql/*/bin/initdb && test -x /usr/lib/rabbitmq/bin/rabbitmq-server; } >/dev/null 2>&1 \
	 || { echo "installing postgresql and rabbitmq-server"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); POLICY=/usr/sbin/policy-rc.d; ADDED=; \
	      if [ ! -e $$POLICY ]; then printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$POLICY >/dev/null \
	        && $$SUDO chmod 755 $$POLICY && ADDED=1; fi; \
	      $$SUDO apt-get update -qq \
	        && $$SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq \
	           --no-install-recommends postgresql rabbitmq-server >/dev/null; RC=$$?; \
	      [ -z "$$ADDED" ] || $$SUDO rm -f $$POLICY; exit $$RC; }

# Headless Chromium for the tests marked `browser` (tests/browser.py drives it with Playwright,
# whose own browser download cannot work here): Debian's package when /usr/bin/chromium is
# missing. No recommends (they bring daemons such as avahi and upower); fonts-liberation is
# one of them, named so that pages in the screenshots have real fonts.
chromium:
	@test -x /usr/bin/chromium \
	 || { echo "installing chromium"; \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	      $$SUDO apt-get update -qq \
	        && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           --no-install-recommends chromium fonts-liberation >/dev/null; }

test: $(STAMP) pretix tickettoken-deps chromium
	$(PY) -m pytest -q -p no:cacheprovider

# ruff and mypy are pinned in pyproject's test extra; mypy's file list is in pyproject too.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) chromium
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
