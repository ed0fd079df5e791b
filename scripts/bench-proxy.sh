#!/usr/bin/env bash
# The proxy table of `make bench`: requests/s and latency of a 1 KiB JSON POST, measured with wrk
# in one run against the same nginx upstream through each path:
#   direct      wrk -> upstream
#   nginx       wrk -> nginx proxy_pass (keep-alive to the upstream) -> upstream
#   floor       wrk -> ProxyFloor: Hummingbird + AsyncHTTPClient with nothing of Sluice's, then a proxy on
#               SwiftNIO alone (every call on one event loop); each without and with inline detection
#               (Benchmarks/ProxyFloor): the ceiling of the sluice run row with each stack
#   sluice run  wrk -> sluice run (embedded bus; credential + pii, mask, response scanning) -> upstream
#   kafka       wrk -> sluice ingress -> inspector -> forwarder (one process each, recorder too) -> upstream
#               (only when $SLUICE_KAFKA_BROKERS is set; make bench starts a Tansu broker), then the
#               hops of the idle calls between their records on the topics (HopTrace, when built), the
#               CPU of each stage per call over the loaded run (utime+stime from /proc/PID/stat) and
#               the bytes written per call to each topic over it (HopTrace --bytes)
# Then the idle latency of one call at a time (wrk, one connection), and the RSS of sluice run.
# Usage: bench-proxy.sh SLUICE_BINARY   (the floor rows use ProxyFloor beside it, when built)
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS (16), BENCH_THREADS (1), BENCH_INSPECTORS ("1 2"),
#   BENCH_SOAK_SECONDS (0: off; else RSS of sluice run is sampled under load for that long),
#   BENCH_KAFKA_BUS (extra bus settings for Kafka mode, e.g. 'librdkafka: { fetch.wait.max.ms: "2" }'),
#   BENCH_PATHS (which rows beside direct and nginx: "floor run kafka", the default, or any of them),
#   BENCH_PERF (a file: perf record -g of sluice run during its loaded run; read it with perf report -i).
# Fails (exit 1) when a path answers anything but 2xx: a fast error is not a figure.
set -euo pipefail
sluice="$1"
floor_bin="$(dirname "$sluice")/ProxyFloor"
hoptrace_bin="$(dirname "$sluice")/HopTrace"
seconds="${BENCH_SECONDS:-10}"
conns="${BENCH_CONNECTIONS:-16}"
threads="${BENCH_THREADS:-1}"
inspector_counts="${BENCH_INSPECTORS:-1 2}"
soak="${BENCH_SOAK_SECONDS:-0}"
paths=" ${BENCH_PATHS:-floor run kafka} "
wants() { [[ "$paths" == *" $1 "* ]]; }
for tool in nginx wrk curl python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench: $tool is missing (scripts/provision.sh bench installs it)" >&2; exit 2; }
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # URL: waits until it answers (any status), at most 60 s
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "bench: $1 did not come up" >&2; return 1
}

# The body: 1 KiB of agent tool-call JSON, nothing secret in it.
body="$(python3 - <<'EOF'
import json
args = {"query": "quarterly revenue by region", "filters": []}
n = 0
while len(json.dumps({"tool": "search", "arguments": args})) < 1000:
    args["filters"].append({"field": "region", "op": "eq", "value": f"eu-west-{n}"}); n += 1
print(json.dumps({"tool": "search", "arguments": args}, separators=(",", ":"))[:1024])
EOF
)"
key="bench-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key_sha="$(printf %s "$key" | sha256sum | cut -d' ' -f1)"
cat > "$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["X-Sluice-Session"] = "bench"
wrk.body = [[$body]]
EOF

up_port="$(port)"; proxy_port="$(port)"
mkdir -p "$tmp/nginx"
# Both nginx servers run one worker per core (worker_processes auto), as a production nginx would.
cat > "$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  upstream origin { server 127.0.0.1:$up_port; keepalive 64; }
  server {
    listen 127.0.0.1:$up_port;
    location / { default_type application/json; return 200 '{"ok":true,"result":{"rows":12,"region":"eu-west-1"}}'; }
  }
  server {
    listen 127.0.0.1:$proxy_port;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$up_port/"

results=()
# run_wrk LABEL URL CONNECTIONS SECONDS: prints "req/s p50_ms p99_ms"
run_wrk() {
  local out
  out="$(wrk -t"$threads" -c"$3" -d"$4"s --latency -s "$tmp/post.lua" "$2" 2>&1)"
  if grep -q "Non-2xx" <<<"$out" || grep -q "Socket errors" <<<"$out"; then
    echo "bench: $1 had errors:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  echo "$rps $(ms "$p50") $(ms "$p99")"
}
ms() { # wrk's 512.00us / 1.23ms / 1.02s -> milliseconds
  python3 -c 'import sys,re; v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s)",v); f={"us":0.001,"ms":1,"s":1000}[m.group(2)]; print("%.2f" % (float(m.group(1))*f))' "$1"
}

# sluice's configuration: one connection to the upstream, full inspection.
write_config() { # FILE BUS_YAML LISTEN ADMIN DATA
  cat > "$1" <<EOF
listen: 127.0.0.1:$3
admin_listen: 127.0.0.1:$4
data_dir: $5
max_body_bytes: 1048576
request_timeout: 30s
max_in_flight: 4096
max_in_flight_per_identity: 4096
bus: $2
sealing:
  keys: [ { id: k1, secret: "env:SLUICE_SEAL_KEY" } ]
  fingerprint_key: "env:SLUICE_FP_KEY"
identities:
  api_keys:
    - { id: bench, sha256: "$key_sha", groups: [agents] }
connections:
  - name: bench
    upstream: http://127.0.0.1:$up_port
    allow_groups: [agents]
    credentials: { header: Authorization, value: "Bearer env:BENCH_UPSTREAM_TOKEN" }
    policy: { on_secret: mask, classes: [credential, pii], scan_responses: true }
recorder:
  sinks: [ { kind: file, path: $5/audit.jsonl } ]
EOF
}
export SLUICE_SEAL_KEY="$(head -c 32 /dev/urandom | base64)"
export SLUICE_FP_KEY="$(head -c 32 /dev/urandom | base64)"
export BENCH_UPSTREAM_TOKEN="upstream-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"

start_sluice() { # NAME COMMAND CONFIG -> pid in $last_pid
  "$sluice" "$2" --config "$3" --log-level warning >"$tmp/$1.log" 2>&1 &
  last_pid=$!
  pids+=($last_pid)
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

table=()
row() { table+=("$(printf '| %-34s | %9s | %7s | %7s | %8s |' "$1" "$2" "$3" "$4" "$5")"); }

read -r d_rps d_p50 d_p99 < <(run_wrk direct "http://127.0.0.1:$up_port/fn/bench/q" "$conns" "$seconds")
read -r n_rps n_p50 n_p99 < <(run_wrk nginx "http://127.0.0.1:$proxy_port/fn/bench/q" "$conns" "$seconds")
ratio() { python3 -c 'import sys; print("%.1f %%" % (100*float(sys.argv[1])/float(sys.argv[2])))' "$1" "$n_rps"; }
row "direct to the upstream" "$d_rps" "$d_p50" "$d_p99" "$(ratio "$d_rps")"
row "nginx proxy_pass" "$n_rps" "$n_p50" "$n_p99" "100.0 %"
read -r di_rps di_p50 di_p99 < <(run_wrk direct-idle "http://127.0.0.1:$up_port/fn/bench/q" 1 3)

# The floor: the HTTP stack alone (Hummingbird + AsyncHTTPClient), and a proxy on SwiftNIO alone
# that keeps every call on one event loop; each without and with the detection engine inline.
# No bus, audit or auth: the ceiling of the sluice run row with today's stack, and with a
# hand-written event-loop path.
if wants floor && [ -x "$floor_bin" ]; then
  for mode in "" "--scan" "--event-loop" "--event-loop --scan"; do
    f_port="$(port)"
    # shellcheck disable=SC2086 # mode is a list of flags
    "$floor_bin" --listen "$f_port" --upstream "http://127.0.0.1:$up_port" $mode >"$tmp/floor.log" 2>&1 &
    f_pid=$!; pids+=($f_pid)
    wait_http "http://127.0.0.1:$f_port/"
    run_wrk warmup "http://127.0.0.1:$f_port/fn/bench/q" "$conns" 2 >/dev/null
    read -r f_rps f_p50 f_p99 < <(run_wrk "floor $mode" "http://127.0.0.1:$f_port/fn/bench/q" "$conns" "$seconds")
    case "$mode" in
      "") label="floor: Hummingbird + AHC" ;;
      "--scan") label="floor: Hummingbird + AHC + detect" ;;
      "--event-loop") label="floor: NIO event loop" ;;
      *) label="floor: NIO event loop + detect" ;;
    esac
    row "$label" "$f_rps" "$f_p50" "$f_p99" "$(ratio "$f_rps")"
    stop_pid "$f_pid"
  done
elif wants floor; then
  echo "bench: $floor_bin not built; the floor rows are left out" >&2
fi

# sluice run
soak_line=""
if wants run; then
s_port="$(port)"; s_admin="$(port)"
mkdir -p "$tmp/run"
write_config "$tmp/run.yaml" "{ kind: embedded, partitions: 6 }" "$s_port" "$s_admin" "$tmp/run"
start_sluice run run "$tmp/run.yaml"; run_pid=$last_pid
wait_http "http://127.0.0.1:$s_admin/readyz"
url="http://127.0.0.1:$s_port/fn/bench/q"
run_wrk warmup "$url" "$conns" 2 >/dev/null
rss_before="$(rss_mib "$run_pid")"
perf_pid=""
if [ -n "${BENCH_PERF:-}" ]; then # a CPU profile of sluice run under the load (perf record -g)
  command -v perf >/dev/null || { echo "bench: BENCH_PERF needs perf (linux-perf)" >&2; exit 2; }
  ( sleep 1; perf record -F 499 -g -o "$BENCH_PERF" -p "$run_pid" -- sleep $(( seconds > 3 ? seconds - 2 : 1 )) >"$tmp/perf.log" 2>&1 ) &
  perf_pid=$!
fi
read -r s_rps s_p50 s_p99 < <(run_wrk "sluice run" "$url" "$conns" "$seconds")
if [ -n "$perf_pid" ]; then wait "$perf_pid" || { echo "bench: perf record failed:" >&2; cat "$tmp/perf.log" >&2; exit 1; }; fi
rss_after="$(rss_mib "$run_pid")"
row "sluice run (embedded bus)" "$s_rps" "$s_p50" "$s_p99" "$(ratio "$s_rps")"
read -r si_rps si_p50 si_p99 < <(run_wrk sluice-idle "$url" 1 3)
if [ "$soak" -gt 0 ]; then
  samples=()
  ( wrk -t"$threads" -c"$conns" -d"$soak"s -s "$tmp/post.lua" "$url" >"$tmp/soak.out" 2>&1 ) &
  soak_pid=$!
  step=$(( soak / 10 )); [ "$step" -gt 0 ] || step=1
  while kill -0 "$soak_pid" 2>/dev/null; do samples+=("$(rss_mib "$run_pid")"); sleep "$step"; done
  wait "$soak_pid" || true
  soak_line="sluice run RSS over ${soak} s under load (MiB, every ${step} s): ${samples[*]}"
fi
stop_pid "$run_pid"
fi

# Kafka mode: one process per stage.
kafka_rows=()
if [ -n "${SLUICE_KAFKA_BROKERS:-}" ] && wants kafka; then
  cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # PID: utime+stime, clock ticks
  clk="$(getconf CLK_TCK)"
  declare -A kstage=() kcpu=()
  txn=""
  [ "${SLUICE_KAFKA_BROKER_KIND:-}" != tansu ] || txn=", transactions: false"
  for n in $inspector_counts; do
    k_port="$(port)"; k_admin="$(port)"; prefix="bench$RANDOM$n."
    mkdir -p "$tmp/kafka$n"
    kpids=(); kstage=(); kcpu=()
    for stage in recorder forwarder $(for i in $(seq 1 "$n"); do echo inspector; done) ingress; do
      # Each stage process needs its own admin port; only the Ingress's caller port matters.
      a="$(port)"; l="$(port)"
      [ "$stage" != ingress ] || { a="$k_admin"; l="$k_port"; }
      cfg="$tmp/kafka$n/$stage-$a.yaml"
      write_config "$cfg" "{ kind: kafka, brokers: \"$SLUICE_KAFKA_BROKERS\", topic_prefix: \"$prefix\", partitions: 6$txn${BENCH_KAFKA_BUS:+, $BENCH_KAFKA_BUS} }" "$l" "$a" "$tmp/kafka$n"
      SLUICE_INSTANCE_ID="$stage-$a" start_sluice "kafka$n-$stage-$a" "$stage" "$cfg"
      kpids+=($last_pid); kstage[$last_pid]="$stage"
    done
    wait_http "http://127.0.0.1:$k_admin/readyz"
    kurl="http://127.0.0.1:$k_port/fn/bench/q"
    # The consumer groups settle before the figures count.
    for _ in $(seq 1 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data '{}' "$kurl")" = 200 ] && break; sleep 0.2; done
    run_wrk warmup "$kurl" "$conns" 3 >/dev/null
    for p in "${kpids[@]}"; do kcpu[$p]="$(cpu_ticks "$p")"; done
    k_since="$(date +%s%3N)"
    read -r k_rps k_p50 k_p99 < <(run_wrk "kafka x$n" "$kurl" "$conns" "$seconds")
    k_until="$(date +%s%3N)"
    for p in "${kpids[@]}"; do kcpu[$p]=$(( $(cpu_ticks "$p") - ${kcpu[$p]} )); done
    idle_since="$(date +%s%3N)"
    read -r ki_rps ki_p50 ki_p99 < <(run_wrk "kafka-idle x$n" "$kurl" 1 3)
    row "Kafka mode, $n inspector(s), Tansu" "$k_rps" "$k_p50" "$k_p99" "$(ratio "$k_rps")"
    kafka_rows+=("kafka mode ($n inspector(s)) idle call p50: $ki_p50 ms (direct $di_p50 ms)")
    # Where an idle call's time goes: the hops between its records (HopTrace, beside sluice).
    if [ -x "$hoptrace_bin" ]; then
      kafka_rows+=("  $("$hoptrace_bin" --brokers "$SLUICE_KAFKA_BROKERS" --prefix "$prefix" --since "$idle_since" 2>&1)")
    fi
    # CPU per call of each stage over the loaded run (calls = req/s x the run's length).
    k_calls="$(python3 -c "print(float('$k_rps') * ($k_until - $k_since) / 1000)")"
    cpu_line=""
    for stage in ingress inspector forwarder recorder; do
      t=0; for p in "${kpids[@]}"; do [ "${kstage[$p]}" != "$stage" ] || t=$(( t + ${kcpu[$p]} )); done
      cpu_line+="$(python3 -c "import sys; print(' %s %.0f,' % (sys.argv[1], float(sys.argv[2]) * 1e6 / float(sys.argv[3]) / max(float(sys.argv[4]), 1)))" "$stage" "$t" "$clk" "$k_calls")"
    done
    kafka_rows+=("  CPU per call over the loaded run (µs, all instances of a stage):${cpu_line%,}")
    # Bytes per call written to each topic over the loaded run (key + value + headers).
    if [ -x "$hoptrace_bin" ]; then
      bytes_line="$("$hoptrace_bin" --brokers "$SLUICE_KAFKA_BROKERS" --prefix "$prefix" --bytes --since "$k_since" --until "$k_until" 2>&1 \
        | awk -v p="$prefix" '$1=="topic" { t=$2; sub("^" p, "", t); if ($4 > 0) printf " %s %s (%s records),", t, $10, $8 }')"
      kafka_rows+=("  bytes per call written to each topic over the loaded run:${bytes_line%,}")
    fi
    for p in "${kpids[@]}"; do stop_pid "$p"; done
  done
fi

echo "== proxy: 1 KiB JSON POST, wrk $threads thread(s) x $conns connections, ${seconds} s each, $(nproc) cores"
echo "| path                               |     req/s | p50 ms  | p99 ms  | of nginx |"
echo "|------------------------------------|-----------|---------|---------|----------|"
for r in "${table[@]}"; do echo "$r"; done
if wants run; then
  echo "idle call p50 (one connection): direct $di_p50 ms, sluice run $si_p50 ms (adds $(python3 -c "print('%.2f' % ($si_p50-$di_p50))") ms)"
fi
for r in "${kafka_rows[@]}"; do echo "$r"; done
! wants run || echo "sluice run RSS: $rss_before MiB before the load, $rss_after MiB after"
[ -z "$soak_line" ] || echo "$soak_line"
