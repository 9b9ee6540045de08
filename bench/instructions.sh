#!/usr/bin/env bash
# Instruction counts of the hot path (valgrind --tool=callgrind), against the floor client in the
# same run. Instruction counts are repeatable on a busy shared machine, where wall time is not.
#
#   bench/instructions.sh              # builds release, prints a table, writes target/bench/instructions.md
#
# Floor: bench-floor, a static binary that does one Unix-socket round trip to the daemon.
# Targets (issue 8): get --value ≤ 5× floor; source/exec of 50 keys ≤ 8× floor;
# get against a 20 000-key keyrack.yml ≤ 10 ms (timed with hyperfine when it is installed).
# The targets are for a warm allowlist cache ($KEYRACK_HOME/cache, written by the first get
# once keyrack.yml has stood unchanged for 2 s); the cold rows parse keyrack.yml (and write
# the cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/bench"
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "bench needs valgrind (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p keyrack-cli
rustc -O -C target-feature=+crt-static "$root/bench/floor.rs" -o "$out/bench-floor"
kr="$root/target/release/keyrack"
floor="$out/bench-floor"

world=$(mktemp -d "${TMPDIR:-/tmp}/keyrack-ir.XXXXXX")
export HOME="$world/home" KEYRACK_HOME="$world/home/.keyrack" XDG_RUNTIME_DIR="$world/run" NO_COLOR=1
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$world/repo/.git" "$world/big/.git"
chmod 700 "$XDG_RUNTIME_DIR"
cleanup() { "$kr" daemon prune >/dev/null 2>&1 || true; rm -rf "$world"; }
trap cleanup EXIT

# a 50-key repo, all unlocked
cd "$world/repo"
{ echo 'org: bench'; echo 'env.test:'; for i in $(seq 0 49); do echo "  - KEY_$i"; done; echo 'env.prod: []'; } > keyrack.yml
"$kr" init >/dev/null
for i in $(seq 0 49); do printf 'value-%s' "$i" | "$kr" set --key "KEY_$i" --env test >/dev/null; done
"$kr" unlock --env test >/dev/null
sock=$("$kr" --json daemon status | python3 -c 'import json,sys; print(json.load(sys.stdin)["socket"])')

# a 20 000-key repo (same org, so KEY_0 is granted there too)
{ echo 'org: bench'; echo 'env.test:'; echo '  - KEY_0'; for i in $(seq 1 19999); do echo "  - DECLARED_$i"; done; echo 'env.prod: []'; } > "$world/big/keyrack.yml"
sleep 2.1 # the settle window: a manifest changed less than 2 s ago is parsed, not cached

ir() { # prints the instruction count of one run of "$@"
  local log="$world/cg.log"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$log" || true
  local n
  n=$(awk '/Collected :/ { print $NF }' "$log" | tail -1)
  [ -n "$n" ] || { echo "bench: no instruction count for: $*" >&2; cat "$log" >&2; exit 1; }
  echo "$n"
}
echo "counting instructions…" >&2
f=$(ir "$floor" "$sock" bench.test.KEY_0)
# cold: no cache yet (this run parses keyrack.yml and writes the cache), then warm
rm -rf "$KEYRACK_HOME/cache"
gc=$(ir "$kr" get --key KEY_0 --env test --value)
bigc=$(cd "$world/big" && ir "$kr" get --key KEY_0 --env test --value)
g=$(ir "$kr" get --key KEY_0 --env test --value)
s=$(ir "$kr" source --env test)
# exec replaces keyrack with the command, and callgrind reports only the last image; a command
# that does not exist measures everything keyrack does up to execve (plus its error message).
e=$(ir "$kr" exec --env test -- "$world/no-such-command")
big=$(cd "$world/big" && ir "$kr" get --key KEY_0 --env test --value)
big_ms=""
if command -v hyperfine >/dev/null; then
  (cd "$world/big" && hyperfine --style none --warmup 3 --runs 30 -N --export-json "$out/big.json" \
    "$kr get --key KEY_0 --env test --value" >/dev/null 2>&1) &&
    big_ms=$(python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$out/big.json")
fi

python3 - "$out" "$f" "$g" "$s" "$e" "$big" "$big_ms" "$gc" "$bigc" <<'PY'
import sys, os
out, f, g, s, e, big, big_ms, gc, bigc = sys.argv[1:]
f, g, s, e, big, gc, bigc = (int(x) for x in (f, g, s, e, big, gc, bigc))
rows = [
    ("floor client (one socket round trip)", f, None),
    ("get --value, 50-key keyrack.yml", g, 5),
    ("source --env test, 50 keys", s, 8),
    ("exec --env test (up to execve), 50 keys", e, 8),
    ("get --value, 20 000-key keyrack.yml", big, None),
    ("get --value, 50-key keyrack.yml, cold cache (parses YAML)", gc, None),
    ("get --value, 20 000-key keyrack.yml, cold cache (parses YAML)", bigc, None),
]
lines = ["| command | instructions | × floor | target |", "|---|---:|---:|---|"]
for label, n, target in rows:
    ok = "" if target is None else (f"≤ {target}× " + ("✓" if n <= target * f else "✗"))
    lines.append(f"| {label} | {n:,} | {n / f:.1f}× | {ok} |")
if big_ms:
    lines.append("")
    lines.append(f"get --value with a 20 000-key keyrack.yml: median {big_ms} ms (target ≤ 10 ms)")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "instructions.md"), "w").write(text)
print(text)
PY
