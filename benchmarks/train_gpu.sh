#!/usr/bin/env bash
# Training throughput on a GPU machine (2× H100 80GB when measured), all runs in one call
# so that they share the machine: LoRA on the Qwen2.5-VL-3B shape (random weights, built
# here) on one GPU, on two (torchrun DDP, the same command) and with gradient checkpointing;
# then full training of the small built-in base from random weights on the synthetic
# stream, eager and with `compile: true`. Results: $OUT/train_gpu_*.json (committed to
# benchmarks/results/). Needs vlmocr's pure-Python dependencies as wheels in .wheels/core
# (scripts/device/core_wheels.sh) and NVLink multicast left off (the machine's default).
set -uo pipefail
out=${OUT:-/tmp/out}; work=${WORK:-/tmp/bench}; steps=${STEPS:-40}
mkdir -p "$out" "$work"
python3 scripts/device/install_missing.py .wheels/core >/dev/null
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
python3 benchmarks/train_speed.py data --out "$work/data" --train 160 --valid 8 --workers 8 &
python3 benchmarks/train_speed.py build --size 3b --out "$work/m3b" --device cuda --dtype bfloat16
wait
# The naive baseline on the same model, data and batch, in the same call (record names naive / naive_gc).
python3 benchmarks/naive_lora.py --model "$work/m3b" --dataset "$work/data" --batch-size 4 --steps "$steps" \
  --out "$out/train_gpu_naive.json" | tail -1
python3 benchmarks/naive_lora.py --model "$work/m3b" --dataset "$work/data" --batch-size 4 --steps "$steps" \
  --gradient-checkpointing --name naive_gc --out "$out/train_gpu_naive_gc.json" | tail -1
show() { if [ "$1" != 0 ]; then tail -40 "$2"; fi; grep -E "steps  " "$2"; }
train() { python3 -m vlmocr.cli.app train "$@" > "$work/log" 2>&1; show $? "$work/log"; }
lora=(configs/lora-qwen2.5-vl-3b.yaml --dataset "$work/data" --model "$work/m3b" --max-steps "$steps"
      --batch-size 4 --grad-accum 1 --set log_every=1 --set eval.n_samples=0 --set checkpoint.every_steps=0
      --set data.num_workers=6)
train "${lora[@]}" --out "$work/lora3b-1gpu"
python3 -m torch.distributed.run --standalone --nproc_per_node 2 -m vlmocr.cli.app train "${lora[@]}" \
  --out "$work/lora3b-2gpu" > "$work/log" 2>&1; show $? "$work/log"
train "${lora[@]}" --set gradient_checkpointing=true --out "$work/lora3b-1gpu-gc"
python3 benchmarks/train_speed.py summarize --name train_gpu_lora3b --results "$out" \
  --note "LoRA r=16 on the Qwen2.5-VL-3B shape (random weights), bf16, sdpa, chunked loss, batch 4 a GPU, 768x768 synthetic manifests (729 visual tokens)" \
  "$work/lora3b-1gpu" "$work/lora3b-2gpu" "$work/lora3b-1gpu-gc"
python3 -m vlmocr.cli.app model build --size small --out "$work/small" >/dev/null
scratch=(configs/full-scratch.yaml --model "$work/small" --max-steps "$steps" --set log_every=1
         --set eval.n_samples=0 --set checkpoint.every_steps=0 --set data.num_workers=14)
train "${scratch[@]}" --out "$work/scratch-1gpu"
train "${scratch[@]}" --set compile=true --out "$work/scratch-1gpu-compile"
python3 benchmarks/train_speed.py summarize --name train_gpu_scratch_small --results "$out" --warmup 10 \
  --note "full training of the small base (20M) from random weights, synthetic stream (768x768, light), batch 16" \
  "$work/scratch-1gpu" "$work/scratch-1gpu-compile"
