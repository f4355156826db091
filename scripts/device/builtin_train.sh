#!/usr/bin/env bash
# Train the built-in model on a GPU machine reached through a runner that allows commands of at most
# 10 minutes (a batch scheduler with a short limit, a lent machine): it resumes between calls.
# Each call: install missing wheels, build the small base once, train (resuming from the
# last complete checkpoint of the warm machine) until SECONDS_BUDGET, then export the
# newest complete checkpoint as bf16 shards small enough to bring back through $OUT.
#   SECONDS_BUDGET=480 MAX_STEPS=1300 bash scripts/device/builtin_train.sh
# The metrics (loss, samples seen, the in-run eval's field F1 on 32 held-back samples) come back too.
set -uo pipefail
budget=${SECONDS_BUDGET:-480}; steps=${MAX_STEPS:-1300}; batch=${BATCH:-48}
work=${WORK:-/root/builtin}; out=${OUT:-/tmp/out}
mkdir -p "$work" "$out"
python3 scripts/device/install_missing.py .wheels/gpu
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
# MODEL: the weights to start from. models/builtin-wip (the default) holds run 3: a small base
# built with the documents' pixel statistics, trained 65k samples under M-RoPE positions
# (docs/builtin.md); it continues with a fresh optimizer. scratch builds a fresh small base.
# Runs 1-2 were trained under CLIP's normalization, with which a tower trained from scratch did
# not learn to read (benchmarks/probe_reading_cpu.py); they are in the history only.
model=${MODEL:-models/builtin-wip}
if [ "$model" = scratch ]; then
  model="$work/small"
  [ -f "$model/config.json" ] || python3 -m vlmocr.cli.app model build --size small --out "$model" --seed 0
fi
resume=(); [ -d "$work/run/checkpoints" ] && resume=(--resume)
timeout -s TERM "$budget" python3 -m vlmocr.cli.app train configs/full-scratch.yaml --model "$model" \
  --out "$work/run" --max-steps "$steps" --batch-size "$batch" "${resume[@]}" \
  --set 'data.synth.layouts=[form, two_column, receipt, dense]' --set data.num_workers=14 \
  --set optim.warmup_steps=100 --set eval.every_steps="${EVAL_EVERY:-500}" --set eval.n_samples=32 \
  --set eval.batch_size=32 \
  --set checkpoint.every_steps=250 --set checkpoint.keep_last=1 --set log_every=50 >> "$work/train.log" 2>&1
echo "train exit $?"; grep -vE "it/s\]|━" "$work/train.log" | tail -15
src="$work/run/final"; [ -d "$src" ] || src=$(ls -d "$work"/run/checkpoints/step-* 2>/dev/null | sort | tail -1)
echo "exporting $src"
rm -rf "$work/export"
python3 -m vlmocr.cli.app export "$src" --out "$work/export" --dtype bf16 --shard-size 15MB --no-vllm-check --overwrite 2>&1 | tail -5
# At most 8 files of 16 MB come back: the weight shards one by one, everything else in one tar.
cp "$work"/export/*.safetensors "$out/"
tar -C "$work/export" --exclude='*.safetensors' -czf "$out/side.tgz" .
cp "$work/run/metrics.jsonl" "$out/metrics.jsonl"
ls -la "$out"
