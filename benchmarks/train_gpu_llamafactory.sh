#!/usr/bin/env bash
# Training throughput of LLaMA-Factory 0.9.5 on the setup of benchmarks/train_gpu.sh, for a
# side-by-side with `vlmocr train`: LoRA r=16 (alpha 32, dropout 0) on every linear layer of the
# language model (LLaMA-Factory's `lora_target: all` with its default frozen vision tower and
# projector: the modules vlmocr's LoRA adapts), the Qwen2.5-VL-3B shape, batch 4, no gradient
# accumulation, bf16, the same 1008×1008 synthetic manifests at the model's own resolution
# (image_min/max_pixels from its vlmocr.json), converted with `vlmocr data convert --to sharegpt`.
#   OUT=/tmp/out WORK=/tmp/bench bash benchmarks/train_gpu_llamafactory.sh
#     → $OUT/llamafactory.json (LLaMA-Factory's defaults: gradient checkpointing on) and
#       $OUT/llamafactory_nogc.json (disable_gradient_checkpointing: true, as vlmocr's default),
#       in benchmarks/naive_lora.py's record form (train_speed.py records --naive takes them).
# Reuses $WORK/m3b and $WORK/data when train_gpu.sh made them there; builds them otherwise
# (that and `vlmocr data convert` need vlmocr's dependencies: .wheels/gpu is installed where present).
# LLaMA-Factory runs from an overlay folder first on PYTHONPATH, over the machine's torch:
# scripts/device/llamafactory_overlay.sh makes it (LF_OVERLAY, default /root/lf-overlay).
# benchmarks/train_llamafactory.py runs LLaMA-Factory's run_exp in-process and measures (method
# in its docstring: steady state after the first WARMUP steps, CUDA-synchronized step ends); on
# one GPU that is what `llamafactory-cli train CONFIG` runs. 96 samples at batch 4 make 24 steps
# an epoch, so step 25 starts a second one; dataloader_persistent_workers keeps the workers
# across it (vlmocr's loader is endless: no restart). The record's step_seconds lists every step.
# Also runs on a CPU (DEVICE=cpu: fp32, use_cpu) with a small model and data, for checking the setup.
# Settings (environment): STEPS=25 WARMUP=5 BATCH=4 WORKERS=6 (dataloader and preprocessing workers)
#   VARIANTS="default nogc" RUN_TIMEOUT=300 (seconds a run) DEVICE=auto|cuda|cpu (cpu: fp32)
#   SIZE=3b (model) PX=1008 (pages) TRAIN=96 PYTHON=python3
#   LF_PYTHONPATH: folders put after the overlay (a torchaudio that matches this torch, say);
#   LF_PYTHON: the interpreter of the LLaMA-Factory runs (default PYTHON).
#   LF_COPY_LOGS=0: leave the run logs in $WORK (train_gpu.sh archives them).
set -uo pipefail
out=${OUT:-/tmp/out}; work=${WORK:-/tmp/bench}; steps=${STEPS:-25}; warmup=${WARMUP:-5}
batch=${BATCH:-4}; workers=${WORKERS:-6}; variants=${VARIANTS:-default nogc}
overlay=${LF_OVERLAY:-/root/lf-overlay}; py=${PYTHON:-python3}; size=${SIZE:-3b}; px=${PX:-1008}
mkdir -p "$out" "$work"
[ -f "$overlay/llamafactory/__init__.py" ] || { echo "no LLaMA-Factory overlay at $overlay (run scripts/device/llamafactory_overlay.sh)"; exit 1; }
device=${DEVICE:-auto}
if [ "$device" = auto ]; then
  device=$("$py" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
if [ "$device" = cuda ]; then dtype=bfloat16; nvidia-smi -L; else dtype=float32; fi
# vlmocr's own dependencies where a machine lacks them (scripts/device/core_wheels.sh), as train_gpu.sh does.
[ -d .wheels/gpu ] && "$py" scripts/device/install_missing.py .wheels/gpu >/dev/null
export PYTHONUNBUFFERED=1
t0=$SECONDS

# 1. The model and data of train_gpu.sh (kept when already there), the data as ShareGPT.
[ -f "$work/data/train/annotations.jsonl" ] || \
  PYTHONPATH=$PWD/src "$py" benchmarks/train_speed.py data --out "$work/data" --train "${TRAIN:-96}" --valid 4 \
    --workers "$workers" --size "$px" | tail -1
[ -f "$work/m3b/config.json" ] || \
  PYTHONPATH=$PWD/src "$py" benchmarks/train_speed.py build --size "$size" --out "$work/m3b" --device "$device" \
    --dtype "$dtype" | tail -1
rm -rf "$work/lf_data"
PYTHONPATH=$PWD/src "$py" -m vlmocr.cli.app data convert "$work/data" --to sharegpt --out "$work/lf_data" \
  --name manifest || exit 1
read -r min_px max_px < <("$py" -c 'import json,sys; r=json.load(open(sys.argv[1]))["resolution"]; print(r["min_pixels"], r["max_pixels"])' "$work/m3b/vlmocr.json")
echo "setup $((SECONDS - t0)) s; resolution $min_px..$max_px pixels"

# 2. One LLaMA-Factory run a variant, each bounded; the record is written by the wrapper at the end.
precision="bf16: true"
[ "$device" = cpu ] && precision=$'bf16: false\nuse_cpu: true'
for variant in $variants; do
  name=llamafactory; extra=""
  case $variant in
    default) ;;
    nogc) name=llamafactory_nogc; extra="disable_gradient_checkpointing: true" ;;
    *) echo "unknown variant $variant (default, nogc)"; continue ;;
  esac
  run="$work/lf_$variant"; rm -rf "$run" "$out/$name.json"; mkdir -p "$run"
  cat > "$run.yaml" <<YAML
### model
model_name_or_path: $work/m3b
image_min_pixels: $min_px
image_max_pixels: $max_px
### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 16
lora_alpha: 32
lora_dropout: 0.0
lora_target: all
$extra
### dataset
dataset: manifest
dataset_dir: $work/lf_data
template: qwen2_vl
cutoff_len: 4096
overwrite_cache: true
preprocessing_num_workers: $workers
dataloader_num_workers: $workers
$([ "$workers" -gt 0 ] && echo "dataloader_persistent_workers: true")
### output
output_dir: $run
logging_steps: 1
save_strategy: "no"
plot_loss: false
overwrite_output_dir: true
report_to: none
### train
per_device_train_batch_size: $batch
gradient_accumulation_steps: 1
learning_rate: 2.0e-4
lr_scheduler_type: cosine
warmup_steps: 1
max_steps: $steps
include_num_input_tokens_seen: non_padding
$precision
YAML
  # In the overlay's environment only: no vlmocr on the path, nothing fetched.
  env -u PYTHONPATH PYTHONPATH="$overlay${LF_PYTHONPATH:+:$LF_PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 HF_HOME="$work/hf" \
    $([ "$device" = cpu ] && echo CUDA_VISIBLE_DEVICES=) \
    timeout "${RUN_TIMEOUT:-300}" "${LF_PYTHON:-$py}" benchmarks/train_llamafactory.py "$run.yaml" --out "$out/$name.json" \
      --name "$name" --warmup "$warmup" --modules "$run/modules.json" > "$work/$name.log" 2>&1
  rc=$?
  [ "${LF_COPY_LOGS:-1}" = 1 ] && cp "$work/$name.log" "$out/" 2>/dev/null
  if [ $rc != 0 ]; then echo "$name failed ($rc):"; tail -20 "$work/$name.log"; fi
  [ -f "$out/$name.json" ] && tail -1 "$work/$name.log"
  echo "$name done at $((SECONDS - t0)) s"
done
