#!/bin/bash
# The VM end-to-end suite as CI runs it: the whole suite (tests/e2e/run.sh) with the static binary CI
# just built, plus a summary of the measured figures (E2E-FIGURE lines) at the end.
#   OMLBOOT_BIN=target/x86_64-unknown-linux-musl/release/omlboot tests/e2e/ci.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$(date +%s)
set +e
"$HERE/run.sh" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "e2e: suite took $(( $(date +%s) - started ))s, exit $rc"
grep -h '^E2E-FIGURE' "$log" || true
exit "$rc"
