"""What keeping a PDF open between its pages saves `vlmocr extract` on the client.

`vlmocr.pdf` keeps the last PDF it opened open for the next page while the file is unchanged. This
draws every page of one long PDF of vector text (matplotlib's PDF backend, US letter, 60 lines a page)
at the default contract's size of a 300 dpi scan, in one process on this machine, two ways, page by
page alternately so that both see the same load:

- `kept_open`: `render_page` as extract calls it (the document parsed once);
- `reopened`: the same call with the kept document closed and dropped before each page (as every page
  was drawn before: parse, draw, close);

plus `open_only`, the time to open the PDF and read its page count (what each reopened page pays on
top), and a check that both ways draw the same pixels.

    python benchmarks/bench_pdf_reopen.py [--pages 300] [--out benchmarks/results/pdf_reopen_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_pdf_inputs import summary, vector_pdf

from vlmocr.fileio import atomic_write_json, cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS / "pdf_reopen_cpu.json")
    args = parser.parse_args()

    import vlmocr.pdf as pdf_module
    from vlmocr.images import Resolution

    def drop_kept() -> None:
        with pdf_module._LOCK:
            pdf_module._drop_kept()

    resolution = Resolution()
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "long.pdf"
        lines = [[f"page {p + 1} line {i + 1}: pallet {p * 60 + i:06d} ACME FREIGHT 48 cases" for i in range(60)]
                 for p in range(args.pages)]
        vector_pdf(pdf, lines)
        size = pdf.stat().st_size
        open_s = []
        for _ in range(20):
            drop_kept()
            start = time.perf_counter()
            assert pdf_module.count_pages(pdf) == args.pages
            open_s.append(time.perf_counter() - start)
        drop_kept()
        kept_s, reopened_s, same = [], [], 0
        for page in range(1, args.pages + 1):
            start = time.perf_counter()
            kept = pdf_module.render_page(pdf, page, resolution)
            kept_s.append(time.perf_counter() - start)
            drop_kept()
            start = time.perf_counter()
            reopened = pdf_module.render_page(pdf, page, resolution)
            reopened_s.append(time.perf_counter() - start)
            same += kept.tobytes() == reopened.tobytes()
        drop_kept()

    records = [{"name": "kept_open", "size": list(kept.size), **summary(kept_s)},
               {"name": "reopened", "size": list(reopened.size), **summary(reopened_s)},
               {"name": "open_only", "ms_median": round(1000 * statistics.median(open_s), 2), "runs": len(open_s)}]
    result = {
        "name": "pdf_reopen_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": {**library_versions(), **{name: metadata.version(name) for name in ("pypdfium2", "matplotlib")}},
        "contract": resolution.to_dict(),
        "pdf": {"pages": args.pages, "bytes": size, "kind": "vector text, US letter, 60 lines a page"},
        "method": __doc__.split("\n\n")[1].strip(),
        "records": records,
        "same_pixels": f"{same} of {args.pages} pages",
        "reopened_vs_kept_median": round(records[1]["ms_per_page_median"] / records[0]["ms_per_page_median"], 2),
    }
    atomic_write_json(args.out, result)
    for record in records:
        print(record)
    print(f"reopened / kept open (median): {result['reopened_vs_kept_median']}x; same pixels: {result['same_pixels']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
