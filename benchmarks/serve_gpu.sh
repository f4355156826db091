#!/usr/bin/env bash
# Serving throughput on a GPU machine with no network, in one call (issue: GPU serving
# throughput): builds the Qwen2.5-VL-3B shape with random weights on the GPU (bf16, kept
# in $WORK for the next call on a warm machine), synthesises 768x768 manifests, starts
# `vlmocr serve` and measures the raw openai client, `vlmocr extract` (structured output
# on/off, several client processes), `--offline` and HF `generate`, within $BUDGET_S
# seconds from the start of this script (points that cannot finish are skipped and noted).
# Before: carry the vLLM parts (scripts/device/vllm_wheels.sh) and run
# scripts/device/vllm_install.sh there (installs into $VLLM_SITE, default /root/vllm-site);
# .wheels/gpu holds vlmocr's own dependencies (scripts/device/core_wheels.sh).
# Results: $OUT/serve_gpu.json (+ .md) and benchmarks/results/serve_gpu.json there.
# Extra arguments go to `bench_serve_gpu.py run`, e.g.
#   PHASES=raw,extract benchmarks/serve_gpu.sh --extra-args '--max-num-batched-tokens 16384'
set -uo pipefail
out=${OUT:-/tmp/out}; work=${WORK:-/root/bench-serve}; budget=${BUDGET_S:-510}
site=${VLLM_SITE:-/root/vllm-site}; phases=${PHASES:-plain,raw,extract,noschema,procs,offline,hf}
mkdir -p "$out" "$work"
[ -d .wheels/gpu ] && python3 scripts/device/install_missing.py .wheels/gpu >/dev/null
export PYTHONPATH=$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OUT=$out
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
nvidia-smi -L
# PREP_ONLY=1: only the model and the images, which need no vLLM (e.g. while its parts still travel).
if [ -z "${PREP_ONLY:-}" ]; then
  python3 -c "import vllm, sys; print('vllm', vllm.__version__, 'python', sys.version.split()[0])" || exit 1
fi
if [ ! -f "$work/m3b/config.json" ]; then
  python3 benchmarks/bench_serve_gpu.py build --out "$work/m3b" --size 3b --dtype bfloat16 --device cuda &
fi
[ -d "$work/images" ] || python3 benchmarks/bench_serve_gpu.py images --out "$work/images" --n "${N_IMAGES:-6500}" &
wait
[ -n "${PREP_ONLY:-}" ] && { ls "$work"; exit 0; }
rm -rf "$work/offline-images" "$work/hf-images"  # $work/serve keeps the compile cache for the next call
python3 benchmarks/bench_serve_gpu.py run --model "$work/m3b" --work "$work" --images "$work/images" \
  --json benchmarks/results/serve_gpu.json --budget-s $((budget - SECONDS)) --phases "$phases" \
  --noschema-concurrency "${NOSCHEMA_C:-64,256,512}" --hf-max-tokens "${HF_MAX_TOKENS:-450}" "$@"
