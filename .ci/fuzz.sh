#!/usr/bin/env bash
# Bounded fuzzing of every decoder of untrusted input (fuzz/README.md): builds the
# cargo-fuzz targets once with the nightly toolchain already installed here (no toolchain
# downloads), then runs each for FUZZ_SECONDS on a copy of its seed corpus under target/
# (the repository stays clean), and fails if any target crashed, timed out or ran out of
# memory. Reproducers are kept in target/fuzz-artifacts/<target>/.
#
#   FUZZ_SECONDS=20        seconds per target (7 targets: about 2.5 min plus the build)
#   FUZZ_TARGETS="a b"     only these targets (default: every fuzz/fuzz_targets/*.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export CARGO_TERM_COLOR=never
start=$(date +%s)
step() { printf '\n==> %s (+%ss)\n' "$*" "$(($(date +%s) - start))"; }

step "toolchain"
nightly=$(rustup toolchain list | grep nightly | head -1 | awk '{print $1}')
if [ -z "$nightly" ]; then
  echo "no nightly toolchain installed (rustup toolchain list); cargo-fuzz needs one" >&2
  exit 1
fi
echo "nightly toolchain: $nightly"
rustc "+$nightly" --version
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  step "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi
cargo "+$nightly" fuzz --version

# The fuzz package has its own workspace and lock file: start it from the root lock file
# so the targets are built against the same dependency versions as the node.
cp Cargo.lock fuzz/Cargo.lock

step "cargo fuzz build -O (every target)"
cargo "+$nightly" fuzz build -O

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz targets to run" >&2
  exit 1
fi

work="$root/target/fuzz-corpus"
artifacts="$root/target/fuzz-artifacts"
logs="$root/target/fuzz-logs"
rm -rf "$work" "$logs"
mkdir -p "$work" "$artifacts" "$logs"

failed=()
summary=()
for t in "${targets[@]}"; do
  step "fuzz $t for ${FUZZ_SECONDS}s"
  corpus="$work/$t"
  mkdir -p "$corpus" "$artifacts/$t"
  if [ -d "fuzz/corpus/$t" ]; then
    cp -R "fuzz/corpus/$t/." "$corpus/"
  fi
  seeds=$(find "$corpus" -type f | wc -l)
  dict=()
  if [ -f "fuzz/dicts/$t.dict" ]; then
    dict=("-dict=$root/fuzz/dicts/$t.dict")
  fi
  log="$logs/$t.log"
  status=0
  # The outer timeout only guards against a hung run: libFuzzer stops itself at
  # -max_total_time, and a slow input is a finding through -timeout.
  timeout -k 10 "$((FUZZ_SECONDS + 120))" \
    cargo "+$nightly" fuzz run -O "$t" "$corpus" -- \
    -max_total_time="$FUZZ_SECONDS" \
    -rss_limit_mb=2048 \
    -malloc_limit_mb=512 \
    -timeout=10 \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" \
    ${dict[@]+"${dict[@]}"} \
    >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  size=$(find "$corpus" -type f | wc -l)
  bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  line=$(printf '%-16s %s  iterations=%s  corpus=%s files, %s bytes (from %s seeds)' \
    "$t" "$([ "$status" -eq 0 ] && echo ok || echo "FAILED($status)")" "${execs:-?}" "$size" "$bytes" "$seeds")
  echo "$line"
  summary+=("$line")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "---- last lines of $log ----"
    tail -n 60 "$log"
    echo "---- artifacts in $artifacts/$t: ----"
    ls -l "$artifacts/$t" || true
  fi
done

step "summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (reproduce: cargo +$nightly fuzz run -O TARGET target/fuzz-artifacts/TARGET/FILE)" >&2
  exit 1
fi
echo "no crash in ${#targets[@]} targets"
