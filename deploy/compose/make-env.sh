#!/usr/bin/env bash
# Writes .env for docker compose (docker-compose.yml): fresh random development secrets.
# Refuses to overwrite an existing file. Production: set these from your secret store instead.
#   SLUICE_SEAL_KEY  AES-256-GCM key sealing bodies on the topics (32 bytes, base64)
#   SLUICE_FP_KEY    HMAC key of finding fingerprints (32 bytes, base64)
#   ECHO_TOKEN       the credential the forwarder injects into calls to the echo function
set -euo pipefail
out="${1:-.env}"
if [ -e "$out" ]; then echo "make-env: $out exists, not overwritten" >&2; exit 1; fi
umask 077
{
  echo "SLUICE_SEAL_KEY=$(head -c 32 /dev/urandom | base64)"
  echo "SLUICE_FP_KEY=$(head -c 32 /dev/urandom | base64)"
  echo "ECHO_TOKEN=upstream-$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')"
} > "$out"
echo "make-env: wrote $out (mode 600)" >&2
