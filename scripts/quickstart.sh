#!/usr/bin/env bash
# Builds keyrack and runs what it is for, in a throwaway world: a temporary HOME and KEYRACK_HOME,
# keyrack's own generated age identity, a demo repository and a real session daemon.
#   1. a key: init, set (proven), locked until unlocked, get / source / exec, relock, del
#   2. AWS SSO against the bundled loopback fake of AWS (keyrack-fake-aws on 127.0.0.1): set with
#      one trip through a stand-in browser (curl), a silent unlock, the AWS CLI using the profile
#      (when one is installed), relock cutting it off.
# No AWS account, no network, nothing outside the temporary directory is touched.
#
# For the test suite: KEYRACK_BIN=<keyrack> skips the build (the fake is then taken from the
# same directory), FAKE_AWS_URL=<url> uses a fake that is already running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${KEYRACK_BIN:-}" ]; then
  kr=$KEYRACK_BIN
  fake_bin="$(dirname "$kr")/keyrack-fake-aws"
else
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p keyrack-cli -p keyrack-fake-aws
  kr="$root/target/release/keyrack"
  fake_bin="$root/target/release/keyrack-fake-aws"
fi

world=$(mktemp -d "${TMPDIR:-/tmp}/keyrack-quickstart.XXXXXX")
export HOME="$world/home" KEYRACK_HOME="$world/home/.keyrack" XDG_RUNTIME_DIR="$world/run"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$world/demo/.git"
fake_pid=""
cleanup() {
  "$kr" daemon prune >/dev/null 2>&1 || true
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$world"
}
trap cleanup EXIT
cd "$world/demo"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' off=$'\033[0m'; else bold='' off=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$off"; }
run() { step "$*"; "$@"; }
k() { step "keyrack $*"; "$kr" "$@"; }
say() { printf '%s\n' "$*"; }

say "# 1. a key"
k init --org demo
step "cat keyrack.yml"; cat keyrack.yml
step "printf %s 'xai-demo-secret' | keyrack set --key XAI_API_KEY --env test"
printf %s 'xai-demo-secret' | "$kr" set --key XAI_API_KEY --env test
step "keyrack get --key XAI_API_KEY --env test   # locked until unlocked"
"$kr" get --key XAI_API_KEY --env test || say "(exit $?: locked)"
k unlock --env test
step "keyrack get --key XAI_API_KEY --env test --value"
"$kr" get --key XAI_API_KEY --env test --value; echo
k source --env test
step "keyrack exec --env test -- sh -c 'echo child sees \${#XAI_API_KEY} chars'"
"$kr" exec --env test -- sh -c 'echo "child sees ${#XAI_API_KEY} chars"'
k status
k list
k relock
step "keyrack get --key XAI_API_KEY --env test   # locked again"
"$kr" get --key XAI_API_KEY --env test || say "(exit $?: locked)"
k del --key XAI_API_KEY --env test --from-manifest

say ""
say "# 2. AWS SSO, against a loopback fake of AWS (no account, no network)"
if ! command -v curl >/dev/null 2>&1; then
  say "(skipped: the stand-in browser needs curl)"
  printf '\nquickstart: ok (world %s removed)\n' "$world"
  exit 0
fi
if [ -n "${FAKE_AWS_URL:-}" ]; then
  fake=$FAKE_AWS_URL
else
  mkfifo "$world/fake.in"
  "$fake_bin" < "$world/fake.in" > "$world/fake.url" &
  fake_pid=$!
  exec 9> "$world/fake.in"   # the fake serves until this closes (at exit)
  for _ in $(seq 50); do [ -s "$world/fake.url" ] && break; sleep 0.1; done
  fake=$(cat "$world/fake.url")
fi
export AWS_ENDPOINT_URL_SSO_OIDC=$fake AWS_ENDPOINT_URL_SSO=$fake AWS_ENDPOINT_URL_STS=$fake
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
# the stand-in browser: follows the sign-in link the way a signed-in user approving it would
printf '#!/bin/sh\necho "$1" >> "%s/browser.log"\nexec curl -s -L --max-time 20 -o /dev/null "$1"\n' "$world" > "$world/browser"
chmod +x "$world/browser"
export BROWSER="$world/browser"
trips() { if [ -f "$world/browser.log" ]; then wc -l < "$world/browser.log" | tr -d ' '; else echo 0; fi; }

k set --key AWS_PROFILE --env test \
  --sso-start-url https://d-1234567890.awsapps.com/start --sso-region us-east-1 \
  --account-id 123456789012 --role-name AdministratorAccess --profile-name demo.test
say "(browser trips: $(trips) — the sign-in and consent, once)"
k unlock --env test
say "(browser trips: $(trips) — unlock reused the encrypted SSO token: no browser)"
if command -v aws >/dev/null 2>&1; then
  run aws sts get-caller-identity --profile demo.test --output text
else
  say "(no AWS CLI installed: skipped \`aws sts get-caller-identity --profile demo.test\`; pip install awscli to see it)"
  step "keyrack aws credentials --profile demo.test | head -c 60   # what credential_process reads"
  "$kr" aws credentials --profile demo.test | head -c 60; echo "…"
fi
k relock
if command -v aws >/dev/null 2>&1; then
  step "aws sts get-caller-identity --profile demo.test   # relocked: the token left ~/.aws/sso/cache"
  if aws sts get-caller-identity --profile demo.test --output text 2>/dev/null; then
    say "quickstart: the AWS CLI still worked after relock" >&2
    exit 1
  else
    say "(exit $?: no SSO token, no access)"
  fi
else
  step "keyrack aws credentials --profile demo.test   # relocked"
  "$kr" aws credentials --profile demo.test || say "(exit $?: locked)"
fi
printf '\nquickstart: ok (world %s removed)\n' "$world"
