#!/usr/bin/env bash
# Train the built-in model on a GPU machine reached through a runner that allows commands of at most
# 10 minutes (a batch scheduler with a short limit, a lent machine): it resumes between calls.
# Each call: install missing wheels, build the small base once, train (resuming from the
# last complete checkpoint of the warm machine) until SECONDS_BUDGET, then export the
# newest complete checkpoint as bf16 shards small enough to bring back through $OUT.
#   SECONDS_BUDGET=480 MAX_STEPS=1300 bash scripts/device/builtin_train.sh [more vlmocr train options]
# e.g. 2x linear resolution as run 6 (docs/builtin.md): BATCH=24 ... --set 'resolution={min_pixels: 2359296,
#   max_pixels: 2359296}' --set max_length=4096 --set data.prefetch_factor=1 --set optim.learning_rate=3.0e-4
#   --set optim.warmup_steps=50   (lr 1e-3 there made the loss spike and lost the image use: run 5)
#   and --set 'data.synth.size=[1536, 1536]' to draw the pages at that size (run 7: 20-24 samples/s with
#   14 workers, data wait <= 0.5 %; in 11,832 samples no value was read yet, see docs/builtin.md for why)
# The metrics (loss, samples seen, the in-run eval's field F1 on 32 held-back samples) come back too.
# Data loading: 10 workers, one prefetched batch each. 14 workers with two each once filled the
# host's 125 GiB (each worker ~8 GB, the trainer ~30 GB of shared batches) and the run was killed;
# 10 x 1 trained as fast (runs 10 and 12 in docs/builtin.md: 88-106 vs 98-110 samples/s). Those runs
# sent float32 pixels; since data.compact_pixels (default on) a sample's pixels are 1/8 of the bytes and
# a worker's pixel work 3.4x less (docs/train.md): runs 27-30 (docs/builtin.md) used
# --set data.num_workers=14 with it, trained at 163-174 samples/s with 0.4-0.6 % data wait (runs 24-26:
# 92-100 samples/s, 20-27 %) and the 125 GiB host held them.
#
# Curriculum stages in one call: run the script once a stage, each with its own WORK, MODEL the last
# stage's export and STAGE naming its metrics file in $OUT (the last stage's weights come back), e.g.
#   WORK=/root/s1 MODEL=scratch STAGE=s1 SECONDS_BUDGET=300 MAX_STEPS=600 bash scripts/device/builtin_train.sh \
#     --set data.synth.type_scale=2 --set data.synth.max_products=1 --set data.synth.min_filled=0 \
#     --set data.synth.max_filled=2 ... &&
#   WORK=/root/s2 MODEL=/root/s1/export STAGE=s2 SECONDS_BUDGET=240 ... --set data.synth.max_products=1 ...
# (&&: a stage whose export fails exits 1, and the next one would have no weights to start from).
#
# PHASE (default all) splits a call in three, so that a run can outlast one call and other calls
# (carrying files, preparing the next job) happen while it trains (only where the machine stays held
# between calls: one given back after a short idle time takes the run with it):
#   PHASE=start    copy the code, configs and starting weights to $WORK, start the training in its
#                  own session (setsid: it survives the call) and return;
#   PHASE=status   print the run's last log lines and in-run evaluations;
#   PHASE=collect  wait until the run ends (it stops itself after SECONDS_BUDGET), then export.
set -uo pipefail
# The shipped built-in model (in the package, so it travels with the tree under src/).
shipped=src/vlmocr/assets/builtin
budget=${SECONDS_BUDGET:-480}; steps=${MAX_STEPS:-1300}; batch=${BATCH:-48}
work=${WORK:-/root/builtin}; out=${OUT:-/tmp/out}; phase=${PHASE:-all}
mkdir -p "$work" "$out"
show_status() {
  grep -vE "it/s\]|━" "$work/train.log" 2>/dev/null | tail -${1:-6}
  python3 - "$work/run/metrics.jsonl" <<'PY'
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
except OSError:
    rows = []
train = [r for r in rows if r.get("kind") == "train"]
if train:
    print({k: train[-1].get(k) for k in ("step", "samples_seen", "loss", "grad_norm_max", "samples_per_s")})
for r in [r for r in rows if r.get("kind") == "eval"][-4:]:
    print({k: v for k, v in r.items() if k in ("step", "field_f1", "json_valid", "ted_accuracy", "image_gain",
           "image_gain_values", "image_gain_structure")})
PY
}
if [ "$phase" = status ]; then show_status 8; exit 0; fi
if [ "$phase" = collect ]; then
  # The run stops itself at SECONDS_BUDGET; wait for it (at most WAIT_S seconds).
  for _ in $(seq "${WAIT_S:-300}"); do [ -f "$work/train.done" ] && break; sleep 1; done
  [ -f "$work/train.done" ] || { echo "the run has not ended; stopping it"; pkill -TERM -f "[v]lmocr.cli.app train"; sleep 20; }  # [v]: never the shell whose command names it
  cd "$work/tree"
fi
if [ "$phase" = start ]; then
  python3 scripts/device/install_missing.py .wheels/gpu
  rm -rf "$work/tree"; mkdir -p "$work/tree"
  cp -r src configs scripts "$work/tree/"
  if [ "${MODEL:-$shipped}" != scratch ]; then
    mkdir -p "$work/tree/models"; cp -r "${MODEL:-$shipped}" "$work/tree/models/start"
    export MODEL=models/start
  fi
  rm -f "$work/train.done"
  (cd "$work/tree" && PHASE=train setsid nohup bash scripts/device/builtin_train.sh "$@" > "$work/bg.log" 2>&1 < /dev/null &)
  sleep "${SHOW_AFTER_S:-45}"; show_status 8; exit 0
fi
[ "$phase" = all ] && python3 scripts/device/install_missing.py .wheels/gpu
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
# MODEL: the weights to start from. The default, src/vlmocr/assets/builtin (the shipped built-in model),
# holds run 47: the read task on page crops and strips, extraction at the built-in contract, then four times
# the read task on strips of random-name pages followed by extraction with 30 % such pages (docs/builtin.md,
# runs 20-47; field F1 0.956); it continues with a fresh optimizer (runs 45-47: the previous stage's export on
# the warm machine as MODEL, the read stage at 1e-4, extraction at 1e-4, then 5e-5). scratch builds a fresh
# small base. The shipped weights travel with the tree under src/ (≈ 40 MB of the 64 MiB a call carries), so
# the default needs nothing carried; a carried start model of the same size does not fit beside them: for
# such calls move src/vlmocr/assets/builtin out of the tree (and back afterwards).
# Runs 1-2 were trained under CLIP's normalization, with which a tower trained from scratch did
# not learn to read (benchmarks/probe_reading_cpu.py); they are in the history only.
model=${MODEL:-$shipped}
if [ "$model" = scratch ]; then
  model="$work/small"
  [ -f "$model/config.json" ] || python3 -m vlmocr.cli.app model build --size small --out "$model" --seed 0
fi
resume=(); [ -d "$work/run/checkpoints" ] && resume=(--resume)
if [ "$phase" != collect ]; then
timeout -s TERM "$budget" python3 -m vlmocr.cli.app train configs/full-scratch.yaml --model "$model" \
  --out "$work/run" --max-steps "$steps" --batch-size "$batch" "${resume[@]}" \
  --set 'data.synth.layouts=[form, two_column, receipt, dense]' --set data.num_workers=10 --set data.prefetch_factor=1 \
  --set optim.warmup_steps=100 --set eval.every_steps="${EVAL_EVERY:-500}" --set eval.n_samples=32 \
  --set eval.batch_size=32 \
  --set checkpoint.every_steps=250 --set checkpoint.keep_last=1 --set log_every=50 "$@" >> "$work/train.log" 2>&1
echo "train exit $?"; grep -vE "it/s\]|━" "$work/train.log" | tail -15
touch "$work/train.done"
[ "$phase" = train ] && exit 0
fi
src="$work/run/final"; [ -d "$src" ] || src=$(ls -d "$work"/run/checkpoints/step-* 2>/dev/null | sort | tail -1)
echo "exporting $src"
rm -rf "$work/export"
# An earlier stage's weights in $OUT must not come back as this stage's; the metrics come back either way.
rm -f "$out"/*.safetensors "$out/side.tgz"
cp "$work/run/metrics.jsonl" "$out/metrics${STAGE:+-$STAGE}.jsonl"
python3 -m vlmocr.cli.app export "$src" --out "$work/export" --dtype bf16 --shard-size 15MB --no-vllm-check --overwrite > "$work/export.log" 2>&1
status=$?; tail -5 "$work/export.log"
if [ "$status" != 0 ]; then
  echo "export of $src failed (exit $status): no weights come back; they stay in $src on this machine" >&2
  exit 1
fi
# At most 8 files of 16 MB come back: the weight shards one by one, everything else in one tar.
cp "$work"/export/*.safetensors "$out/"
tar -C "$work/export" --exclude='*.safetensors' -czf "$out/side.tgz" .
ls -la "$out"
