#!/usr/bin/env bash
# Runs a command with development secrets in the environment, for `make run`:
# sealing and fingerprint keys and a demo upstream token, generated
# once into ./data/dev-secrets (mode 600) unless already set in the environment.
# Never use these for production: there, set the variables from your secret store.
set -euo pipefail
dir="${SLUICE_DEV_SECRETS:-./data/dev-secrets}"
mkdir -p "$dir"
chmod 700 "$dir"
gen() { [ -s "$dir/$1" ] || { head -c 32 /dev/urandom | base64 > "$dir/$1"; chmod 600 "$dir/$1"; }; }
gen seal-key
gen fp-key
[ -s "$dir/upstream-token" ] || { echo "upstream-$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')" > "$dir/upstream-token"; chmod 600 "$dir/upstream-token"; }
export SLUICE_SEAL_KEY="${SLUICE_SEAL_KEY:-$(cat "$dir/seal-key")}"
export SLUICE_FP_KEY="${SLUICE_FP_KEY:-$(cat "$dir/fp-key")}"
export ECHO_TOKEN="${ECHO_TOKEN:-$(cat "$dir/upstream-token")}"
echo "dev secrets in $dir; demo API key for curl: sluice-demo-key (see config/sluice.example.yaml)" >&2
exec "$@"
