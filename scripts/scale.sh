#!/usr/bin/env bash
# `make scale`: every stage N-wide on Kafka under load, and the checks that they work together.
#   3 Ingress, 3 Inspector, 2 Forwarder, 2 Recorder processes (`sluice <stage> --config`, each with
#   its own admin port, data_dir and SLUICE_INSTANCE_ID) on the broker at $SLUICE_KAFKA_BROKERS
#   (scripts/with-broker.sh starts Tansu when it is not set), an nginx upstream as in
#   scripts/bench-proxy.sh, and one wrk per Ingress in parallel (no balancer in front: each wrk
#   spreads SCALE_CONNECTIONS over its own Ingress, so the load goes through all of them).
# Prints:
#   - per Ingress: reply messages read vs replies answered (sluice_ingress_replies_read_total /
#     _answered_total from its /metrics; ratio 1 = no fan-out);
#   - total throughput, and p50/p99 over all calls (the wrk latency histograms merged);
#   - bytes per accepted request per topic over the load window (HopTrace --bytes);
#   - exactly one outcome per accepted request (HopTrace --ledger over the whole run; exit 1 when not);
#   - each audit event once in the one `file` sink the 2 Recorders share (each writes the
#     partitions it owns to its own file): lines across both files vs distinct event ids vs the
#     ids on the topics, after the sink's consumer group has committed everything (Bus.lag, no
#     fixed wait; exit 1 on duplicates or missing events);
#   - CPU per stage: utime+stime (/proc/PID/stat) over the load window, summed over the stage's
#     instances, in µs per answered request.
# Usage: scale.sh BIN_DIR   (with sluice and HopTrace built, release)
# Environment: SCALE_SECONDS (30), SCALE_CONNECTIONS (8 per Ingress), SCALE_PARTITIONS (6),
#   SCALE_BODY_BYTES (1024), SCALE_KAFKA_BUS (extra bus settings, as BENCH_KAFKA_BUS).
set -euo pipefail
bin="$1"
sluice="$bin/sluice"
hoptrace="$bin/HopTrace"
seconds="${SCALE_SECONDS:-30}"
conns="${SCALE_CONNECTIONS:-8}"
partitions="${SCALE_PARTITIONS:-6}"
body_bytes="${SCALE_BODY_BYTES:-1024}"
ingresses=3 inspectors=3 forwarders=2 recorders=2
[ -n "${SLUICE_KAFKA_BROKERS:-}" ] || { echo "scale: SLUICE_KAFKA_BROKERS is not set (run under scripts/with-broker.sh)" >&2; exit 2; }
for f in "$sluice" "$hoptrace"; do [ -x "$f" ] || { echo "scale: $f is not built" >&2; exit 2; }; done
for tool in nginx wrk curl python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "scale: $tool is missing (scripts/provision.sh bench installs it)" >&2; exit 2; }
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${SCALE_KEEP:-}" ]; then echo "scale: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # URL: waits until it answers (any status), at most 60 s
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "scale: $1 did not come up" >&2; return 1
}
wait_ready() { # ADMIN_PORT: waits until /readyz answers 200, at most 120 s
  for _ in $(seq 1 1200); do curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" && return 0; sleep 0.1; done
  echo "scale: the process on admin port $1 is not ready: $(curl -s "http://127.0.0.1:$1/readyz")" >&2; return 1
}
now_ms() { date +%s%3N; }
metric() { # ADMIN_PORT NAME: the value of an unlabelled series on /metrics (0 when absent)
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1==n {v=$2} END {printf "%.0f\n", v}'
}
cpu_ticks() { # PID: utime+stime in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# The body: agent tool-call JSON of SCALE_BODY_BYTES, nothing secret in it (as bench-proxy.sh).
body="$(python3 - "$body_bytes" <<'EOF'
import json, sys
size = int(sys.argv[1])
args = {"query": "quarterly revenue by region", "filters": []}
n = 0
while len(json.dumps({"tool": "search", "arguments": args}, separators=(",", ":"))) < size - 24:
    args["filters"].append({"field": "region", "op": "eq", "value": f"eu-west-{n}"}); n += 1
print(json.dumps({"tool": "search", "arguments": args}, separators=(",", ":"))[:size])
EOF
)"
key="scale-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key_sha="$(printf %s "$key" | sha256sum | cut -d' ' -f1)"
printf %s "$body" >"$tmp/body.json"
# wrk's script: the request (no X-Sluice-Session: each call is its own session, so `requests`
# and `audit`, keyed by session, spread over every partition and every instance), and at the end the whole latency histogram (µs, count) to a file,
# so the percentiles over all Ingresses are those of every call, not an average of percentiles.
write_lua() { # FILE HISTOGRAM_FILE
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
local f = io.open("$tmp/body.json", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local out = io.open("$2", "w")
  for i = 1, #latency do local v, c = latency(i); out:write(string.format("%d %d\n", v, c)) end
  out:close()
end
EOF
}

up_port="$(port)"
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$up_port;
    location / { default_type application/json; return 200 '{"ok":true,"result":{"rows":12,"region":"eu-west-1"}}'; }
  }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$up_port/"

export SLUICE_SEAL_KEY="$(head -c 32 /dev/urandom | base64)"
export SLUICE_FP_KEY="$(head -c 32 /dev/urandom | base64)"
export SCALE_UPSTREAM_TOKEN="upstream-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
prefix="scale$RANDOM."
txn=""
[ "${SLUICE_KAFKA_BROKER_KIND:-}" != tansu ] || txn=", transactions: false"
bus="{ kind: kafka, brokers: \"$SLUICE_KAFKA_BROKERS\", topic_prefix: \"$prefix\", partitions: $partitions$txn${SCALE_KAFKA_BUS:+, $SCALE_KAFKA_BUS} }"
write_config() { # FILE LISTEN ADMIN DATA
  cat > "$1" <<EOF
listen: 127.0.0.1:$2
admin_listen: 127.0.0.1:$3
data_dir: $4
max_body_bytes: 1048576
request_timeout: 30s
max_in_flight: 4096
max_in_flight_per_identity: 4096
bus: $bus
sealing:
  keys: [ { id: k1, secret: "env:SLUICE_SEAL_KEY" } ]
  fingerprint_key: "env:SLUICE_FP_KEY"
identities:
  api_keys:
    - { id: scale, sha256: "$key_sha", groups: [agents] }
connections:
  - name: scale
    upstream: http://127.0.0.1:$up_port
    allow_groups: [agents]
    credentials: { header: Authorization, value: "Bearer env:SCALE_UPSTREAM_TOKEN" }
    policy: { on_secret: mask, classes: [credential, pii], scan_responses: true }
recorder:
  sinks: [ { kind: file, name: audit, path: $4/audit.jsonl } ]
EOF
}

# Numbered Ingress instance ids: an id ending in N reads `replies` partition N mod the partition
# count (IngressOptions.replyKey, docs/ingress.md), so ingress-0 … ingress-(N-1) each read a
# partition of their own while N <= partitions; two sharing one would each read the other's
# replies too (the read/answered ratio shows it).
ingress_ids=()
for i in $(seq 0 $((ingresses - 1))); do ingress_ids+=("ingress-$i"); done

declare -A stage_of admin_of
ingress_admins=() ingress_ports=()
start() { # STAGE INSTANCE_ID
  local a l dir
  a="$(port)"; l="$(port)"; dir="$tmp/$2"
  mkdir -p "$dir"
  write_config "$dir/sluice.yaml" "$l" "$a" "$dir"
  SLUICE_INSTANCE_ID="$2" "$sluice" "$1" --config "$dir/sluice.yaml" --log-level warning >"$dir/log" 2>&1 &
  local pid=$!
  pids+=($pid); stage_of[$pid]="$1"; admin_of[$pid]="$a"
  if [ "$1" = ingress ]; then ingress_admins+=("$a"); ingress_ports+=("$l"); fi
  if [ "$1" = recorder ]; then recorder_dirs+=("$dir"); fi
}
recorder_dirs=()
for i in $(seq 1 $recorders); do start recorder "recorder-$i"; done
for i in $(seq 1 $forwarders); do start forwarder "forwarder-$i"; done
for i in $(seq 1 $inspectors); do start inspector "inspector-$i"; done
for id in "${ingress_ids[@]}"; do start ingress "$id"; done
stage_pids=("${pids[@]:1}")
# Every stage process serves /readyz on its admin port: ready once its consumer group is joined
# (and, for forwarders and recorders, their upstreams and sinks reachable).
for pid in "${stage_pids[@]}"; do wait_ready "${admin_of[$pid]}"; done

# The consumer groups settle before anything counts: each Ingress answers a call.
for l in "${ingress_ports[@]}"; do
  ok=""
  for _ in $(seq 1 300); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data '{}' "http://127.0.0.1:$l/fn/scale/q")"
    [ "$code" = 200 ] && { ok=1; break; }
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "scale: the Ingress on port $l never answered 200 (last $code)" >&2; exit 1; }
done

run_load() { # SECONDS TAG: one wrk per Ingress in parallel; outputs in $tmp/wrk-TAG-<i>.{out,hist}
  local i wpids=()
  for i in "${!ingress_ports[@]}"; do
    write_lua "$tmp/wrk-$2-$i.lua" "$tmp/wrk-$2-$i.hist"
    wrk -t1 -c"$conns" -d"$1"s --latency -s "$tmp/wrk-$2-$i.lua" "http://127.0.0.1:${ingress_ports[$i]}/fn/scale/q" >"$tmp/wrk-$2-$i.out" 2>&1 &
    wpids+=($!)
  done
  for p in "${wpids[@]}"; do wait "$p"; done
}
run_load 3 warmup

# The stages' CPU while idle (the polls of about a dozen consumers per process go on without
# traffic), so the per-call figure can be told apart from the fixed cost.
idle_s="${SCALE_IDLE_SECONDS:-5}"
# The broker's CPU too, when it listens on this machine (Tansu under with-broker.sh): its pid
# from the listening socket of the first broker address's port.
broker_pid="$(ss -Htlnp "sport = :${SLUICE_KAFKA_BROKERS##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)"
if [ -n "$broker_pid" ] && [ -r "/proc/$broker_pid/stat" ]; then stage_pids+=("$broker_pid"); stage_of[$broker_pid]=broker; fi
declare -A cpu_idle
for p in "${stage_pids[@]}"; do cpu_idle[$p]="$(cpu_ticks "$p")"; done
idle_t0="$(now_ms)"
sleep "$idle_s"  # the measuring window itself, not a wait for a condition
idle_window_s="$(python3 -c "print(($(now_ms) - $idle_t0) / 1000)")"
for p in "${stage_pids[@]}"; do cpu_idle[$p]=$(( $(cpu_ticks "$p") - ${cpu_idle[$p]} )); done

declare -A cpu_before read_before answered_before
for p in "${stage_pids[@]}"; do cpu_before[$p]="$(cpu_ticks "$p")"; done
for a in "${ingress_admins[@]}"; do
  read_before[$a]="$(metric "$a" sluice_ingress_replies_read_total)"
  answered_before[$a]="$(metric "$a" sluice_ingress_replies_answered_total)"
done
since="$(now_ms)"
run_load "$seconds" load
until_ms="$(now_ms)"
declare -A cpu_after
for p in "${stage_pids[@]}"; do cpu_after[$p]="$(cpu_ticks "$p")"; done
window_s="$(python3 -c "print(($until_ms - $since) / 1000)")"

echo "== scale: $ingresses ingress, $inspectors inspector, $forwarders forwarder, $recorders recorder processes on ${SLUICE_KAFKA_BROKER_KIND:-external Kafka} ($SLUICE_KAFKA_BROKERS), $partitions partitions, $(nproc) cores"
echo "   load: one wrk per Ingress in parallel, 1 thread x $conns connections each, ${seconds} s, ${body_bytes} B JSON POST"
answered_total=0
echo "-- per Ingress: replies read vs answered over the load window (and the wrk figures of its own callers)"
for i in "${!ingress_admins[@]}"; do
  a="${ingress_admins[$i]}"
  r="$(metric "$a" sluice_ingress_replies_read_total)"; w="$(metric "$a" sluice_ingress_replies_answered_total)"
  python3 - "${ingress_ids[$i]}" "$partitions" "${read_before[$a]}" "$r" "${answered_before[$a]}" "$w" "$tmp/wrk-load-$i.out" <<'EOF'
import sys, re
name, parts, r0, r1, a0, a1, out = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:7]), sys.argv[7]
read, answered = r1 - r0, a1 - a0
text = open(out).read()
rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"  {name}: replies read {read:.0f}, answered {answered:.0f}, ratio {read / answered if answered else float('nan'):.3f}; "
      f"{rps.group(1) if rps else '?'} req/s" + (f", {non2xx.group(1)} non-2xx" if non2xx else ""))
EOF
done
python3 - "$tmp" "${#ingress_ports[@]}" "$window_s" >"$tmp/load.txt" <<'EOF'
import sys, re
tmp, n, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
total = non2xx = errors = 0
rps = 0.0
hist = {}
for i in range(n):
    text = open(f"{tmp}/wrk-load-{i}.out").read()
    total += int(re.search(r"(\d+) requests in", text).group(1))
    rps += float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text); non2xx += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(map(int, m.groups())) if m else 0
    for line in open(f"{tmp}/wrk-load-{i}.hist"):
        v, c = map(int, line.split()); hist[v] = hist.get(v, 0) + c
count = sum(hist.values())
def pct(q):
    need, seen = q * count, 0
    for v in sorted(hist):
        seen += hist[v]
        if seen >= need: return v / 1000
    return float("nan")
print(f"{total} {rps:.1f} {pct(0.5):.2f} {pct(0.99):.2f} {non2xx} {errors}")
EOF
read -r total rps p50 p99 non2xx errors <"$tmp/load.txt"
echo "-- total: $total calls answered in the load window, $rps req/s over all Ingresses; latency over all calls p50 $p50 ms, p99 $p99 ms; non-2xx $non2xx, socket errors $errors"

echo "-- CPU per stage (utime+stime, all instances of the stage): per answered call over the load window;"
echo "   idle: cores busy over ${idle_s} s without traffic; marginal: per call after taking the idle rate off"
clk="$(getconf CLK_TCK)"
for stage in ingress inspector forwarder recorder broker; do
  ticks=0 idle=0 n=0
  for p in "${stage_pids[@]}"; do
    [ "${stage_of[$p]}" = "$stage" ] || continue
    ticks=$(( ticks + ${cpu_after[$p]} - ${cpu_before[$p]} )); idle=$(( idle + ${cpu_idle[$p]} )); n=$(( n + 1 ))
  done
  [ "$n" -gt 0 ] || continue
  python3 -c "
import sys
t, i, c, n, calls, w, iw = map(float, sys.argv[1:8])
calls = max(calls, 1)
print('  %-9s x%d: %7.1f us CPU per call (%.2f cores busy under load; idle %.2f cores); marginal %7.1f us per call'
      % (sys.argv[8], n, t * 1e6 / c / calls, t / c / w, i / c / iw, (t / c - i / c / iw * w) * 1e6 / calls))" \
    "$ticks" "$idle" "$clk" "$n" "$total" "$window_s" "$idle_window_s" "$stage"
done
[ -n "$broker_pid" ] || echo "  (the broker's CPU: not on this machine, or its pid not found)"

# Everything in flight ends first (each Ingress has no call waiting), then the topics are read.
for a in "${ingress_admins[@]}"; do
  for _ in $(seq 1 600); do [ "$(metric "$a" sluice_ingress_in_flight_requests)" = 0 ] && break; sleep 0.1; done
done
echo "-- bytes per topic over the load window (HopTrace --bytes)"
"$hoptrace" --brokers "$SLUICE_KAFKA_BROKERS" --prefix "$prefix" --bytes --since "$since" --until "$until_ms" | sed 's/^/  /'
echo "-- the ledger over the whole run (HopTrace --ledger), after the Recorders' shared sink group committed everything"
status=0
"$hoptrace" --brokers "$SLUICE_KAFKA_BROKERS" --prefix "$prefix" --ledger --settle recorder-sink-audit --audit-ids "$tmp/audit-ids" \
  | grep -v '^  topic \|^bytes written' | sed 's/^/  /' || status=1
echo "-- audit: the one file sink the $recorders Recorders share, across their files"
python3 - "$tmp/audit-ids" "${recorder_dirs[@]/%//audit.jsonl}" <<'EOF' || status=1
import sys, json, os
expected = set(open(sys.argv[1]).read().split())
lines, seen, per_file, other = 0, {}, [], 0
for path in sys.argv[2:]:
    n = 0
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if not line: continue
            record = json.loads(line)
            eid = record.get("event_id")
            if eid is None: other += 1; continue
            n += 1; seen[eid] = seen.get(eid, 0) + 1
    per_file.append(n); lines += n
dupes = sum(c - 1 for c in seen.values() if c > 1)
missing = len(expected - set(seen))
extra = len(set(seen) - expected)
print(f"  event lines per file {per_file} (total {lines}; {other} chain records besides), distinct event ids {len(seen)}, "
      f"expected from the topics {len(expected)}; duplicates {dupes}, missing {missing}, not on the topics {extra}")
sys.exit(1 if dupes or missing or not expected else 0)
EOF
if [ "$status" != 0 ]; then echo "scale: FAILED (see above)"; else echo "scale: ok"; fi
exit "$status"
