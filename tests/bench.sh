#!/usr/bin/env bash
# Benchmarks: size of the static release binary and wall time of `omlboot plan` for the aio example.
# Usage: tests/bench.sh [RUNS]   (default 50 runs; uses hyperfine when installed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
target=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -q "$target"; then
  cargo build --release --quiet --target "$target"
  bin=target/$target/release/omlboot
else
  target=x86_64-unknown-linux-gnu
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet --target "$target"
  bin=target/$target/release/omlboot
fi
size=$(stat -c %s "$bin")
echo "binary: $bin ($target)"
echo "size: $size bytes ($(( size / 1024 )) KiB)"
file "$bin" 2>/dev/null | sed 's/^/file: /' || true
cfg=cloud-config/examples/aio.yaml
"$bin" plan --config "$cfg" >/dev/null
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 3 --runs "$runs" -N "$bin plan --config $cfg"
else
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$bin" plan --config "$cfg" >/dev/null; done
  end=$(date +%s%N)
  echo "plan (aio): $(( (end - start) / runs / 1000 )) µs mean over $runs runs"
fi
