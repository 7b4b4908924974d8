#!/usr/bin/env bash
# Fuzz config loading + validation + plan for SECONDS (default 60).
#   fuzz/run.sh [SECONDS]
# Installs cargo-fuzz when missing. cargo-fuzz needs nightly features; on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them. The corpus starts from tests/fixtures and cloud-config/examples
# and grows in fuzz/corpus/config_plan (not committed). A crash is saved under fuzz/artifacts/ and
# the script exits non-zero.
set -euo pipefail
secs="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
cd "$here"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
corpus="$here/corpus/config_plan"
mkdir -p "$corpus"
for f in "$repo"/tests/fixtures/config/*.yaml "$repo"/cloud-config/examples/*.yaml \
         "$repo"/tests/fixtures/omldeploytool-2.2.2/*.yml "$here"/seeds/*; do
    [ -f "$f" ] && cp -f "$f" "$corpus/seed-$(basename "$f")"
done
export RUSTC_BOOTSTRAP=1
# -s none: no sanitizer needed for safe Rust (and it builds much faster); debug assertions on so
# overflows panic. -timeout: one input taking longer than 10 s is reported as a hang.
exec cargo fuzz run -s none --debug-assertions config_plan "$corpus" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1
