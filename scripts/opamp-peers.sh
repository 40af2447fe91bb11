#!/usr/bin/env bash
# Installs the real OpAMP clients that crates/opamp-ext/tests/peers.rs connects to the
# test server (see ../shared/peers/README.md):
#   * PyPI `opentelemetry-opamp-client` in a venv:  $DEST/venv
#   * npm `@elastic/opamp-client-node`:             $DEST/node/node_modules
# DEST defaults to target/opamp-peers (ignored by git). Idempotent: a second run only
# checks that both are there. Versions are pinned so every machine tests the same peers.
# The last lines are machine-readable: PYTHON=..., NODE_PATH=..., PY_VERSION=..., NODE_VERSION=...
set -euo pipefail

PY_PKG="opentelemetry-opamp-client"
PY_VERSION="0.5b0"
NODE_PKG="@elastic/opamp-client-node"
NODE_VERSION="0.5.0"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${OPAMP_PEERS_DIR:-$root/target/opamp-peers}"
mkdir -p "$dest"

fail() {
    echo "opamp-peers: $*" >&2
    exit 1
}

# Two test runs at once must not build the same venv concurrently.
if command -v flock >/dev/null; then
    exec 9>"$dest/.lock"
    flock 9
fi

venv="$dest/venv"
if ! "$venv/bin/python" -c 'import opentelemetry._opamp.client' 2>/dev/null \
    || [ "$("$venv/bin/python" -m pip show "$PY_PKG" 2>/dev/null | awk '/^Version:/{print $2}')" != "$PY_VERSION" ]; then
    command -v python3 >/dev/null || fail "python3 is not installed"
    rm -rf "$venv"
    python3 -m venv "$venv" || fail "python3 -m venv failed (is the venv module installed?)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PY_PKG==$PY_VERSION" \
        || fail "pip could not install $PY_PKG==$PY_VERSION: is PyPI reachable?"
fi

node_dir="$dest/node"
installed_node_version() {
    node -p "require('$node_dir/node_modules/$NODE_PKG/package.json').version" 2>/dev/null || true
}
if [ "$(installed_node_version)" != "$NODE_VERSION" ]; then
    command -v npm >/dev/null || fail "npm is not installed"
    mkdir -p "$node_dir"
    [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
    (cd "$node_dir" && npm install --no-audit --no-fund --silent "$NODE_PKG@$NODE_VERSION") \
        || fail "npm could not install $NODE_PKG@$NODE_VERSION: is the npm registry reachable?"
fi

echo "PYTHON=$venv/bin/python"
echo "NODE_PATH=$node_dir/node_modules"
echo "PY_VERSION=$PY_VERSION"
echo "NODE_VERSION=$(installed_node_version)"
