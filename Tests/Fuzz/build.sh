#!/usr/bin/env bash
# Builds the libFuzzer targets under Tests/Fuzz with swiftc directly (not part of the SwiftPM
# package, so `swift build --build-tests` never sees them). Usage: build.sh [OUT_DIR]
# Targets (OUT_DIR/bin/fuzz-*): one per content coding (gzip, deflate, br, zstd), one per
# Detection decoder reached through a scan (json, percent, base64), and the path canonicaliser.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/.build/fuzz}"
here="$root/Tests/Fuzz"
obj="$out/obj"; mods="$out/modules"; bin="$out/bin"; seeds="$out/seeds"
mkdir -p "$obj" "$mods/CCodings" "$mods/CHyperscan" "$bin" "$seeds"
log() { printf 'fuzz-build: %s\n' "$*" >&2; }

swiftc="${SWIFTC:-$(command -v swiftc)}"
clang="${CLANG:-$(dirname "$(readlink -f "$swiftc")")/clang}"
[ -x "$clang" ] || clang="$(command -v clang)"
san=(-sanitize=fuzzer,address)
# lld: gold warns about every ASan helper symbol.
link=(-use-ld=lld)
csan=(-fsanitize=fuzzer-no-link,address -g -O1)
sflags=(-g -Onone -swift-version 6 -parse-as-library -module-cache-path "$out/module-cache")

# C targets: objects instrumented for coverage, and module maps so Swift can import them.
log "C: CCodings, CHyperscan"
"$clang" "${csan[@]}" -I "$root/Sources/CCodings/include" -c "$root/Sources/CCodings/codings.c" -o "$obj/codings.o"
for src in "$root"/Sources/CHyperscan/*.c; do
  f="$(basename "$src" .c)"
  "$clang" "${csan[@]}" -I "$root/Sources/CHyperscan/include" -c "$src" -o "$obj/chs_$f.o"
done
printf 'module CCodings {\n  header "%s"\n  export *\n}\n' "$root/Sources/CCodings/include/CCodings.h" > "$mods/CCodings/module.modulemap"
printf 'module CHyperscan {\n  header "%s"\n  export *\n}\n' "$root/Sources/CHyperscan/include/CHyperscan.h" > "$mods/CHyperscan/module.modulemap"
mkdir -p "$mods/CodingsEncoders"
printf 'module CodingsEncoders {\n  header "%s"\n  export *\n}\n' "$root/Tests/CodingsEncoders/include/CodingsEncoders.h" > "$mods/CodingsEncoders/module.modulemap"
"$clang" -g -O1 -fsanitize=address -I "$root/Tests/CodingsEncoders/include" -c "$root/Tests/CodingsEncoders/encoders.c" -o "$obj/encoders.o"
cimports=(-I "$mods/CCodings" -I "$mods/CHyperscan")
clibs=(-lz -lbrotlidec -lzstd -ldl -lpthread)

# Detection imports swift-crypto's Crypto (HMAC-SHA256 fingerprints). It comes from SwiftPM's
# debug build (`make fuzz` runs `swift build --target Crypto` first), not instrumented, and is
# linked as objects; its C modules are imported implementation-only, so only the Swift modules
# (Crypto, CryptoBoringWrapper) are needed to compile against it.
spm="${SPM_BUILD_DIR:-$root/.build/debug}"
if [ ! -f "$spm/Modules/Crypto.swiftmodule" ]; then
  log "no $spm/Modules/Crypto.swiftmodule: build it first (swift build --target Crypto)"; exit 1
fi
mapfile -t crypto_objs < <(for t in Crypto CryptoBoringWrapper CCryptoBoringSSL CCryptoBoringSSLShims CXKCP CXKCPShims; do
  [ ! -d "$spm/$t.build" ] || find "$spm/$t.build" -name '*.o'; done | sort)
[ "${#crypto_objs[@]}" -gt 0 ] || { log "no object files of Crypto under $spm"; exit 1; }

# Swift modules Codings and Detection, as objects + .swiftmodule.
log "Swift module Codings"
"$swiftc" "${sflags[@]}" "${san[@]}" "${cimports[@]}" -module-name Codings -wmo -num-threads 0 \
  -emit-module -emit-module-path "$mods/Codings.swiftmodule" -c -o "$obj/Codings.o" "$root"/Sources/Codings/*.swift
log "Swift module Detection"
mapfile -t detection_sources < <(find "$root/Sources/Detection" -name '*.swift' | sort)
"$swiftc" "${sflags[@]}" "${san[@]}" "${cimports[@]}" -I "$mods" -I "$spm/Modules" -module-name Detection -wmo -num-threads 0 \
  -emit-module -emit-module-path "$mods/Detection.swiftmodule" -c -o "$obj/Detection.o" "${detection_sources[@]}"

# Codings targets: compiled in one module with the Codings sources (internal API visible), and the
# test encoders (not instrumented: they only build inputs) for round trips.
for c in gzip deflate br zstd; do
  log "fuzz-$c"
  up="$(echo "$c" | tr a-z A-Z)"
  "$swiftc" "${sflags[@]}" "${san[@]}" "${cimports[@]}" -module-name FuzzCodings -D "CODING_$up" \
    -I "$mods/CodingsEncoders" \
    "$here/CodingsFuzz.swift" "$root"/Sources/Codings/*.swift "$obj/codings.o" "$obj/encoders.o" "${clibs[@]}" -lbrotlienc \
    "${link[@]}" -o "$bin/fuzz-$c"
done

# Detection decoders through scan calls.
for m in json percent base64; do
  log "fuzz-scan-$m"
  up="$(echo "$m" | tr a-z A-Z)"
  "$swiftc" "${sflags[@]}" "${san[@]}" "${cimports[@]}" -I "$mods" -I "$spm/Modules" -module-name FuzzScan -D "SCAN_$up" \
    "$here/ScanFuzz.swift" "$obj/Detection.o" "$obj/Codings.o" "$obj/codings.o" "$obj"/chs_*.o "${crypto_objs[@]}" \
    "${clibs[@]}" "${link[@]}" -o "$bin/fuzz-scan-$m"
done

# The path canonicaliser, compiled in one module with its source file.
canon="$root/Sources/Pipeline/Canonical/CanonicalPath.swift"
if [ -f "$canon" ]; then
  log "fuzz-canonical-path"
  "$swiftc" "${sflags[@]}" "${san[@]}" -module-name FuzzCanonical "$here/CanonicalPathFuzz.swift" "$canon" "${link[@]}" -o "$bin/fuzz-canonical-path"
else
  log "missing $canon: fuzz-canonical-path not built"; exit 1
fi

# Seed corpora: a few valid streams per coding (made with the real encoders), paths and bodies.
log "seeds"
"$clang" -O1 -I "$root/Tests/CodingsEncoders/include" "$here/seeds.c" "$root/Tests/CodingsEncoders/encoders.c" \
  -lz -lbrotlienc -lzstd -o "$obj/seeds"
"$obj/seeds" "$seeds"
log "built: $(ls "$bin" | tr '\n' ' ')"
