#!/usr/bin/env bash
# Ingest benchmarks (DESIGN §7): json-ingest, regex-ingest, passthrough through the binary
# hosts install (the `dist` profile, README "Installing on hosts"), optionally side by side
# with the OpenTelemetry Collector. See benches/README.md.
#
#   benches/run.sh [--compare otelcol] [--lines N] [--runs R] [--workloads json,regex,passthrough]
#
# Builds that binary first unless BIN is set (BIN=path/to/centimane benches/run.sh);
# PROFILE=release measures the `release` build instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${PROFILE:-dist}"
if [[ -z "${BIN:-}" ]]; then
    (cd "$root" && cargo build --profile "$profile" -p centimane)
    BIN="$target/$profile/centimane"
fi
exec python3 "$root/benches/ingest.py" --bin "$BIN" "$@"
