#!/usr/bin/env bash
# On the GPU machine: join the carried parts (collected in $PARTS, default /root/vllm-parts)
# and install the wheels into a target folder that PYTHONPATH then points at.
set -euo pipefail
parts=${PARTS:-/root/vllm-parts}
target=${TARGET:-/root/vllm-site}
work=$(mktemp -d)
cat "$parts"/bundle.* > "$work/vllm-wheels.tar"
tar -C "$work" -xf "$work/vllm-wheels.tar"
python3 -m pip install -q --no-index --no-deps --target "$target" "$work"/wheels/*.whl
rm -rf "$work"
echo "installed into $target; use PYTHONPATH=$target"
