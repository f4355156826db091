#!/usr/bin/env bash
# Train the built-in model on a GPU machine reached through a runner that allows commands of at most
# 10 minutes (a batch scheduler with a short limit, a lent machine): it resumes between calls.
# Each call: install missing wheels, build the small base once, train (resuming from the
# last complete checkpoint of the warm machine) until SECONDS_BUDGET, then export the
# newest complete checkpoint as bf16 shards small enough to bring back through $OUT.
#   SECONDS_BUDGET=480 MAX_STEPS=1300 bash scripts/device/builtin_train.sh
set -uo pipefail
budget=${SECONDS_BUDGET:-480}; steps=${MAX_STEPS:-1300}; batch=${BATCH:-48}
work=${WORK:-/root/builtin}; out=${OUT:-/tmp/out}
mkdir -p "$work" "$out"
python3 scripts/device/install_missing.py .wheels/core
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
[ -f "$work/small/config.json" ] || python3 -m vlmocr.cli.app model build --size small --out "$work/small" --seed 0
resume=(); [ -d "$work/run/checkpoints" ] && resume=(--resume)
timeout -s TERM "$budget" python3 -m vlmocr.cli.app train configs/full-scratch.yaml --model "$work/small" \
  --out "$work/run" --max-steps "$steps" --batch-size "$batch" "${resume[@]}" \
  --set 'data.synth.layouts=[form, two_column, receipt, dense]' --set data.num_workers=14 \
  --set optim.warmup_steps=100 --set eval.every_steps=0 --set eval.n_samples=16 \
  --set checkpoint.every_steps=100 --set checkpoint.keep_last=1 --set log_every=25 >> "$work/train.log" 2>&1
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
