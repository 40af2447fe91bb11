#!/usr/bin/env bash
# Ingest benchmarks (DESIGN §7): json-ingest, regex-ingest, passthrough through the release
# binary, optionally side by side with the OpenTelemetry Collector. See benches/README.md.
#
#   benches/run.sh [--compare otelcol] [--lines N] [--runs R] [--workloads json,regex,passthrough]
#
# Builds the release binary first unless BIN is set (BIN=path/to/centimane benches/run.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${BIN:-}" ]]; then
    (cd "$root" && cargo build --release -p centimane)
    BIN="$target/release/centimane"
fi
exec python3 "$root/benches/ingest.py" --bin "$BIN" "$@"
