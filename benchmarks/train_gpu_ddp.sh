#!/usr/bin/env bash
# Data-parallel scaling of `vlmocr train` on one host: the same LoRA run as benchmarks/train_gpu.sh
# (Qwen2.5-VL-3B shape, random weights, 1008×1008 synthetic manifests, batch 4 a GPU, vlmocr's
# GPU defaults) on 1 GPU, then under torchrun on NGPU GPUs (DDP over NCCL), in one call so both
# share the machine, model and data. `train_speed.py summarize` reports samples/s of every run
# (all ranks together) and, for runs named *1gpu* and *2gpu*, the ratio.
#   OUT=/tmp/out bash benchmarks/train_gpu_ddp.sh   → $OUT/train_gpu_ddp.json (benchmarks/results/)
# Needs a machine with ≥ NGPU GPUs; vlmocr's pure-Python dependencies as wheels in .wheels/gpu.
# Settings (environment): NGPU=2 STEPS=25 WARMUP=5 WORK=/tmp/bench NAME=train_gpu_ddp TRAIN=192
#   DEVICE=cuda|cpu SIZE=3b PX=1008 (DEVICE=cpu SIZE=tiny PX=448 checks the procedure on a CPU:
#   gloo instead of NCCL, fp32; its speeds mean nothing)
set -uo pipefail
out=${OUT:-/tmp/out}; work=${WORK:-/tmp/bench}; steps=${STEPS:-25}; ngpu=${NGPU:-2}
name=${NAME:-train_gpu_ddp}; device=${DEVICE:-cuda}; size=${SIZE:-3b}; px=${PX:-1008}
mkdir -p "$out" "$work"
[ -d .wheels/gpu ] && python3 scripts/device/install_missing.py .wheels/gpu >/dev/null
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
extra=()
if [ "$device" = cuda ]; then
  nvidia-smi -L
  have=$("$py" -c "import torch; print(torch.cuda.device_count())")
  [ "$have" -ge "$ngpu" ] || { echo "this machine has $have GPU(s), NGPU=$ngpu asked for"; exit 2; }
  dtype=bfloat16
else
  dtype=float32; extra=(--set precision=fp32)
fi
t0=$SECONDS
[ -f "$work/data/train/annotations.jsonl" ] || \
  "$py" benchmarks/train_speed.py data --out "$work/data" --train "${TRAIN:-192}" --valid 4 --workers 12 --size "$px" &
[ -f "$work/m-$size/config.json" ] || \
  "$py" benchmarks/train_speed.py build --size "$size" --out "$work/m-$size" --device "$device" --dtype "$dtype" | tail -1
wait
echo "setup $((SECONDS - t0)) s"
common=(configs/lora-qwen2.5-vl-3b.yaml --dataset "$work/data" --model "$work/m-$size" --max-steps "$steps"
        --batch-size 4 --grad-accum 1 --set log_every=1 --set eval.n_samples=0 --set checkpoint.every_steps=0
        --set data.num_workers="${WORKERS:-6}" "${extra[@]}")
runs=()
one() {  # name, launcher...
  local n=$1; shift
  rm -rf "${work:?}/$n"
  timeout 240 "$@" "${common[@]}" --out "$work/$n" > "$work/$n.log" 2>&1 || tail -8 "$work/$n.log"
  [ -f "$work/$n/metrics.jsonl" ] && runs+=("$work/$n")
  echo "$n done at $((SECONDS - t0)) s"
}
one lora3b-1gpu "$py" -m vlmocr.cli.app train
one "lora3b-${ngpu}gpu" "$py" -m torch.distributed.run --standalone --nproc_per_node "$ngpu" -m vlmocr.cli.app train
"$py" benchmarks/train_speed.py summarize --name "$name" --warmup "${WARMUP:-5}" --results "$out" "${runs[@]}"
cp "$work"/lora3b-*.log "$out/" 2>/dev/null; true
