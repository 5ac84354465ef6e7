#!/usr/bin/env bash
# Unpack SwiftShader (a CPU implementation of Vulkan, from Debian's chromium-common) and the
# Vulkan loader into .cache/swiftshader, so that WebGPU (Dawn) runs without a GPU. Used by the
# webgpu parity test. Needs apt-get and Debian's package mirror; nothing is installed system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/swiftshader
[ -f "$out/vk_swiftshader_icd.json" ] && { echo "swiftshader: already in $out"; exit 0; }
command -v apt-get >/dev/null || { echo "swiftshader: no apt-get here" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lists="$tmp/lists"; mkdir -p "$lists/partial"
o="-oDir::State::Lists=$lists -oDebug::NoLocking=1"
apt-get $o update -qq >/dev/null 2>&1 || true
(cd "$tmp" && apt-get $o download chromium-common libvulkan1 >/dev/null 2>&1) || (cd "$tmp" && apt-get download chromium-common libvulkan1 >/dev/null 2>&1)
for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/root"; done
mkdir -p "$out"
cp "$tmp"/root/usr/lib/chromium/libvk_swiftshader.so "$out/"
cp -P "$tmp"/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$out/"
echo '{"file_format_version": "1.0.0", "ICD": {"library_path": "./libvk_swiftshader.so", "api_version": "1.0.5"}}' > "$out/vk_swiftshader_icd.json"
echo "swiftshader: unpacked into $out ($(du -sh "$out" | cut -f1))"
