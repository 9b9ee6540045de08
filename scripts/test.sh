#!/usr/bin/env bash
# Runs the whole test suite. Installs the tools the tests drive (the age CLI for interop,
# ssh-keygen for SSH identities, fish for shell quoting, python3 + setpriv for the foreign-uid
# daemon test and the stand-in 1Password CLI, flock for the sign-in lock test, curl as the test browser,
# faketime for doctor's clock check, dbus-daemon + gnome-keyring + secret-tool for the os.keychain
# vault (a real Secret Service on a private session bus per test), the AWS CLI v1 for botocore
# interop, moto's server for SSM Parameter Store (the aws.params vault)) when they are missing and
# this machine can install them (Debian/Ubuntu as root; pip for the AWS CLI and moto).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=()
for tool in age age-keygen ssh-keygen fish python3 setpriv flock curl faketime dbus-daemon dbus-send gnome-keyring-daemon secret-tool; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing test tools for: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq age openssh-client fish python3 python3-pip util-linux curl faketime \
      dbus gnome-keyring libsecret-tools >/dev/null
  else
    echo "missing test tools: ${missing[*]} (install: age openssh-client fish python3 util-linux curl faketime dbus gnome-keyring libsecret-tools)" >&2
    exit 1
  fi
fi
if ! command -v aws >/dev/null 2>&1; then
  echo "installing the AWS CLI v1 (botocore interop tests)" >&2
  python3 -m pip install --quiet awscli 2>/dev/null || python3 -m pip install --quiet --break-system-packages awscli
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  hash -r
  command -v aws >/dev/null 2>&1 || { echo "the AWS CLI did not land on PATH" >&2; exit 1; }
fi
# -I: no current directory on the module path (a stray select.py in it must not shadow the stdlib)
if ! python3 -I -c 'import moto.server' >/dev/null 2>&1; then
  echo "installing moto (SSM Parameter Store for the aws.params tests)" >&2
  python3 -m pip install --quiet 'moto[server]' 2>/dev/null || python3 -m pip install --quiet --break-system-packages 'moto[server]'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  python3 -I -c 'import moto.server' >/dev/null 2>&1 || { echo "moto did not install (python3 -m pip install 'moto[server]')" >&2; exit 1; }
fi
cd "$root"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -o pipefail
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
# one closing line for the whole workspace
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
