#!/usr/bin/env bash
# The README's main job: the dev stack against the embedded Metronome emulator.
# Expects the virtualenv to exist (`make up` creates it). Prints one clear line and exits
# non-zero when something it needs cannot be had; never hangs on the network.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
PORT=${EMULATOR_PORT:-8787}
STATE_DIR=${EMULATOR_STATE_DIR:-$REPO/.emulator}

die() { echo "error: $*" >&2; exit 1; }

# 1. The emulator, in the background, with its state in a file inside the repo.
mkdir -p "$STATE_DIR"
export METRONOME_BEARER_TOKEN=${METRONOME_BEARER_TOKEN:-dev-emulator-token}
if ! curl -fsS --max-time 2 "http://127.0.0.1:$PORT/_emulator/health" >/dev/null 2>&1; then
  nohup "$VENV/bin/metronome-iac" emulator --port "$PORT" --db "$STATE_DIR/dev.db" \
    --token "$METRONOME_BEARER_TOKEN" --stripe-connected >"$STATE_DIR/emulator.log" 2>&1 &
  echo $! >"$STATE_DIR/emulator.pid"
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$PORT/_emulator/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 2 "http://127.0.0.1:$PORT/_emulator/health" >/dev/null 2>&1 \
    || die "the Metronome emulator did not start on port $PORT (see $STATE_DIR/emulator.log)"
  echo "Metronome emulator: http://127.0.0.1:$PORT (state in $STATE_DIR/dev.db, pid file $STATE_DIR/emulator.pid)"
else
  # Started earlier (by `make up`: see the pid file) or by hand; it must accept $METRONOME_BEARER_TOKEN.
  echo "Metronome emulator: already running on http://127.0.0.1:$PORT"
fi

# 2. The Pulumi CLI: on PATH, else the official installer, else built with Go (scripts/pulumi-cli.sh).
PULUMI=$(bash "$REPO/scripts/pulumi-cli.sh") || exit 1
export PATH="$(dirname "$PULUMI"):$PATH"

# 3. A local file backend inside the repo, never the user's global login.
mkdir -p "$REPO/.pulumi"
export PULUMI_BACKEND_URL="file://$REPO/.pulumi"
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-dev-stack-only}
pulumi stack select dev --create --non-interactive >/dev/null
exec pulumi up --stack dev --yes --non-interactive
