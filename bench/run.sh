#!/usr/bin/env bash
# Whole-process benchmarks of keyrack against floors measured in the same run (hyperfine).
#
#   bench/run.sh            # full run (sets ~1650 keys first; a minute or two)
#   RUNS=50 bench/run.sh    # fewer timed runs per command
#
# Floors: /bin/true (process start) and bench-floor, a static binary doing exactly one
# Unix-socket round trip to the daemon (the least any `get` can cost).
# Results: target/bench/results.md (and hyperfine JSON next to it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-200}
out="$root/target/bench"
mkdir -p "$out"
command -v hyperfine >/dev/null || { echo "bench needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p keyrack-cli -p keyrack-fake-aws
rustc -O -C target-feature=+crt-static "$root/bench/floor.rs" -o "$out/bench-floor"
kr="$root/target/release/keyrack"
floor="$out/bench-floor"

world=$(mktemp -d "${TMPDIR:-/tmp}/keyrack-bench.XXXXXX")
export HOME="$world/home" KEYRACK_HOME="$world/home/.keyrack" XDG_RUNTIME_DIR="$world/run" NO_COLOR=1
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$world/repo/.git"
cleanup() {
  for o in default l500 d1000; do "$kr" --owner "$o" daemon prune >/dev/null 2>&1 || true; done
  [ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$world"
}
trap cleanup EXIT
cd "$world/repo"
printf 'org: bench\nenv.test: []\nenv.big: []\n' > keyrack.yml

echo "setting up keys (50 test, 100 big, 500 for list, 1000 for the daemon)…" >&2
"$kr" init >/dev/null
for i in $(seq 0 49); do printf 'value-%s' "$i" | "$kr" set --key "KEY_$i" --env test >/dev/null; done
for i in $(seq 0 99); do printf 'big-%s' "$i" | "$kr" set --key "BIG_$i" --env big >/dev/null; done
"$kr" --owner l500 init >/dev/null
for i in $(seq 0 499); do printf 'l-%s' "$i" | "$kr" --owner l500 set --org @all --key "L_$i" --vault os.direct >/dev/null; done
"$kr" --owner d1000 init >/dev/null
for i in $(seq 0 999); do printf 'd-%s-%s' "$i" "$(head -c 24 /dev/urandom | base64)" | "$kr" --owner d1000 set --org @all --key "D_$i" --vault os.direct >/dev/null; done

"$kr" unlock --env test >/dev/null
sock=$("$kr" --json daemon status | python3 -c 'import json,sys; print(json.load(sys.stdin)["socket"])')
[ "$("$floor" "$sock" bench.test.KEY_0 | grep -c value-0)" = 1 ] || { echo "floor binary cannot read the daemon" >&2; exit 1; }
export CI_ONLY_KEY=from-env
printf 'org: bench\nenv.test: [CI_ONLY_KEY]\nenv.big: []\n' > "$world/ci.yml"

hf() { # name, runs, then hyperfine args
  local name=$1 n=$2; shift 2
  hyperfine --style basic --warmup 10 --runs "$n" --export-json "$out/$name.json" "$@" >"$out/$name.log" 2>&1 \
    || { echo "bench: '$name' failed:" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
}
echo "timing…" >&2
hf true "$runs" -N /bin/true
hf floor "$runs" -N "$floor $sock bench.test.KEY_0"
hf get "$runs" -N "$kr get --key KEY_0 --env test --value"
hf get_env "$runs" -N "$kr get --key CI_ONLY_KEY --org @all --value"
hf source50 "$runs" -N "$kr source --env test"
hf exec50 "$runs" -N "$kr exec --env test -- /bin/true"
hf list500 "$runs" -N "$kr --owner l500 list"
hf sh_pipe_floor "$runs" "printf v | /bin/true"
hf set_stdin 30 "printf bench-value | $kr set --key SET_BENCH --env test"
hf unlock100 30 -N "$kr unlock --env big"

# AWS: credential_process from the daemon vs the AWS CLI, against a loopback fake of AWS
aws_rows=0
if command -v aws >/dev/null 2>&1; then
  mkfifo "$world/fake.in"
  "$root/target/release/keyrack-fake-aws" < "$world/fake.in" > "$world/fake.url" &
  fake_pid=$!
  exec 9> "$world/fake.in"
  for _ in $(seq 50); do [ -s "$world/fake.url" ] && break; sleep 0.1; done
  fake=$(cat "$world/fake.url")
  export AWS_ENDPOINT_URL_SSO_OIDC=$fake AWS_ENDPOINT_URL_SSO=$fake AWS_ENDPOINT_URL_STS=$fake AWS_EC2_METADATA_DISABLED=true
  printf '#!/bin/sh\nexec curl -s -L --max-time 20 -o /dev/null "$1"\n' > "$world/browser.sh"; chmod +x "$world/browser.sh"
  BROWSER="$world/browser.sh" "$kr" set --key AWS_PROFILE --env test --sso-start-url https://d-1234567890.awsapps.com/start \
    --sso-region us-east-1 --account-id 123456789012 --role-name AdministratorAccess --profile-name bench.test >/dev/null 2>&1
  "$kr" unlock --env test >/dev/null
  "$kr" aws credentials --profile bench.test >/dev/null
  hf aws_credentials "$runs" -N "$kr aws credentials --profile bench.test"
  hf aws_cli 10 -N "aws sts get-caller-identity --profile bench.test"
  aws_rows=1
fi

# peak RSS (KiB) of one get, the median of 5 runs: warm (the allowlist cache settled: every get
# once keyrack.yml stands unchanged) and cold (keyrack.yml edited just now: parsed each time, not
# cached yet); and of the daemon holding 1000 keys. (`set` above added SET_BENCH to keyrack.yml.)
rss() { for _ in 1 2 3 4 5; do { /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -1; done | sort -n | sed -n 3p; }
sleep 2.1
"$kr" get --key KEY_0 --env test --value >/dev/null # parses once more and writes the cache
client_rss=$(rss "$kr" get --key KEY_0 --env test --value)
touch keyrack.yml
cold_rss=$(rss "$kr" get --key KEY_0 --env test --value)
floor_rss=$(rss "$floor" "$sock" bench.test.KEY_0)
(cd "$world" && "$kr" --owner d1000 unlock >/dev/null)   # outside the repo: only its 1000 machine-wide keys
dpid=$("$kr" --owner d1000 --json daemon status | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
grants=$("$kr" --owner d1000 --json daemon status | python3 -c 'import json,sys; print(json.load(sys.stdin)["grants"])')
daemon_rss=$(awk '/VmRSS/{print $2}' "/proc/$dpid/status")
daemon_hwm=$(awk '/VmHWM/{print $2}' "/proc/$dpid/status")

python3 - "$out" "$client_rss" "$floor_rss" "$grants" "$daemon_rss" "$daemon_hwm" "$aws_rows" "$cold_rss" <<'PY'
import json, sys, os
out, client_rss, floor_rss, grants, daemon_rss, daemon_hwm, aws_rows, cold_rss = sys.argv[1:]
def med(n):
    r = json.load(open(os.path.join(out, n + ".json")))["results"][0]
    return r["median"] * 1000, r["mean"] * 1000, r["stddev"] * 1000
floor = med("floor")[0]
rows = [
    ("/bin/true (process floor)", "true", None),
    ("socket round trip (floor)", "floor", None),
    ("get --value (daemon)", "get", "≤ 2 ms, ≤ 4× floor"),
    ("get --value (env path, CI)", "get_env", ""),
    ("source, 50 keys", "source50", "≤ 3 ms"),
    ("exec -- /bin/true, 50 keys", "exec50", "≤ 3 ms"),
    ("list, 500 keys (decrypts)", "list500", ""),
    ("sh: printf | /bin/true (pipe floor)", "sh_pipe_floor", None),
    ("set via stdin (round trip proven)", "set_stdin", ""),
    ("unlock, 100 os.secure keys", "unlock100", "≤ 300 ms"),
]
if aws_rows == "1":
    rows += [
        ("aws credentials (credential_process, daemon)", "aws_credentials", "≤ 5 ms"),
        ("aws sts get-caller-identity (AWS CLI v1)", "aws_cli", None),
    ]
lines = ["| command | median ms | mean ± sd ms | × socket floor | target |", "|---|---:|---:|---:|---|"]
for label, name, target in rows:
    m, mean, sd = med(name)
    lines.append(f"| {label} | {m:.2f} | {mean:.2f} ± {sd:.2f} | {m / floor:.1f}× | {target or ''} |")
lines.append("")
lines.append(f"peak RSS: keyrack get {int(client_rss)/1024:.1f} MiB, {int(cold_rss)/1024:.1f} MiB cold (keyrack.yml just edited) "
             f"(floor binary {int(floor_rss)/1024:.1f} MiB, target ≤ 5 MiB); "
             f"daemon holding {grants} keys: RSS {int(daemon_rss)/1024:.1f} MiB, peak {int(daemon_hwm)/1024:.1f} MiB (target ≤ 10 MB)")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "results.md"), "w").write(text)
print(text)
PY
