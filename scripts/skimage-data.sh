#!/usr/bin/env bash
# Extra CC0 / public-domain training photos for `--data photos+skimage`: the sample images
# that Debian's python3-skimage package ships (licences in src/data/skimage.ts). Extracts
# the .deb without installing it (apt-get download + dpkg -x) into .cache/skimage/.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/skimage
if [ -f "$dest/.complete" ]; then echo "skimage data: $dest (already there)"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download python3-skimage >/dev/null 2>&1) || { echo "skimage data: apt-get download python3-skimage failed" >&2; exit 1; }
dpkg -x "$work"/python3-skimage_*.deb "$work/x"
src=$(find "$work/x" -type d -path '*skimage/data' | head -1)
mkdir -p "$dest"
for f in astronaut.png chelsea.png coffee.png rocket.jpg hubble_deep_field.jpg retina.jpg ihc.png \
         brick.png grass.png gravel.png camera.png coins.png moon.png; do
  cp "$src/$f" "$dest/" 2>/dev/null || echo "skimage data: $f missing from the package" >&2
done
touch "$dest/.complete"
echo "skimage data: $(ls "$dest" | wc -l) images in $dest"
