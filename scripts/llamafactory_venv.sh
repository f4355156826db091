#!/usr/bin/env bash
# A separate venv with LLaMA-Factory 0.9.5, for checking that vlmocr's ShareGPT output loads there.
# LLaMA-Factory pins transformers <= 5.6 / peft <= 0.18.1, so it cannot share vlmocr's venv;
# its data module imports torchaudio, so torch 2.9.1 + matching torchvision/torchaudio are used.
# Idempotent. Usage: scripts/llamafactory_venv.sh [VENV=.venv-llamafactory]
set -euo pipefail
venv=${1:-.venv-llamafactory}
if [ -f "$venv/.ready" ]; then echo "$venv ready"; exit 0; fi
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==2.9.1" "torchvision==0.24.1" "torchaudio==2.9.*"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "llamafactory==0.9.5"
"$venv/bin/python" -c "import llamafactory; print('llamafactory', llamafactory.__version__)"
touch "$venv/.ready"
