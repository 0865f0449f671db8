#!/usr/bin/env bash
# Runs each cargo-fuzz target for a given time and prints its exec count.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (installed here when missing). The corpus grows in
# fuzz/corpus/<target> (not committed), starting from the seeds in fuzz/seeds/<target>, which
# `cargo run -p kairn-engine --example fuzz-seeds` writes from a real repository. A crash leaves
# its input in fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(config keyfile pack_header index tree snapshot blob chunker etcd_stream session)
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O
mkdir -p logs
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="logs/$t.log"
  # -rss_limit_mb and -malloc_limit_mb make any input that asks for more than 2 GiB a finding.
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    echo "$t: FAILED (see fuzz/$log and fuzz/artifacts/$t/)"
    failed=1
    continue
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "$t: $runs execs in ${seconds}s, $cov, corpus $(ls "corpus/$t" | wc -l) inputs"
done
exit $failed
