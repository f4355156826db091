"""The README's performance tables are the ones generated from the committed results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tables_match_benchmark_results() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, "README.md tables are stale: run python benchmarks/tables.py"


def test_readme_names_the_two_commands_ci_and_make_use() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in ci
