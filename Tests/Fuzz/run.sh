#!/usr/bin/env bash
# Builds (build.sh) and runs every fuzz target for FUZZ_SECONDS (default 60) each.
# Fails (exit 1) when any target crashes or breaks an invariant; the crashing input is kept
# in .build/fuzz/artifacts/<target>/ and the log in .build/fuzz/logs/<target>.log.
# Run corpora grow in .build/fuzz/corpus/<target>/ (seeded from .build/fuzz/seeds/).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${FUZZ_OUT:-$root/.build/fuzz}"
seconds="${FUZZ_SECONDS:-60}"
"$root/Tests/Fuzz/build.sh" "$out" || { echo "fuzz: build failed" >&2; exit 1; }
mkdir -p "$out/logs" "$out/corpus" "$out/artifacts"
failed=()
for t in "$out"/bin/fuzz-*; do
  name="$(basename "$t")"
  corpus="$out/corpus/$name"; arts="$out/artifacts/$name"
  mkdir -p "$corpus" "$arts"
  [ -d "$out/seeds/$name" ] && cp -n "$out/seeds/$name"/* "$corpus"/ 2>/dev/null
  printf 'fuzz: %-22s %ss ... ' "$name" "$seconds" >&2
  # Leaks are reported by LeakSanitizer at exit; rss_limit guards against runaway memory.
  # The Swift runtime backtracer would fork a helper that outlives the crash: libFuzzer and ASan report.
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
    "$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
         -artifact_prefix="$arts/" "$corpus" > "$out/logs/$name.log" 2>&1
  rc=$?
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$out/logs/$name.log" | grep -Eo '[0-9]+$' || echo '?')"
  cov="$(grep -Eo 'cov: [0-9]+' "$out/logs/$name.log" | tail -1 | grep -Eo '[0-9]+' || echo '?')"
  if [ $rc -eq 0 ]; then
    echo "ok (runs $runs, coverage $cov, corpus $(ls "$corpus" | wc -l))" >&2
  else
    echo "FAILED (exit $rc; see $out/logs/$name.log, input in $arts/)" >&2
    grep -E 'fuzz invariant violated|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY' "$out/logs/$name.log" | head -5 >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzz: failed: ${failed[*]}" >&2; exit 1; fi
echo "fuzz: all targets ran ${seconds}s without a crash" >&2
