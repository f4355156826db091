#!/usr/bin/env bash
# The reading probe (benchmarks/probe_reading_cpu.py) on a GPU machine reached through a runner with short
# commands: several page settings side by side, each in its own session (they outlive the call).
#   PHASE=start    copy the code, start one probe per entry of PROBES (codes a page), return;
#   PHASE=status   the probes' last log lines and in-run evaluations;
#   PHASE=collect  wait for them (each stops itself MAX_S seconds after it started, page drawing included;
#                  after WAIT_S seconds (default MAX_S + 180) the rest are stopped: the trainer checkpoints and the record keeps
#                  the curve so far), then merge their
#                  records into $OUT/builtin_reading_probe_gpu.json and their logs into $OUT/probe_logs.tgz.
#   PROBES="4 8 16" MAX_S=420 PHASE=start bash benchmarks/probe_reading_gpu.sh
# Each entry of PROBES is CODES[:CYCLES[:MODEL_SEED[:N_TRAIN[:LIGER[:SIZE[:PRECISION[:PAGE_SCALE]]]]]]] (defaults: $CYCLES or 1, 0,
# $N_TRAIN, auto, tiny, fp32, 1; PAGE_SCALE N: a page N times larger on each side, the type as it was; PRECISION fp32 or bf16 (the built-in model's training runs under bf16); LR (1e-3) is every
# probe's peak learning rate; SIZE is `vlmocr model build --size`; LIGER off trains without Liger's kernels, which are on by default on a CUDA GPU; CYCLE_DECAY scales
# each cycle's peak learning rate from the one before, for every probe), e.g.
#   PROBES="4:3:0 4:3:1 8:3:0 4:1:0" STEPS=3000 ...  (three warm-restart cycles of 1,000 steps, two model seeds)
# Pages: FONT_PX (20) px type drawn at RENDER_SCALE (2)x, one 4-digit code a line, as the CPU probes of docs/builtin.md; N_TRAIN
# pages are drawn by JOBS processes (other pages than one process draws) and cycled if a run outlasts them.
set -uo pipefail
work=${WORK:-/root/probe-reading}; out=${OUT:-/tmp/out}; phase=${PHASE:-start}
mkdir -p "$work" "$out"
if [ "$phase" = start ]; then
  [ -d .wheels/gpu ] && python3 scripts/device/install_missing.py .wheels/gpu >/dev/null
  rm -rf "$work/tree" "$work/runs" "$work"/results-*.json "$work"/done-* "$work"/probe-*.log
  mkdir -p "$work/tree"; cp -r src benchmarks "$work/tree/"
  cd "$work/tree" || exit 1
  export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
  for entry in ${PROBES:-4 8 16}; do
    IFS=: read -r codes cycles mseed ntrain liger size precision pscale <<< "$entry"
    cycles=${cycles:-${CYCLES:-1}}; mseed=${mseed:-0}; ntrain=${ntrain:-${N_TRAIN:-40000}}; liger=${liger:-auto}; size=${size:-tiny}; precision=${precision:-fp32}; pscale=${pscale:-1}
    key=${entry//:/-}
    setsid nohup bash -c "python3 benchmarks/probe_reading_cpu.py --font-px ${FONT_PX:-20} --render-scale ${RENDER_SCALE:-2} --codes $codes --size $size --page-scale $pscale --precision $precision --lr ${LR:-1e-3} \
      --cycles $cycles --cycle-decay ${CYCLE_DECAY:-1} --model-seed $mseed --liger $liger --steps ${STEPS:-10000} --n-train $ntrain --eval-every ${EVAL_EVERY:-250} \
      --jobs ${JOBS:-4} --workers ${WORKERS:-2} --max-seconds ${MAX_S:-420} --out $work/runs \
      --results $work/results-$key.json; echo \$? > $work/done-$key" > "$work/probe-$key.log" 2>&1 < /dev/null &
  done
  sleep "${SHOW_AFTER_S:-15}"; tail -n 3 "$work"/probe-*.log; exit 0
fi
show_status() {
  for log in "$work"/probe-*.log; do echo "== $log"; grep -vE "it/s\]|━" "$log" | tail -n 3; done
  for m in "$work"/runs/*/train/metrics.jsonl; do
    python3 - "$m" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
train = [r for r in rows if r.get("kind") == "train"]
evals = [r for r in rows if r.get("kind") == "eval"]
print(sys.argv[1].split("/")[-3], {k: train[-1].get(k) for k in ("step", "samples_seen", "loss", "samples_per_s")} if train else {},
      [(r["step"], round(r.get("image_gain_values") or 0, 4)) for r in evals][-6:])
PY
  done
}
if [ "$phase" = status ]; then show_status; exit 0; fi
all_done() { [ "$(ls "$work"/done-* 2>/dev/null | wc -l)" -ge "$(ls "$work"/probe-*.log 2>/dev/null | wc -l)" ]; }
wait_s=${WAIT_S:-$(( ${MAX_S:-420} + 180 ))}  # by default long enough for probes started with the same MAX_S
if [ "$wait_s" -lt "${MAX_S:-420}" ]; then
  echo "note: WAIT_S=$wait_s is shorter than MAX_S=${MAX_S:-420}: the probes still running then are stopped early" >&2
fi
for _ in $(seq "$wait_s"); do all_done && break; sleep 1; done
if ! all_done; then  # SIGTERM to a probe stops its training and writes its record with the curve so far
  echo "stopping the probes still running"; pkill -TERM -f "^python3 benchmarks/probe_reading_cpu.py"  # the probes, not their wrapper shells
  for _ in $(seq 180); do all_done && break; sleep 1; done
fi
show_status
python3 - "$work" "$out/builtin_reading_probe_gpu.json" <<'PY'
import glob, json, sys
work, dest = sys.argv[1], sys.argv[2]
records, head = [], {}
for path in sorted(glob.glob(f"{work}/results-*.json")):
    data = json.load(open(path))
    head = {k: v for k, v in data.items() if k != "records"}
    records += data["records"]
json.dump(head | {"records": records}, open(dest, "w"), indent=2)
print(f"{len(records)} records -> {dest}")
PY
tar -C "$work" -czf "$out/probe_logs.tgz" --exclude='*.safetensors' --exclude='*.png' --exclude='*.pt' \
  $(cd "$work" && ls probe-*.log runs/*/train/metrics.jsonl runs/*/train.json 2>/dev/null)
ls -la "$out"
