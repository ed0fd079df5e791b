#!/usr/bin/env bash
# Runs the test command given as arguments, keeps its whole output in .build/test-output.log and,
# when it fails, ends with a short list of what failed (the failing tests and the first line of
# each recorded issue), so the last lines of a CI log name the failure even when only its tail is
# kept. The exit status is the command's.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/.build"
log="$root/.build/test-output.log"
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "== what failed (exit $status; whole output in $log) =="
  # Swift Testing marks failures with ✘; XCTest with "error: ... failed".
  grep -E '^✘ |: error: .*(failed|XCT)' "$log" | grep -v '^✘ Suite ' | cut -c1-400 | head -n 20
fi
exit "$status"
