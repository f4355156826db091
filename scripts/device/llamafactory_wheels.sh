#!/usr/bin/env bash
# Download LLaMA-Factory 0.9.5 and what its training path needs beyond a GPU machine's image
# (torch, torchvision, torchaudio, numpy, pillow, pandas ... stay the machine's), for a machine
# with no network, and sort the wheels into parts small enough to carry one a call.
#
# The wheels are exactly the pins in scripts/device/llamafactory_wheels.txt (which also says why
# each is there and which modules a training run imports). A release published only as a source
# archive (antlr4-python3-runtime 4.9.3) is built here into a pure-Python wheel.
# Usage: scripts/device/llamafactory_wheels.sh [DEST=.wheels/llamafactory] [PART_MIB=20]
#   PY_VERSION=3.12 (default: the GPU machines' python3) picks the compiled wheels (pyarrow,
#   xxhash, multiprocess); PY_VERSION=3.11 gives the set for this project's own venv.
#   PYTHON: the interpreter whose pip downloads (default python3).
# Result: DEST/part-NN/ with whole wheels, each part at most PART_MIB, and DEST/part-NN/manifest.txt.
# A wheel larger than PART_MIB (pyarrow, ≈ 41 MiB) is cut into NAME.whl.piece-NN files that
# llamafactory_overlay.sh joins again. The whole wheels are placed first, so part-00 holds every
# wheel but pyarrow (≈ 17 MiB; pyarrow's last piece may share it): enough where the machine's
# own pyarrow is used. PART_MIB is 20 for a runner that copies the working tree with every
# command, 64 MiB at most: this checkout's files (≈ 43 MiB, the built-in model's weights
# included) and one part fit together; the script prints both. Carry DEST/part-NN one a call
# and run scripts/device/llamafactory_overlay.sh each time: it keeps the parts it has seen and
# installs once the set is complete.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list="$here/llamafactory_wheels.txt"
dest=${1:-.wheels/llamafactory}
part_mib=${2:-20}
py=${PY_VERSION:-3.12}
pip=(python3 -m pip)
[ -n "${PYTHON:-}" ] && pip=("$PYTHON" -m pip)
dl="$dest/download"
rm -rf "$dl" "$dest"/part-*
mkdir -p "$dl"
failed=0
while read -r spec; do
  if ! "${pip[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
      -d "$dl" "$spec" 2>/dev/null; then
    # No wheel for it: build one from the source archive, kept only if it is pure Python.
    tmp=$(mktemp -d)
    if "${pip[@]}" wheel -q --disable-pip-version-check --no-deps -w "$tmp" "$spec" >/dev/null 2>&1 \
        && ls "$tmp"/*-py3-none-any.whl >/dev/null 2>&1; then
      mv "$tmp"/*.whl "$dl/"
    else
      echo "could not get a wheel for $spec" >&2; failed=1
    fi
    rm -rf "$tmp"
  fi
done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
[ "$failed" = 0 ] || { echo "some wheels are missing; nothing split" >&2; exit 1; }

# Whole wheels into parts of at most PART_MIB: every wheel that fits first (largest first, first
# fit), then the pieces of any larger one. manifest.txt (name, size, sha256, pieces) goes into
# every part, so the overlay script knows what a complete set is wherever it finds one part.
python3 - "$dl" "$dest" "$part_mib" <<'PY'
import hashlib, shutil, sys
from pathlib import Path

dl, dest, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) * 2**20
manifest, items = [], []
for wheel in sorted(dl.glob("*.whl"), key=lambda p: -p.stat().st_size):
    data = wheel.read_bytes()
    pieces = 1 if len(data) <= limit else -(-len(data) // limit)
    manifest.append(f"{wheel.name} {len(data)} {hashlib.sha256(data).hexdigest()} {pieces}")
    if pieces == 1:
        items.append((0, wheel))
        continue
    for k in range(pieces):
        piece = wheel.with_name(f"{wheel.name}.piece-{k:02d}")
        piece.write_bytes(data[k * limit:(k + 1) * limit])
        items.append((1, piece))
    wheel.unlink()
parts: list[list[Path]] = []
sizes: list[int] = []
for _, item in sorted(items, key=lambda x: (x[0], -x[1].stat().st_size if x[0] == 0 else 0)):
    size = item.stat().st_size
    for i, used in enumerate(sizes):
        if used + size <= limit:
            parts[i].append(item); sizes[i] += size
            break
    else:
        parts.append([item]); sizes.append(size)
text = "\n".join(sorted(manifest)) + "\n"
(dest / "manifest.txt").write_text(text)
for i, (files, used) in enumerate(zip(parts, sizes)):
    folder = dest / f"part-{i:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.txt").write_text(text)
    print(f"{folder}: {len(files)} files, {used / 2**20:.2f} MiB")
    for f in sorted(files):
        shutil.move(str(f), folder / f.name)
        print(f"  {f.name}  {(folder / f.name).stat().st_size / 2**20:.2f} MiB")
print(f"total {sum(sizes) / 2**20:.1f} MiB, {len(manifest)} wheels, in {len(parts)} part(s) of at most {limit // 2**20} MiB")
PY
rmdir "$dl" 2>/dev/null || true
# What travels with each call besides a part: this checkout's tracked and untracked-not-ignored files.
if tree=$(git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1); then
  echo "working tree $((tree / 1048576)) MiB + one part ≤ $part_mib MiB (64 MiB a call in all)"
fi
