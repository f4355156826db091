#!/usr/bin/env bash
# Training throughput on one GPU (an H100 80GB when measured), every configuration in one call
# so they share the machine, the model and the data: LoRA r=16 on the Qwen2.5-VL-3B shape
# (random weights, built here), 1008×1008 synthetic manifests (≈ 1,225 visual tokens),
# batch 4. The naive baseline (benchmarks/naive_lora.py: plain transformers + PEFT, what the
# model card and PEFT docs lead to) runs first, then `vlmocr train` itself with one lever
# changed at a time. Each run is bounded, and the results file is rewritten after each, so a
# call cut short still returns what it measured.
#   OUT=/tmp/out bash benchmarks/train_gpu.sh      → $OUT/train_gpu_h100.json (benchmarks/results/)
# ROWS: the configurations to run (default: all, in the order below), e.g. ROWS="naive vlmocr vlmocr_compile".
# LLAMAFACTORY=1: then LLaMA-Factory 0.9.5 on the same model, data and batch, in the same call
#   (benchmarks/train_gpu_llamafactory.sh; its overlay must be installed), its records in the same file.
# $OUT gets the results file, the naive and LLaMA-Factory records, the profile and logs.tgz.
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
{"naive": 2.6, "vlmocr": 6.9, "vlmocr_compile": 8.2, "vlmocr_plain": 6.4, "vlmocr_cudnn": 6.0, "vlmocr_gc": 4.4,
 "vlmocr_gc2": 5.2, "vlmocr_b8_gc2": 5.8, "vlmocr_again": 6.9, "vlmocr_compile_again": 8.2, "llamafactory": 1.8, "llamafactory_nogc": 4.2}
JSON
runs=()
report() {
  python3 benchmarks/train_speed.py records --name "$name" --results "$out" --warmup 5 \
    --predictions "$work/predictions.json" \
    --naive "$out/naive.json" "$out/llamafactory.json" "$out/llamafactory_nogc.json" --runs "${runs[@]}" \
    --note "LoRA r=16 on the Qwen2.5-VL-3B shape (random weights), bf16, batch 4, 1008x1008 synthetic manifests; naive = plain transformers+PEFT loop; vlmocr_* = vlmocr train with one lever changed; llamafactory* = LLaMA-Factory 0.9.5" \
    > "$work/records.txt" 2>&1; cat "$work/records.txt"
}
rows=${ROWS:-naive vlmocr vlmocr_compile vlmocr_plain vlmocr_cudnn vlmocr_gc vlmocr_gc2 vlmocr_b8_gc2 vlmocr_again profile}
wanted() { [[ " $rows " == *" $1 "* ]]; }
naive() {  # name, extra args
  local n=$1; shift
  wanted "$n" || return 0
  timeout 150 python3 benchmarks/naive_lora.py --model "$work/m3b" --dataset "$work/data" --batch-size 4 \
    --name "$n" --out "$out/$n.json" "$@" > "$work/$n.log" 2>&1 || tail -5 "$work/$n.log"
  echo "$n done at $((SECONDS - t0)) s"
}
lora() {  # name, extra args
  local n=$1; shift
  wanted "$n" || return 0
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
wanted naive && [ ! -f "$out/naive.json" ] && PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True naive naive --steps "$steps" --batch-size 2
# vlmocr train's defaults on a GPU: one varlen call per vision layer, no cuDNN SDPA, LoRA dropout 0,
# chunked loss; a 25-step run gets Liger's kernels (liger: null, liger-kernel is installed from
# .wheels/gpu). A run of >= 1,000 batches compiles each language-model block instead (compile: null;
# Liger's RMSNorm fails to build under torch.compile): `vlmocr_compile` is that, measured in steady
# state. `vlmocr_plain` has neither. The gradient-checkpointing rows are never compiled by default.
# The same-config pair `vlmocr`/`vlmocr_again` (first and after the other runs) shows how much two
# measurements of one configuration differ in this call; `vlmocr_compile_again` repeats the compiled
# run last (only when ROWS names it), so the compiled figure is measured twice beside the naive loop.
lora vlmocr
lora vlmocr_compile --set compile=true
lora vlmocr_plain --set liger=false
lora vlmocr_cudnn --set cudnn_attention=true
lora vlmocr_gc --set gradient_checkpointing=true
lora vlmocr_gc2 --set gradient_checkpointing=true --set checkpoint_every=2
lora vlmocr_b8_gc2 --set gradient_checkpointing=true --set checkpoint_every=2 --batch-size 8
lora vlmocr_again
lora vlmocr_compile_again --set compile=true
prof() { timeout 100 python3 benchmarks/profile_train_step.py "$@" 2>&1 | tail -1; }
wanted profile && prof configs/lora-qwen2.5-vl-3b.yaml --set model="$work/m3b" --set data.dataset="$work/data" --set batch_size=4 \
  --set liger=true --set data.num_workers=6 --out "$out/profile_lora3b.txt"
if [ "${LLAMAFACTORY:-0}" = 1 ]; then
  OUT=$out WORK=$work STEPS=$steps BATCH=4 LF_COPY_LOGS=0 bash benchmarks/train_gpu_llamafactory.sh
fi
report
# The logs in one archive: a runner may bring back only a few files (the device tool: 8), and the
# results file must be one of them.
(cd "$work" && tar -czf "$out/logs.tgz" ./*.log records.txt 2>/dev/null); true
