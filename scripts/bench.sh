#!/usr/bin/env bash
# Prints Sluice's figures: bus throughput/latency (embedded and Kafka), detection speed,
# and requests/s with latency through the gateway. Called by `make bench` with the
# release binary folder; $SLUICE_KAFKA_BROKERS points at the broker make bench started.
set -euo pipefail
bin="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "== bus: publish -> consume, 1 KiB messages"
"$bin/BusBench" --embedded "$tmp/bus" ${SLUICE_KAFKA_BROKERS:+--kafka "$SLUICE_KAFKA_BROKERS"}
echo "== recorder: drain rate of a pre-filled audit topic (embedded bus)"
"$bin/RecorderBench" --dir "$tmp/recorder"
echo "== detection: single thread"
"$bin/DetectionBench"
echo "== gateway: caller -> ingress -> inspector -> forwarder -> upstream -> caller"
SLUICE_BIN="$bin/sluice" "$bin/GatewayBench" --mode both
echo "== proxy table (wrk): direct, nginx, sluice run, Kafka mode"
"$(dirname "$0")/bench-proxy.sh" "$bin/sluice"
