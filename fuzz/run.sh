#!/usr/bin/env bash
# Runs every keyrack fuzz target under libFuzzer (cargo-fuzz, nightly), one after the other.
#
# usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60
#   TARGET              default: every target in fuzz/fuzz_targets/
#   env JOBS            parallel fuzzing processes per target (default 1)
#   env FUZZ_ARGS       more libFuzzer flags, e.g. FUZZ_ARGS="-max_len=65536"
#
# needs: rustup toolchain install nightly && cargo install cargo-fuzz
#
# Each target starts from its committed seed corpus fuzz/corpus/<target>/ (read only) and keeps
# what it finds in fuzz/target/corpus/<target>/ (not committed; later runs continue from it).
# To commit the inputs that add coverage, merge them into the seed corpus (keep it small):
#   cargo +nightly fuzz run <target> fuzz/corpus/<target> fuzz/target/corpus/<target> -- -merge=1
# A crash stops that target, leaves the input in fuzz/artifacts/<target>/ and makes the script
# exit non-zero; replay it with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-…`
# and, once fixed, commit it to fuzz/corpus/<target>/: `cargo test -p keyrack-fuzz` (stable)
# replays the committed corpus in CI. A summary line per target ends the run.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
if (($#)); then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
jobs=${JOBS:-1}
cargo +nightly fuzz build || exit 1
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0
summary=()
for t in "${targets[@]}"; do
  flags=(-max_total_time="$secs" -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && flags+=(-dict="fuzz/dict/$t.dict")
  ((jobs > 1)) && flags+=(-jobs="$jobs" -workers="$jobs")
  work=fuzz/target/corpus/$t
  mkdir -p "$work"
  echo "== $t: ${secs}s" >&2
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  cargo +nightly fuzz run "$t" "$work" "fuzz/corpus/$t" -- "${flags[@]}" ${FUZZ_ARGS:-} \
    2>&1 | tee "$logs/$t.log" >&2
  rc=${PIPESTATUS[0]}
  # with -jobs > 1 libFuzzer writes each process's log to fuzz-<n>.log in the current directory
  if ((jobs > 1)); then
    cat fuzz-*.log >>"$logs/$t.log" 2>/dev/null
    rm -f fuzz-*.log
  fi
  execs=$(awk '/stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$logs/$t.log")
  found=$(find "$work" -type f | wc -l)
  if ((rc == 0)); then
    verdict="0 crashes"
  else
    verdict="CRASH (exit $rc, see fuzz/artifacts/$t/)"
    status=1
  fi
  summary+=("$(printf '%-18s %12s execs  %5s corpus inputs  %s' "$t" "$execs" "$found" "$verdict")")
done
printf '%s\n' "${summary[@]}"
exit $status
