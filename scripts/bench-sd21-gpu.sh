#!/usr/bin/env bash
# Stable Diffusion 2.1-base's full architecture with random weights on one CUDA GPU: the
# TypeScript sampler (onnxruntime-node, CUDA execution provider) against diffusers (PyTorch
# CUDA), fp32 and fp16, at 512 px, 20 steps, guidance 7.5, batch 1 and 4; seconds per image
# and peak device memory.
#
#   scripts/bench-sd21-gpu.sh            # the whole benchmark (sized for about 8 minutes on an H100)
#   scripts/bench-sd21-gpu.sh --plan     # print what it would run, check nothing, run nothing
#
# Needs the repository set up on the GPU machine: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci`
# (onnxruntime-node's CUDA provider; CUDA 12 and cuDNN 9 on the library path) and
# scripts/setup-python.sh with a CUDA build of torch. It stops at once, saying which, when
# any of them is missing.
#
# What it does:
#   1. python -m parity.sd21_random: the diffusers folder (real SD 2.1-base configs, seeded
#      random weights) and its fp32 ONNX graphs, exported by the product's exporter
#      (loratrain.onnx_graphs, traced on the GPU, checked against PyTorch in onnxruntime);
#   2. a second folder sharing those weights (hard links) whose UNet and VAE decoder are
#      exported again with `loratrain.export_onnx --fp16` (float16 inside, float32 in and out;
#      the text encoder stays fp32, as the exporter keeps it);
#   3. for fp32 and fp16, for each batch size: ours (`models/bench/sampler.bench.ts --side
#      typescript --device cuda`) then diffusers (`python -m parity.sampler_bench --device cuda
#      --dtype ...`), each a process of its own after one warm-up call.
# Peak device memory: for both sides, the GPU's memory.used polled with nvidia-smi every
# 0.2 s, less what was in use before the process started (onnxruntime's arena keeps what it
# took, so this is its high-water mark); for diffusers also torch.cuda.max_memory_allocated.
# Results: one JSON line a run in $SD21_OUT/results.jsonl and a table at the end.
#
# Settings (environment): SD21_OUT (build/sd21-gpu), SD21_SIZE (512), SD21_STEPS (20),
# SD21_BATCHES ("1 4"), SD21_RUNS (2 timed calls after the warm-up), SD21_GUIDANCE (7.5),
# SD21_PRECISIONS ("fp32 fp16"), SD21_BUDGET_S (480: no new timed run starts after this many
# seconds from the start, build and export included; the skipped ones are named),
# CUDA_VISIBLE_DEVICES (the GPU; device 0 of those visible).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

out="${SD21_OUT:-build/sd21-gpu}"
size="${SD21_SIZE:-512}"
steps="${SD21_STEPS:-20}"
batches="${SD21_BATCHES:-1 4}"
runs="${SD21_RUNS:-2}"
guidance="${SD21_GUIDANCE:-7.5}"
precisions="${SD21_PRECISIONS:-fp32 fp16}"
budget="${SD21_BUDGET_S:-480}"
python="$root/.venv/bin/python"
ort_cuda_glob="node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime_providers_cuda.so"

fail() {
  echo "bench-sd21-gpu: $*" >&2
  exit 1
}

plan() {
  echo "folder: $out/fp32 (and $out/fp16)"
  echo "work: ${size}x${size}, $steps steps, guidance $guidance, batches $batches, $runs timed call(s) after a warm-up, precisions $precisions"
  echo "build: (cd python && $python -m parity.sd21_random $root/$out/fp32 --device cuda)"
  echo "fp16:  cp -al $out/fp32 $out/fp16; (cd python && $python -m loratrain.export_onnx --generator $root/$out/fp16 --parts unet vae_decoder --fp16 --device cuda)"
  for precision in $precisions; do
    for batch in $batches; do
      echo "run:   $precision batch $batch: node --import tsx models/bench/sampler.bench.ts --side typescript --json --device cuda --generator $out/$precision ..."
      echo "run:   $precision batch $batch: python -m parity.sampler_bench --device cuda --dtype $([ "$precision" = fp16 ] && echo float16 || echo float32) --generator $out/fp32 ..."
    done
  done
}

if [ "${1:-}" = "--plan" ]; then
  plan
  exit 0
fi
[ $# -eq 0 ] || fail "unknown argument $1 (usage: scripts/bench-sd21-gpu.sh [--plan])"

# --- Preflight: everything a GPU run needs, before minutes of building. ---
[ -x "$python" ] || fail "no Python environment at $python: run scripts/setup-python.sh"
[ -d node_modules/onnxruntime-node ] || fail "no node_modules: run ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci"
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: this benchmark needs a CUDA GPU and its driver"
nvidia-smi -L 2>/dev/null | grep -q '^GPU' || fail "nvidia-smi lists no GPU"
compgen -G "$ort_cuda_glob" >/dev/null ||
  fail "onnxruntime-node has no CUDA provider ($ort_cuda_glob): reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci"
"$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  fail "PyTorch in .venv cannot use CUDA ($("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)): install a CUDA build of torch there"

gpu_index="$(echo "${CUDA_VISIBLE_DEVICES:-0}" | cut -d, -f1)"
gpu_memory_used() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$gpu_index" | head -1 | tr -d ' '
}
echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader -i "$gpu_index")"
echo "CPU load: $(cut -d' ' -f1-3 /proc/loadavg)"
plan
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
rm -f "$out/skipped.txt"
started_all=$SECONDS

# --- 1. fp32 folder and graphs. ---
if [ ! -f "$out/fp32/unet/model.onnx" ]; then
  rm -rf "$out/fp32" "$out/fp16"
  t=$SECONDS
  (cd python && "$python" -m parity.sd21_random "$root/$out/fp32" --device cuda) | tail -1 > "$out/build-fp32.json"
  echo "built and exported fp32 in $((SECONDS - t)) s: $(cat "$out/build-fp32.json")"
fi

# --- 2. fp16 graphs beside the same weights. ---
if [[ " $precisions " == *" fp16 "* ]] && [ ! -f "$out/fp16/unet/model.onnx" ]; then
  rm -rf "$out/fp16"
  cp -al "$out/fp32" "$out/fp16"
  # Unlink what the export writes (it would write through a hard link into the fp32 folder);
  # the weights it only reads stay shared.
  rm -f "$out"/fp16/{unet,vae_decoder}/model.onnx* "$out"/fp16/vae_decoder/config.json
  t=$SECONDS
  (cd python && "$python" -m loratrain.export_onnx --generator "$root/$out/fp16" --parts unet vae_decoder --fp16 --device cuda)
  echo "exported fp16 UNet and VAE decoder in $((SECONDS - t)) s"
fi
du -sh "$out"/fp32/{text_encoder,unet,vae_decoder} 2>/dev/null || true
ls -l "$out"/*/unet/model.onnx* || true

# --- 3. Timed runs. ---
# Runs "$@" with nvidia-smi polling beside it; appends its last output line (JSON) to the
# results with the run's labels and its peak device memory above the idle baseline.
measure() {
  local side="$1" precision="$2" batch="$3"
  shift 3
  if [ $((SECONDS - started_all)) -ge "$budget" ]; then
    echo "skipped: $side $precision batch $batch (past SD21_BUDGET_S=$budget s)" | tee -a "$out/skipped.txt"
    return 0
  fi
  local base peak_file log pid status
  base="$(gpu_memory_used)"
  peak_file="$(mktemp)"
  log="$(mktemp)"
  echo "$base" > "$peak_file"
  (
    max="$base"
    while :; do
      v="$(gpu_memory_used)" || v=0
      if [ "${v:-0}" -gt "$max" ]; then
        max="$v"
        echo "$max" > "$peak_file"
      fi
      sleep 0.2
    done
  ) &
  pid=$!
  status=0
  "$@" > "$log" 2>&1 || status=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    fail "$side $precision batch $batch failed (exit $status)"
  fi
  "$python" - "$side" "$precision" "$batch" "$(($(cat "$peak_file") - base))" "$(grep "^{" "$log" | tail -1)" >> "$results" <<'PY'
import json, sys
side, precision, batch, peak, line = sys.argv[1:]
record = json.loads(line)
record.update(side=side, precision=precision, batch=int(batch), nvidia_smi_peak_mb=int(peak))
print(json.dumps(record))
PY
  echo "$(tail -1 "$results")"
  rm -f "$peak_file" "$log"
}

work=(--size "$size" --steps "$steps" --guidance "$guidance" --runs "$runs" --threads 1)
for precision in $precisions; do
  dtype=float32
  [ "$precision" = fp16 ] && dtype=float16
  for batch in $batches; do
    measure typescript "$precision" "$batch" \
      node --import tsx models/bench/sampler.bench.ts --side typescript --json --device cuda --generator "$out/$precision" --batch "$batch" "${work[@]}"
    measure diffusers "$precision" "$batch" \
      env PYTHONPATH="$root/python" "$python" -m parity.sampler_bench --device cuda --dtype "$dtype" --generator "$out/fp32" --batch "$batch" "${work[@]}"
  done
done

echo
echo "${size}x${size}, $steps steps, guidance $guidance; $(nvidia-smi --query-gpu=name --format=csv,noheader -i "$gpu_index"); total $((SECONDS - started_all)) s"
[ ! -f "$out/skipped.txt" ] || echo "not run for want of time: $(wc -l < "$out/skipped.txt") run(s), listed in $out/skipped.txt"
"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'side':<11} {'precision':<9} {'batch':>5} {'s/image':>8} {'load s':>7} {'peak MB (nvidia-smi)':>21} {'torch max allocated MB':>23}")
for r in rows:
    torch_peak = r.get("peak_device_mb", "")
    print(f"{r['side']:<11} {r['precision']:<9} {r['batch']:>5} {r['seconds_per_image']:>8.3f} {r['load_seconds']:>7.1f} {r['nvidia_smi_peak_mb']:>21} {torch_peak!s:>23}")
PY
