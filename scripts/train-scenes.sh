#!/usr/bin/env bash
# The scenes models from scratch on the CPU (issue #18): the tokenizer, then its one-step
# renderer and the AR model side by side (the AR model needs only the tokens), then both
# exported for shipping. Resumable: after a kill, run the same command again.
# The tokenizer, which runs alone, splits its batches over WORKERS threads (default 2, one per
# core of the 2-core machine; `--workers`, data parallelism); the renderer and the AR model then
# take a core each (from the measured steps, the faster arrangement on 2 cores: the AR model's
# step halves over 2 workers but the renderer's gains only 1.45×, so running them side by side
# beats running each over 2 workers in turn), and the AR model takes both cores once the
# renderer is done.
#
#   bash scripts/train-scenes.sh [OUT]        (default runs/scenes)
#
# Step counts: TOK_STEPS (6000), PROBE_STEPS (2000), REN_STEPS (3000) then REN_MORE ("1500"), AR_STEPS (12000); AR token order: ORDER (ar);
# tokenizer config: CONFIG (scenes); AR config: AR_CONFIG (scenes, configs/ar/); WORKERS (2).
# Writes OUT/$CONFIG (tokenizer + renderer, int8) and OUT/$CONFIG-ar (AR model, int8), and
# prints the wall time of each stage.
# PROBE_STEPS > 0 fine-tunes the tokenizer that many steps with the scene probe (configs/scenes-read.json,
# lr 1e-3) before the renderer and the AR model read its tokens, as the shipped models/scenes was
# made (PROBE_STEPS=0 skips it). With the defaults: 87.5 minutes measured end to end on the 2-core
# machine (docs/scenes.md, "12,000 AR steps in the 90 minutes", stop 38).
# The spatial-token control of issue #19, raster order (the scene probe is the 1D tokenizer's, so off):
#   CONFIG=scenes-spatial ORDER=encoder PROBE_STEPS=0 bash scripts/train-scenes.sh runs/spatial
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/scenes}
TOK_STEPS=${TOK_STEPS:-6000}
PROBE_STEPS=${PROBE_STEPS:-2000}
REN_STEPS=${REN_STEPS:-3000}
REN_MORE=${REN_MORE:-1500}
AR_STEPS=${AR_STEPS:-12000}
ORDER=${ORDER:-ar}
CONFIG=${CONFIG:-scenes}
WORKERS=${WORKERS:-2}
AR_CONFIG=${AR_CONFIG:-scenes}
S=(node bin/selftok.js)
mkdir -p "$OUT"
t0=$(date +%s)
stage() { echo "train-scenes: $1 done at $(( $(date +%s) - t0 )) s"; }

"${S[@]}" train --config "$CONFIG" --data scenes --out "$OUT/tokenizer-run" --steps "$TOK_STEPS" --sample-every 1000 --device wasm --workers "$WORKERS" --resume
# the tokens the AR model learns are those of the exported encoder and codebook (float16 in every
# export format), the same in the shipped tokenizer-with-renderer below
TOK_RUN="$OUT/tokenizer-run"
if [ "$PROBE_STEPS" -gt 0 ]; then
  # the scene probe: its tokens must also say which shape and colour covers each cell (a fresh probe
  # on the trained tokenizer; a killed run resumes itself)
  FROM=(--init "$TOK_RUN")
  [ -e "$OUT/probe-run/train-state.safetensors" ] && FROM=(--resume)
  "${S[@]}" train "${FROM[@]}" --config scenes-read --data scenes --out "$OUT/probe-run" --steps "$PROBE_STEPS" --lr 1e-3 --sample-every 1000 --device wasm --workers "$WORKERS"
  TOK_RUN="$OUT/probe-run"
fi
"${S[@]}" export --model "$TOK_RUN" --out "$OUT/tokenizer" --weights int8 --device wasm
stage tokenizer

# the renderer: REN_STEPS, then a run of each REN_MORE count from where the last stopped (each
# with its own warm-up and cooldown; the shipped models/scenes was made so: 3000, 1500, 1500)
(
  "${S[@]}" train-renderer --model "$TOK_RUN" --data scenes --out "$OUT/renderer-run" --steps "$REN_STEPS" --sample-every 500 --device wasm --resume
  prev="$OUT/renderer-run"
  i=2
  for more in $REN_MORE; do
    run="$OUT/renderer-run$i"
    # a fresh run starts from the last one's renderer; a killed one resumes itself
    FROM=(--init-renderer "$prev")
    [ -e "$run/train-state.safetensors" ] && FROM=(--resume)
    "${S[@]}" train-renderer --model "$TOK_RUN" "${FROM[@]}" --data scenes --out "$run" --steps "$more" --sample-every 500 --device wasm
    prev="$run"
    i=$((i + 1))
  done
  echo "$prev" > "$OUT/renderer-final"
) > "$OUT/renderer.log" 2>&1 &
renderer=$!
# the AR model on the other core, then on all WORKERS once the renderer is done: SIGTERM makes
# ar-train finish its step, checkpoint it and exit 143 (src/node/stop.ts), and --resume goes on
# from that step over more threads (the same batch, so the same run)
AR=("${S[@]}" ar-train --tokenizer "$OUT/tokenizer" --data scenes --out "$OUT/ar-run" --config "$AR_CONFIG" --order "$ORDER" --steps "$AR_STEPS" --device wasm --resume)
"${AR[@]}" &
ar=$!
wait "$renderer" || { kill -TERM "$ar" 2>/dev/null; echo "train-scenes: the renderer failed, see $OUT/renderer.log" >&2; exit 1; }
stage renderer
[ "$WORKERS" -gt 1 ] && { kill -TERM "$ar" 2>/dev/null || true; }
rc=0
wait "$ar" || rc=$?
if [ "$rc" -eq 143 ]; then
  echo "train-scenes: the AR model goes on over $WORKERS workers"
  "${AR[@]}" --workers "$WORKERS"
elif [ "$rc" -ne 0 ]; then
  echo "train-scenes: the AR model failed (exit $rc)" >&2
  exit 1
fi
stage "AR model"

RENDERER_RUN=$(cat "$OUT/renderer-final")
"${S[@]}" export --model "$RENDERER_RUN" --out "$OUT/$CONFIG" --weights int8 --name "$CONFIG" --device wasm
"${S[@]}" export --model "$OUT/ar-run" --out "$OUT/$CONFIG-ar" --tokenizer "$OUT/$CONFIG" --weights int8 --device wasm
stage export
echo "train-scenes: $OUT/$CONFIG and $OUT/$CONFIG-ar in $(( $(date +%s) - t0 )) s"
