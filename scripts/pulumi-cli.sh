#!/usr/bin/env bash
# Get the Pulumi CLI and what a Python program with dynamic providers needs beside it; shared by
# `make up`, `make drift`, `make test` and the real-engine tests. In this order:
#   1. `pulumi` on PATH (or in ~/.pulumi/bin, where the official installer puts it);
#   2. the official installer (get.pulumi.com), at the pinned version;
#   3. where `go` is present, a build from the Go module proxy into ~/.pulumi/bin: the CLI
#      (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi), this project's Python language host and its
#      program runner, and the dynamic provider launcher (tools/pulumi/, each says what it stands in
#      for). A second run builds nothing while the pinned version and tools/pulumi/ are unchanged.
# The version is the one pyproject.toml pins for the `pulumi` Python package (tools/pulumi/go.mod
# must pin the same). Progress goes to stderr, one line per step with its time; the last stdout line
# is the path of the `pulumi` to use. Exit 1 with one `error:` line when it cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TOOLS=$REPO/tools/pulumi
BIN_DIR=${PULUMI_BIN_DIR:-$HOME/.pulumi/bin}
INSTALL_URL=${PULUMI_INSTALL_URL:-https://get.pulumi.com}
STAMP=$BIN_DIR/.metronome-iac-build

die() { echo "error: $*" >&2; exit 1; }
step_start() { STEP_T0=$(date +%s%N); printf '%s' "$1" >&2; }
step_done() { awk -v ns="$(( $(date +%s%N) - STEP_T0 ))" 'BEGIN { printf " done in %.1f s\n", ns / 1e9 }' >&2; }

VERSION=$(sed -n 's/^ *"pulumi==\([0-9.]*\)".*/\1/p' pyproject.toml)
[ -n "$VERSION" ] || die "pyproject.toml does not pin the pulumi package (\"pulumi==X.Y.Z\")"
grep -q "github.com/pulumi/pulumi/pkg/v3 v$VERSION\$" "$TOOLS/go.mod" \
  || die "tools/pulumi/go.mod does not pin github.com/pulumi/pulumi/pkg/v3 v$VERSION, the version pyproject.toml pins"
# What a build from source is made of: the pinned version and this project's own pieces.
BUILD_ID="v$VERSION $(cat "$TOOLS"/go.mod "$TOOLS"/go.sum "$TOOLS"/pulumi-language-python/*.go \
  "$TOOLS"/pulumi-language-python-exec "$TOOLS"/pulumi-resource-pulumi-python | sha256sum | cut -c1-16)"

export PATH="$BIN_DIR:$PATH"

# 1. On PATH: a CLI of this project's build is reused only while it matches the sources.
if found=$(command -v pulumi 2>/dev/null); then
  if [ "$found" != "$BIN_DIR/pulumi" ] || [ ! -f "$STAMP" ]; then
    have=$(pulumi version 2>/dev/null || echo unknown)
    [ "$have" = "v$VERSION" ] || echo "note: using pulumi $have at $found (this project pins v$VERSION)" >&2
    echo "$found"; exit 0
  fi
  if [ "$(cat "$STAMP")" = "$BUILD_ID" ]; then
    echo "Pulumi CLI v$VERSION: built earlier, in $BIN_DIR" >&2
    echo "$found"; exit 0
  fi
  echo "Pulumi CLI: tools/pulumi/ or the pinned version changed since the build in $BIN_DIR; building again" >&2
else
  # 2. The official installer, when its host answers.
  installer=$(mktemp)
  trap 'rm -f "$installer"' EXIT
  step_start "Pulumi CLI v$VERSION: trying the official installer ($INSTALL_URL)..."
  if curl -fsSL --connect-timeout 5 --max-time 120 "$INSTALL_URL" -o "$installer" 2>/dev/null \
     && sh "$installer" --version "$VERSION" --silent >/dev/null 2>&1 && [ -x "$HOME/.pulumi/bin/pulumi" ]; then
    step_done
    echo "$HOME/.pulumi/bin/pulumi"; exit 0
  fi
  echo " unreachable" >&2
fi

# 3. Build from the Go module proxy.
command -v go >/dev/null 2>&1 || die "the Pulumi CLI is not installed, $INSTALL_URL cannot be reached and there is no \`go\` to build it; install it (https://www.pulumi.com/docs/install/)"
mkdir -p "$BIN_DIR"
log=$(mktemp)
trap 'rm -f "$log" ${installer:+"$installer"}' EXIT
missing_module() {  # the module@version the proxy refused, from go's output
  grep -oE '[A-Za-z0-9./_~-]+@v[^:[:space:]]+: reading [^[:space:]]+: (403|404|410)' "$log" | head -1 | cut -d: -f1
}
run_go() {  # go command, in tools/pulumi, failing with one line naming a module the proxy does not serve
  if ! (cd "$TOOLS" && "$@") >"$log" 2>&1; then
    echo >&2
    if module=$(missing_module) && [ -n "$module" ]; then
      die "the Go module proxy ($(go env GOPROXY)) does not serve $module, which the Pulumi CLI v$VERSION needs"
    fi
    tail -n 20 "$log" >&2
    die "building the Pulumi CLI v$VERSION with $(go version | cut -d' ' -f3) failed (output above)"
  fi
}
step_start "Pulumi CLI v$VERSION: downloading its Go modules from $(go env GOPROXY | cut -d, -f1)..."
run_go go list -deps github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ./pulumi-language-python
step_done
step_start "Pulumi CLI v$VERSION: compiling pulumi (a few minutes the first time)..."
run_go go build -trimpath -o "$BIN_DIR/pulumi" \
  -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$VERSION" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
step_done
step_start "Pulumi CLI v$VERSION: compiling the Python language host, installing the launchers..."
run_go go build -trimpath -o "$BIN_DIR/pulumi-language-python" -ldflags "-X main.version=$VERSION" \
  ./pulumi-language-python
install -m 0755 "$TOOLS/pulumi-language-python-exec" "$TOOLS/pulumi-resource-pulumi-python" "$BIN_DIR/"
echo "$BUILD_ID" >"$STAMP"
step_done
echo "Pulumi CLI v$VERSION: installed in $BIN_DIR" >&2
echo "$BIN_DIR/pulumi"
