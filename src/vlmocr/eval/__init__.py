"""Evaluation: JSON-aware scores for predictions against gold targets, and reports.

- `normalize`: value normalization (NFC, whitespace, optional case/number) and Donut's
  `normalize_dict` / `flatten`.
- `ted`: Donut-compatible normalized tree edit distance accuracy (exact, fast).
- `align`: per-field comparison with list rows matched one-to-one (Hungarian).
- `metrics`: `score_pair` / `summarize`, pure Python, usable without files.
- `evaluate`, `compare`: predictions.jsonl + a Roboflow gold folder → scored results.
- `report`, `html`: report.json / report.md / report.html writers.

Imports no torch; heavy optional pieces (jsonschema, scipy) load only when used.
"""
