#!/usr/bin/env bash
# Runs a command with a Kafka-protocol broker reachable at $SLUICE_KAFKA_BROKERS.
# When SLUICE_KAFKA_BROKERS is already set (e.g. a real Apache Kafka), it is used as is;
# otherwise a memory-only Tansu broker is started on a free loopback port and stopped
# when the command ends, however it ends.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck disable=SC1091
. "$root/.deps/env.sh"
if [ -n "${SLUICE_KAFKA_BROKERS:-}" ]; then
  echo "using external broker $SLUICE_KAFKA_BROKERS" >&2
  exec "$@"
fi
[ -n "${TANSU:-}" ] && [ -x "$TANSU" ] || { echo "no Tansu broker: run scripts/provision.sh test" >&2; exit 2; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$root/.build"
logfile="$root/.build/tansu-$port.log"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" >"$logfile" 2>&1 &
broker=$!
cleanup() { kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$broker" 2>/dev/null || { echo "Tansu broker exited; log:" >&2; cat "$logfile" >&2; exit 2; }
  sleep 0.1
done
echo "Tansu broker on 127.0.0.1:$port (log $logfile)" >&2
export SLUICE_KAFKA_BROKERS="127.0.0.1:$port"
# The fault suite skips what this Tansu version cannot do (and says so).
export SLUICE_KAFKA_BROKER_KIND=tansu
set +e
"$@"
status=$?
set -e
exit $status
