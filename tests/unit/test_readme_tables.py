"""The README's performance tables are the ones generated from the committed results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import benchmark_module

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


def test_every_readme_table_block_has_a_generator_and_a_table() -> None:
    import re

    tables = benchmark_module("tables")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", readme, re.S))
    assert set(blocks) <= set(tables.TABLES), set(blocks) - set(tables.TABLES)
    assert all(body.strip() for body in blocks.values()), [n for n, b in blocks.items() if not b.strip()]
    # Adjacent markers (a block just added) are filled too, not skipped.
    assert "| run |" in tables.render("<!-- bench:train_gpu -->\n<!-- /bench:train_gpu -->")
