# The README's two commands: `make up` (dev stack against the emulator) and `make test`.
PYTHON ?= python3
VENV := .venv
STACK ?= prod

.PHONY: up test drift emulator lint bench stop clean

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

# The engine's drift check: fails when Metronome was edited by hand (see README).
drift: $(VENV)/.installed
	PATH="$$HOME/.pulumi/bin:$$PATH" PULUMI_BACKEND_URL=$${PULUMI_BACKEND_URL:-file://$(CURDIR)/.pulumi} \
	  pulumi preview --refresh --expect-no-changes --stack $(STACK)

emulator: $(VENV)/.installed
	$(VENV)/bin/metronome-iac emulator --port 8787 --db .emulator/dev.db

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_providers.py

# Stop the background emulator that `make up` started; its state file stays.
stop:
	-@[ -f .emulator/emulator.pid ] && kill $$(cat .emulator/emulator.pid) 2>/dev/null; rm -f .emulator/emulator.pid

# Start over: the emulator's state and the repo-local Pulumi state go together (one without the
# other would leave state pointing at objects that no longer exist).
clean: stop
	rm -rf .emulator .pulumi
