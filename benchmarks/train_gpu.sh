#!/usr/bin/env bash
# Training throughput on one GPU (an H100 80GB when measured), every configuration in one call
# so they share the machine, the model and the data: LoRA r=16 on the Qwen2.5-VL-3B shape
# (random weights, built here), 1008×1008 synthetic manifests (≈ 1,225 visual tokens),
# batch 4. The naive baseline (benchmarks/naive_lora.py: plain transformers + PEFT, what the
# model card and PEFT docs lead to) runs first, then `vlmocr train` itself with one lever
# changed at a time. Each run is bounded, and the results file is rewritten after each, so a
# call cut short still returns what it measured.
#   OUT=/tmp/out bash benchmarks/train_gpu.sh      → $OUT/train_gpu_h100.json (benchmarks/results/)
# Needs vlmocr's pure-Python dependencies as wheels in .wheels/gpu (scripts/device/core_wheels.sh).
set -uo pipefail
out=${OUT:-/tmp/out}; work=${WORK:-/tmp/bench}; steps=${STEPS:-25}; name=${NAME:-train_gpu_h100}
mkdir -p "$out" "$work"
python3 scripts/device/install_missing.py .wheels/gpu >/dev/null
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
t0=$SECONDS
[ -f "$work/data/train/annotations.jsonl" ] || \
  python3 benchmarks/train_speed.py data --out "$work/data" --train 96 --valid 4 --workers 12 --size 1008 &
[ -f "$work/m3b/config.json" ] || \
  python3 benchmarks/train_speed.py build --size 3b --out "$work/m3b" --device cuda --dtype bfloat16 | tail -1
wait
echo "setup $((SECONDS - t0)) s"
cat > "$work/predictions.json" <<'JSON'
{"naive": 2.4, "vlmocr": 6.5, "vlmocr_noliger": 5.9, "vlmocr_cudnn": 5.5, "vlmocr_gc": 4.2,
 "vlmocr_gc2": 5.0, "vlmocr_b8_gc2": 5.6, "vlmocr_again": 6.5, "vlmocr_compile": 7.4}
JSON
runs=()
report() {
  python3 benchmarks/train_speed.py records --name "$name" --results "$out" --warmup 5 \
    --predictions "$work/predictions.json" \
    --naive "$out/naive.json" "$out/naive_gc.json" --runs "${runs[@]}" \
    --note "LoRA r=16 on the Qwen2.5-VL-3B shape (random weights), bf16, batch 4, 1008x1008 synthetic manifests; naive = plain transformers+PEFT loop; vlmocr_* = vlmocr train with one lever changed" \
    > "$work/records.txt" 2>&1; cat "$work/records.txt"
}
naive() {  # name, extra args
  local n=$1; shift
  timeout 150 python3 benchmarks/naive_lora.py --model "$work/m3b" --dataset "$work/data" --batch-size 4 \
    --name "$n" --out "$out/$n.json" "$@" > "$work/$n.log" 2>&1 || tail -5 "$work/$n.log"
  echo "$n done at $((SECONDS - t0)) s"
}
lora() {  # name, extra args
  local n=$1; shift
  rm -rf "${work:?}/$n"
  timeout 150 python3 -m vlmocr.cli.app train configs/lora-qwen2.5-vl-3b.yaml --dataset "$work/data" \
    --model "$work/m3b" --max-steps "$steps" --batch-size 4 --grad-accum 1 --set log_every=1 \
    --set eval.n_samples=0 --set checkpoint.every_steps=0 --set data.num_workers=6 --out "$work/$n" "$@" \
    > "$work/$n.log" 2>&1 || tail -8 "$work/$n.log"
  runs+=("$work/$n"); report >/dev/null
  echo "$n done at $((SECONDS - t0)) s"
}
# The plain loop OOMs at batch 4 on this shape with the allocator's default; it gets
# expandable segments (one environment variable a user would find) and batch 2 if even that fails.
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True naive naive --steps "$steps"
[ -f "$out/naive.json" ] || PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True naive naive --steps "$steps" --batch-size 2
# vlmocr train's defaults: one varlen call per vision layer, no cuDNN SDPA, LoRA dropout 0, chunked
# loss, Liger's kernels when liger-kernel is installed (it is, from .wheels/gpu), so `vlmocr` has them
# and `vlmocr_noliger` turns them off. The same-config pair `vlmocr`/`vlmocr_again` (first and
# after the other runs) shows how much two measurements of one configuration differ in this call.
lora vlmocr
lora vlmocr_noliger --set liger=false
lora vlmocr_cudnn --set cudnn_attention=true
lora vlmocr_gc --set gradient_checkpointing=true
lora vlmocr_gc2 --set gradient_checkpointing=true --set checkpoint_every=2
lora vlmocr_b8_gc2 --set gradient_checkpointing=true --set checkpoint_every=2 --batch-size 8
lora vlmocr_again
lora vlmocr_compile --set compile=true   # last: its compilation may use most of its 150 s
prof() { timeout 100 python3 benchmarks/profile_train_step.py "$@" 2>&1 | tail -1; }
prof configs/lora-qwen2.5-vl-3b.yaml --set model="$work/m3b" --set data.dataset="$work/data" --set batch_size=4 \
  --set liger=true --set data.num_workers=6 --out "$out/profile_lora3b.txt"
report
cp "$work"/*.log "$out/" 2>/dev/null; true
