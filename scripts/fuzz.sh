#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) on
# the nightly toolchain and prints executions and findings per target.
# Without a nightly toolchain it says so and stops (make test still replays
# the corpus on stable). Installs cargo-fuzz from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=(jws verify jwks config token_request)
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: skipped: no nightly toolchain on this machine (cargo-fuzz needs one); make test replays the corpus on stable"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked -j2
fi
report=fuzz/report.txt
: > "$report"
status=0
for t in "${targets[@]}"; do
  log=$(mktemp)
  if cargo +nightly fuzz run "$t" --fuzz-dir fuzz -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see fuzz/artifacts/$t)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  line="$t: ${execs:-?} executions in ${seconds}s, corpus $corpus inputs, $result"
  echo "$line" | tee -a "$report"
  [ "$result" = ok ] || tail -30 "$log"
  rm -f "$log"
done
exit $status
