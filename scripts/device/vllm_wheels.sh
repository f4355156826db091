#!/usr/bin/env bash
# Download vLLM 0.26.0 for a GPU machine with no network (Python 3.12, torch 2.11.0+cu130,
# CUDA 13), pack it into one tar and split it into parts small enough to carry one a call.
#
# vllm 0.26.0 is the last release built for torch 2.11 / torchvision 0.26; the list below is
# what its OpenAI server needs beyond such a machine's image (torch, transformers, numpy ...).
# openai stays < 3 (3.x imports httpx2), xgrammar 0.2.8 needs apache-tvm-ffi >= 0.1.11,
# compressed-tensors (imported by every --quantization, fp8 too) needs loguru.
# Usage: scripts/device/vllm_wheels.sh [DEST=.wheels/vllm] [PART_MIB=58]
# Then carry .wheels/vllm/part-NN one call each (docs/serve-extract.md, "Serving throughput on a
# GPU") and run scripts/device/vllm_install.sh there. A call carries the working tree too
# (64 MiB in all): move the shipped built-in model, src/vlmocr/assets/builtin (40 MB), out of the
# tree for the carrying calls and back afterwards.
set -euo pipefail
dest=${1:-.wheels/vllm}
part_mib=${2:-58}
dl="$dest/wheels"
mkdir -p "$dl"
pkgs=("vllm==0.26.0" annotated-types astor blake3 cachetools cbor2 "compressed-tensors==0.17.0"
      "depyf==0.20.0" dill distro "fastapi>=0.136,<0.137" ijson interegular jiter jsonschema
      jsonschema-specifications "lark==1.2.2" "llguidance>=1.7,<1.8" "lm-format-enforcer==0.11.3"
      mistral_common msgspec openai-harmony "outlines_core==0.2.14" partial-json-parser
      prometheus-fastapi-instrumentator pybase64 pycountry "pydantic==2.14.*" "pydantic-core"
      pydantic-extra-types python-json-logger pyzmq referencing rpds-py setproctitle sniffio
      starlette typing-inspection uvicorn watchfiles "xgrammar==0.2.8" "openai<3"
      "apache-tvm-ffi==0.1.11" model-hosting-container-standards jmespath supervisor
      "flashinfer-python==0.6.14" httpx httpcore h11 anyio prometheus_client tiktoken
      python-multipart httptools uvloop websockets gguf loguru)
for p in "${pkgs[@]}"; do
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform any \
    -d "$dl" "$p" 2>/dev/null || echo "could not download $p" >&2
done
rm -f "$dest"/part-* 2>/dev/null || true
tar -C "$dest" -cf "$dest/vllm-wheels.tar" wheels
( cd "$dest" && split -b "${part_mib}m" -d vllm-wheels.tar bundle. )
rm "$dest/vllm-wheels.tar"
for f in "$dest"/bundle.*; do d="$dest/part-${f##*.}"; mkdir -p "$d"; mv "$f" "$d/"; done
ls "$dest"; du -sh "$dest"
