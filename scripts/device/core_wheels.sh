#!/usr/bin/env bash
# Download, for a GPU machine with no network (Python 3.12, its own torch/transformers),
# the wheels of vlmocr's own runtime dependencies (not numpy/scipy/pillow, which such machines have), of TRL/PEFT/Liger
# and of py-spy (the serving benchmark's engine profile, `--pyspy-s`), so that
# `install_missing.py` there installs whichever of them the machine lacks.
# Usage: scripts/device/core_wheels.sh [DEST=.wheels/gpu]
# By default only what the lent CUDA image lacks (its package list: the device's KINDS.md),
# ≈ 6 MB, so the wheels and the repo (with its built-in model weights) travel together in one
# call; ALL=1 downloads every runtime dependency (≈ 28 MB) for a bare Python.
set -euo pipefail
dest=${1:-.wheels/gpu}
mkdir -p "$dest"
py=${PY_VERSION:-3.12}
pkgs=(typer click rich markdown-it-py mdurl pygments shellingham typing-extensions annotated-doc
      faker tzdata jsonschema jsonschema-specifications referencing rpds-py attrs zss pyyaml
      httpx httpcore h11 anyio sniffio idna certifi pydantic pydantic-core
      typing-inspection annotated-types tqdm peft liger-kernel matplotlib contourpy cycler
      fonttools kiwisolver pyparsing python-dateutil six packaging psutil py-spy)
if [ "${ALL:-0}" != 1 ]; then
  pkgs=(faker jsonschema jsonschema-specifications referencing rpds-py pydantic pydantic-core
        typing-inspection annotated-types liger-kernel sniffio py-spy)
fi
for p in "${pkgs[@]}"; do
  pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$dest" "$p" || echo "could not download $p" >&2
done
du -sh "$dest"
