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
# VARIANTS compares several server settings in one call (below).
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
# PREWARM=1: start `vlmocr serve` once for each of VARIANTS (below; '-' the plain one), one after the other
# with PREWARM_MEM of the GPU's memory, in a session of its own (it outlives the call), stopping each once
# it answers: this fills the shared compile cache ($work/serve/cache) while other work runs, so the
# measured starts later take ~60-90 s instead of ~200 s. One at a time: vLLM's start-up memory profile
# fails when another engine on the GPU allocates or frees memory meanwhile (seen with four at once).
# `PREWARM=status` lists which have finished.
if [ "${PREWARM:-}" = status ]; then
  for f in "$work"/prewarm-*/result; do echo "$f: $(cat "$f")"; done; exit 0
fi
if [ -n "${PREWARM:-}" ]; then
  rm -rf "$work"/prewarm-*; mkdir -p "$work/prewarm-tree"; cp -r src "$work/prewarm-tree/"  # outlives this call's tree
  setsid nohup bash -c '
    work=$1; IFS="|" read -r -a variants <<< "$2"
    for i in "${!variants[@]}"; do
      flags=${variants[$i]}; [ "$flags" = - ] && flags=""
      read -r -a words <<< "$flags"; vargs=()
      for ((k = 0; k < ${#words[@]}; k++)); do  # --replicas N is vlmocr serve'"'"'s, the rest vLLM'"'"'s
        if [ "${words[$k]}" = --replicas ]; then vargs+=(--replicas "${words[$((k + 1))]}"); k=$((k + 1));
        else vargs+=("--vllm-arg=${words[$k]}"); fi
      done
      dir=$work/prewarm-$i; mkdir -p "$dir"; start=$SECONDS
      PYTHONPATH=$3:$work/prewarm-tree/src python3 -m vlmocr.cli.app serve "$work/m3b" --device gpu --port 0 \
        --max-tokens "$4" --max-num-seqs 512 --gpu-memory-utilization "$5" --run-dir "$dir/run" \
        --cache-dir "$work/serve/cache" --startup-timeout 900 "${vargs[@]}" > "$dir/serve.out" 2>&1 & pid=$!
      until grep -q "ready" "$dir/serve.out" 2>/dev/null || ! kill -0 $pid 2>/dev/null; do sleep 2; done
      if kill -0 $pid 2>/dev/null; then echo "ready after $((SECONDS - start)) s: ${flags:-no extra flags}" > "$dir/result"; kill -INT $pid
      else echo "failed after $((SECONDS - start)) s: ${flags:-no extra flags}: $(tail -c 400 "$dir/serve.out")" > "$dir/result"; fi
      wait $pid
    done' _ "$work" "${VARIANTS:--}" "$site" "${MAX_TOKENS:-450}" "${PREWARM_MEM:-0.3}" > "$work/prewarm.log" 2>&1 < /dev/null &
  echo "prewarming in the background: ${VARIANTS:--}"
  exit 0
fi
rm -rf "$work/offline-images" "$work/hf-images"  # $work/serve keeps the compile cache for the next call
run() {  # results file, budget, more arguments
  local json=$1 left=$2; shift 2
  python3 benchmarks/bench_serve_gpu.py run --model "$work/m3b" --work "$work" --images "$work/images" \
    --json "$json" --budget-s "$left" --phases "$phases" \
    --noschema-concurrency "${NOSCHEMA_C:-64,256,512}" --hf-max-tokens "${HF_MAX_TOKENS:-450}" "$@"
}
if [ -z "${VARIANTS:-}" ]; then
  run benchmarks/results/serve_gpu.json $((budget - SECONDS)) "$@"
  exit
fi
# VARIANTS: server settings to compare in one call, separated by '|', each the vLLM flags `vlmocr serve`
# gets on top of its own ('-' for none; words split at spaces, so JSON without spaces), e.g.
#   VARIANTS='--compilation-config {}|-|--max-num-batched-tokens 32768'
# except `--replicas N`, which is `vlmocr serve`'s: N servers on the GPU, the clients spread over them, e.g.
#   VARIANTS='-|--replicas 2|--replicas 3'
# (`vlmocr serve` compiles the vision encoder on GPUs with vLLM >= 0.26 unless the flags carry their own
# --compilation-config: the first variant is the server without that compile, the second with it.)
# Each variant starts its own server and runs PHASES in an equal share of the time left; the parts
# are merged into benchmarks/results/serve_gpu.json (each record's `call` indexes its variant's settings).
IFS='|' read -r -a variants <<< "$VARIANTS"
rm -f "$work"/variant-*.json  # an earlier call's parts must not travel back with this call's
parts=()
for i in "${!variants[@]}"; do
  flags=${variants[$i]}; [ "$flags" = - ] && flags=""
  share=$(( (budget - SECONDS) / (${#variants[@]} - i) ))
  echo "variant $i: ${flags:-no extra flags}, $share s"
  # Words split at spaces (as PREWARM does), each quoted for the benchmark's shell-style split: JSON keeps its quotes.
  read -r -a words <<< "$flags"; vflags=(); reps=()
  for ((k = 0; k < ${#words[@]}; k++)); do  # --replicas N goes to the benchmark, the rest to vLLM
    if [ "${words[$k]}" = --replicas ]; then reps=(--replicas "${words[$((k + 1))]}"); k=$((k + 1));
    else vflags+=("${words[$k]}"); fi
  done
  quoted=$( ((${#vflags[@]})) && printf '%q ' "${vflags[@]}")
  OUT= run "$work/variant-$i.json" "$share" --extra-args "$quoted" "${reps[@]}" "$@"
  parts+=("$work/variant-$i.json")
done
python3 benchmarks/bench_serve_gpu.py merge "${parts[@]}" --json benchmarks/results/serve_gpu.json
cp benchmarks/results/serve_gpu.json benchmarks/results/serve_gpu.md "$out/" 2>/dev/null
cp "$work"/variant-*.json "$out/" 2>/dev/null
true
