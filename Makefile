# The README's two commands: `make up` (dev stack against the emulator) and `make test`.
PYTHON ?= python3
VENV := .venv
STACK ?= prod

.PHONY: up test drift pulumi-cli emulator lint bench stop clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

up: $(VENV)/.installed
	bash scripts/up.sh

# pytest exits 5 when it collected no test; that is not a failure, anything else is.
test: $(VENV)/.installed
	$(VENV)/bin/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# The engine's drift check: fails when Metronome was edited by hand (see README). The dev stack gets
# the same local defaults as `make up` (its emulator token and state passphrase); other stacks take
# METRONOME_BEARER_TOKEN / PULUMI_CONFIG_PASSPHRASE from the environment.
DRIFT_ENV := $(if $(filter dev,$(STACK)),PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE:-dev-stack-only} \
  METRONOME_BEARER_TOKEN=$${METRONOME_BEARER_TOKEN:-dev-emulator-token})
drift: pulumi-cli $(VENV)/.installed
	@PATH="$$HOME/.pulumi/bin:$$PATH" PULUMI_BACKEND_URL=$${PULUMI_BACKEND_URL:-file://$(CURDIR)/.pulumi} \
	  $(DRIFT_ENV) pulumi preview --refresh --expect-no-changes --stack $(STACK)

# One line instead of "pulumi: not found" (checked before the virtualenv is made).
pulumi-cli:
	@PATH="$$HOME/.pulumi/bin:$$PATH" command -v pulumi >/dev/null 2>&1 || { echo "error: the Pulumi \
	CLI is not installed; install it (https://www.pulumi.com/docs/install/), or check without the engine: \
	.venv/bin/metronome-iac drift --stack $(STACK)" >&2; exit 1; }

# The emulator `make up` starts, in the foreground (same port, state file, token; `make stop` first).
emulator: $(VENV)/.installed
	mkdir -p .emulator
	$(VENV)/bin/metronome-iac emulator --port 8787 --db .emulator/dev.db \
	  --token $${METRONOME_BEARER_TOKEN:-dev-emulator-token} --stripe-connected

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The scale table of docs/benchmarks.md (100 / 1,000 / 3,000 resources at 0 and 50 ms; a `pulumi up` row
# when the CLI is installed). CI runs the smallest size: tests/test_benchmark_targets.py.
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
