# The README's two commands: `make up` (dev stack against the emulator) and `make test`.
PYTHON ?= python3
VENV := .venv
STACK ?= prod

.PHONY: up test drift pulumi-cli emulator lint bench stop clean

# The first run spends a minute in pip: say so, and let pip show what it collects and installs.
$(VENV)/.installed: pyproject.toml
	@echo "Installing metronome-iac and its dependencies into $(VENV) with pip (a minute or two the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[test]'
	@echo "Installed into $(VENV): run the CLI as $(VENV)/bin/metronome-iac"
	touch $@

up: $(VENV)/.installed
	bash scripts/up.sh

# The real-engine tests need the Pulumi CLI: built here first (its progress shows) wherever Go is; a
# machine without Go or a CLI runs the rest. pytest exits 5 when it collected no test; that is not a
# failure, anything else is.
test: $(VENV)/.installed
	@bash scripts/pulumi-cli.sh >/dev/null || { ! command -v go >/dev/null || exit 1; \
	  echo "no Pulumi CLI and no Go here: the real-engine tests will skip"; }
	$(VENV)/bin/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# The engine's drift check: fails when Metronome was edited by hand (see README). The dev stack gets
# the same local defaults as `make up` (its emulator token and state passphrase); other stacks take
# METRONOME_BEARER_TOKEN / PULUMI_CONFIG_PASSPHRASE from the environment.
DRIFT_ENV := $(if $(filter dev,$(STACK)),PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE:-dev-stack-only} \
  METRONOME_BEARER_TOKEN=$${METRONOME_BEARER_TOKEN:-dev-emulator-token})
# The engine-free check, as a command that runs when pasted: with the token it needs.
DRIFT_HINT := METRONOME_BEARER_TOKEN=$(if $(filter dev,$(STACK)),dev-emulator-token,<token>) \
  $(VENV)/bin/metronome-iac drift --stack $(STACK)
drift: $(VENV)/.installed
	@pulumi=$$(bash scripts/pulumi-cli.sh) || { echo "or check without the engine: $(DRIFT_HINT)" >&2; exit 1; }; \
	  PULUMI_BACKEND_URL=$${PULUMI_BACKEND_URL:-file://$(CURDIR)/.pulumi} \
	  $(DRIFT_ENV) "$$pulumi" preview --refresh --expect-no-changes --stack $(STACK)

# The Pulumi CLI: on PATH, else the official installer, else built with Go (see the script).
pulumi-cli:
	@bash scripts/pulumi-cli.sh >/dev/null

# The emulator `make up` starts, in the foreground (same port, state file, token; `make stop` first).
EMULATOR_PORT ?= 8787
emulator: $(VENV)/.installed
	mkdir -p .emulator
	$(VENV)/bin/metronome-iac emulator --port $(EMULATOR_PORT) --db .emulator/dev.db \
	  --token $${METRONOME_BEARER_TOKEN:-dev-emulator-token} --stripe-connected

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The scale table of docs/benchmarks.md (100 / 1,000 / 3,000 resources at 0 and 50 ms; the real engine's
# rows for 1,000 at 50 ms when the CLI can be had). CI runs the smallest size:
# tests/test_benchmark_targets.py and tests/test_benchmark_cli.py.
bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/scale.py --pulumi-cli 1000

# Stop the background emulator that `make up` started; its state file stays. Only a process that is
# still that emulator is signalled (a stale pid file may name an unrelated process by now).
stop:
	@pidfile=.emulator/emulator.pid; \
	if [ ! -f $$pidfile ]; then echo "no emulator started by 'make up' ($$pidfile not found)"; \
	else pid=$$(cat $$pidfile); \
	  if ps -ww -p "$$pid" -o args= 2>/dev/null | grep -Eq "metronome[-_]iac emulator"; then \
	    kill "$$pid" && echo "stopped the emulator (pid $$pid)"; \
	  else echo "the emulator (pid $$pid) is not running"; fi; \
	  rm -f $$pidfile; fi

# Start over: the emulator's state and the repo-local Pulumi state go together (one without the
# other would leave state pointing at objects that no longer exist).
clean: stop
	rm -rf .emulator .pulumi
