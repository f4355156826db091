#!/usr/bin/env bash
# On a GPU machine with no network: install LLaMA-Factory 0.9.5 and the wheels its training
# path needs (scripts/device/llamafactory_wheels.sh made them) into an overlay folder, over the
# machine's own torch/torchvision/torchaudio, and print the versions Python imports from it.
#   bash scripts/device/llamafactory_overlay.sh        # then: PYTHONPATH=$LF_OVERLAY python3 ...
# The parts may come one a call: every part found under LF_WHEELS (default .wheels/llamafactory,
# where a carried part lands) is first copied to LF_PARTS (default /root/lf-parts), which stays
# while the machine does; the install runs once LF_PARTS holds every wheel of manifest.txt,
# pieces joined and checked against their sha256. pyarrow alone may be left out: where its
# pieces have not all come and the machine's python imports a pyarrow >= 15, that one is used.
# Until the set is complete it lists what is missing and exits 2. Installs into LF_OVERLAY
# (default /root/lf-overlay) with `pip install --no-deps --no-index --target`; running it again
# with the same wheels changes nothing. PYTHON: the interpreter (default python3).
set -euo pipefail
wheels=${LF_WHEELS:-.wheels/llamafactory}
parts=${LF_PARTS:-/root/lf-parts}
overlay=${LF_OVERLAY:-/root/lf-overlay}
py=${PYTHON:-python3}
mkdir -p "$parts"
for d in "$wheels"/part-*/; do
  [ -d "$d" ] || continue
  cp -p "$d"* "$parts/"
  echo "kept $(basename "$d") in $parts"
done
[ -f "$parts/manifest.txt" ] || { echo "no part found (in $wheels/part-NN or $parts)"; exit 2; }

# Join and check; prints the wheels to install, one a line, or the missing files on stderr.
joined=$(mktemp -d)
trap 'rm -rf "$joined"' EXIT
if ! todo=$("$py" - "$parts" "$joined" <<'PY'
import hashlib, sys
from pathlib import Path

parts, joined = Path(sys.argv[1]), Path(sys.argv[2])
missing, todo = [], []
for line in (parts / "manifest.txt").read_text().split("\n"):
    if not line.strip():
        continue
    name, size, sha, pieces = line.split()
    if int(pieces) == 1:
        files = [parts / name]
    else:
        files = [parts / f"{name}.piece-{k:02d}" for k in range(int(pieces))]
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        if name.startswith("pyarrow-"):
            try:
                import pyarrow
                if int(pyarrow.__version__.split(".")[0]) >= 15:
                    print(f"pyarrow: using this machine's {pyarrow.__version__} ({len(absent)} piece(s) not here)",
                          file=sys.stderr)
                    continue
            except ImportError:
                pass
        missing += absent
        continue
    data = b"".join(f.read_bytes() for f in files)
    if len(data) != int(size) or hashlib.sha256(data).hexdigest() != sha:
        missing.append(f"{name} (corrupt: size or sha256 differs)")
        continue
    if int(pieces) > 1:
        (joined / name).write_bytes(data)
        files = [joined / name]
    todo.append(str(files[0]))
if missing:
    print("missing: " + " ".join(missing), file=sys.stderr)
    sys.exit(2)
print("\n".join(todo))
PY
); then
  echo "not complete yet; carry the remaining part(s) and run this again"; exit 2
fi

stamp="$overlay/.lf-wheels"
want=$(printf '%s\n' $todo | xargs -n1 basename | sort)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$overlay already holds these wheels"
else
  rm -rf "$overlay"
  # shellcheck disable=SC2086
  PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q --disable-pip-version-check --no-deps --no-index --no-compile --no-cache-dir \
    --target "$overlay" $todo
  echo "$want" > "$stamp"
  echo "installed $(echo "$want" | wc -l) wheels into $overlay"
fi
PYTHONPATH="$overlay${PYTHONPATH:+:$PYTHONPATH}" "$py" - <<'PY'
import importlib

for name in ("llamafactory", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "pyarrow", "torch"):
    module = importlib.import_module(name)
    print(f"{name:<14} {getattr(module, '__version__', '?'):<14} {module.__file__}")
PY
echo "use: PYTHONPATH=$overlay"
