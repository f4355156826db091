"""Install, from a folder of wheels, only the distributions this Python does not have.

For machines without network access: never replaces what is installed (torch,
transformers ... stay as the machine has them). Usage: python install_missing.py DIR [DIR...]
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path


def canonical(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def main() -> None:
    have = {canonical(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
    todo = []
    for folder in sys.argv[1:]:
        for wheel in sorted(Path(folder).glob("*.whl")):
            name = canonical(wheel.name.split("-")[0])
            if name not in have:
                todo.append(str(wheel))
                have.add(name)
    if todo:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *todo], check=True)
    print("installed:", " ".join(Path(t).name.split("-")[0] for t in todo) or "nothing")


if __name__ == "__main__":
    main()
