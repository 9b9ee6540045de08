#!/usr/bin/env bash
# Builds keyrack and runs its main job in a throwaway world: a temporary HOME and KEYRACK_HOME,
# keyrack's own generated age identity, a demo repository, and a real session daemon.
# No AWS account, no network, nothing outside the temporary directory is touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p keyrack-cli
kr="$root/target/release/keyrack"

world=$(mktemp -d "${TMPDIR:-/tmp}/keyrack-quickstart.XXXXXX")
export HOME="$world/home" KEYRACK_HOME="$world/home/.keyrack" XDG_RUNTIME_DIR="$world/run"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$world/demo/.git"
cleanup() { "$kr" daemon prune >/dev/null 2>&1 || true; rm -rf "$world"; }
trap cleanup EXIT
cd "$world/demo"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' off=$'\033[0m'; else bold='' off=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$off"; }
run() { step "$*"; "$@"; }

run "$kr" init --org demo
step "cat keyrack.yml"; cat keyrack.yml
step "printf %s 'xai-demo-secret' | keyrack set --key XAI_API_KEY --env test"
printf %s 'xai-demo-secret' | "$kr" set --key XAI_API_KEY --env test
step "keyrack get --key XAI_API_KEY --env test   # locked until unlocked"
"$kr" get --key XAI_API_KEY --env test || echo "(exit $?: locked)"
run "$kr" unlock --env test
step "keyrack get --key XAI_API_KEY --env test --value"
"$kr" get --key XAI_API_KEY --env test --value; echo
run "$kr" source --env test
step "keyrack exec --env test -- sh -c 'echo child sees \${#XAI_API_KEY} chars'"
"$kr" exec --env test -- sh -c 'echo "child sees ${#XAI_API_KEY} chars"'
run "$kr" status
run "$kr" list
run "$kr" relock
step "keyrack get --key XAI_API_KEY --env test   # locked again"
"$kr" get --key XAI_API_KEY --env test || echo "(exit $?: locked)"
run "$kr" del --key XAI_API_KEY --env test
printf '\nquickstart: ok (world %s removed)\n' "$world"
