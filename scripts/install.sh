#!/bin/bash
# Installs a built `sluice` with its man pages and shell completions (`make install`).
#
#   scripts/install.sh BINARY PREFIX
#
# BINARY: the built sluice (make install passes the release build). PREFIX: where to install
# (make install: $(DESTDIR)$(PREFIX), default /usr/local). Writes:
#   PREFIX/bin/sluice
#   PREFIX/share/man/man1/sluice.1 and sluice.<command>.1 (generated from the argument parser by
#       swift-argument-parser's generate-manual, built next to BINARY)
#   PREFIX/share/bash-completion/completions/sluice
#   PREFIX/share/zsh/site-functions/_sluice
#   PREFIX/share/fish/vendor_completions.d/sluice.fish
# Everything is generated from the binary being installed, so the pages and completions list
# exactly its commands and flags. Any failure stops the script with a message and exit 1.
set -euo pipefail

die() { echo "install: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: scripts/install.sh BINARY PREFIX"
bin=$1
prefix=$2
[ -x "$bin" ] || die "$bin is not an executable (build it first: make build)"
manual=${GENERATE_MANUAL:-$(dirname "$bin")/generate-manual}
[ -x "$manual" ] || die "$manual is missing: build it with 'swift build --product generate-manual' (same configuration as $bin)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Generate everything first: nothing is installed unless all of it could be made.
"$bin" --generate-completion-script bash > "$work/sluice.bash"
"$bin" --generate-completion-script zsh > "$work/_sluice"
"$bin" --generate-completion-script fish > "$work/sluice.fish"
for f in sluice.bash _sluice sluice.fish; do
    [ -s "$work/$f" ] || die "the $f completion script came out empty"
done
bash -n "$work/sluice.bash" || die "the bash completion script does not parse"
mkdir -p "$work/man"
"$manual" "$bin" --multi-page --output-directory "$work/man" > /dev/null \
    || die "generate-manual failed on $bin"
[ -s "$work/man/sluice.1" ] || die "generate-manual wrote no sluice.1"

install -d "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$prefix/bin/sluice"
install -m 0644 "$work"/man/*.1 "$prefix/share/man/man1/"
install -m 0644 "$work/sluice.bash" "$prefix/share/bash-completion/completions/sluice"
install -m 0644 "$work/_sluice" "$prefix/share/zsh/site-functions/_sluice"
install -m 0644 "$work/sluice.fish" "$prefix/share/fish/vendor_completions.d/sluice.fish"
echo "installed sluice, $(ls "$work"/man/*.1 | wc -l) man pages and bash, zsh and fish completions under $prefix"
