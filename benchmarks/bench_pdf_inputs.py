"""What a PDF page costs `vlmocr extract` on the client, next to the same page as an image file.

For N synthetic manifest pages (`vlmocr data synth`, 768x768 JPEG) this times, per page, in one
process on this machine:

- `image`: the JPEG read, decoded and sized for the model (`load_for_model`, as extract does);
- `pdf_raster`: the same pages as one PDF of images (Pillow, 300 dpi), each page drawn by PDFium;
- `pdf_vector`: US-letter pages of vector text (matplotlib's PDF backend: the page's lines as text),
  each drawn by PDFium at the default contract's size of a 300 dpi scan (868x1120);

and, for the first two, the model-size images compared pixel by pixel (mean absolute difference in
0-255 levels): how close a PDF page comes to the image it was made of. With `--extract MODEL` (e.g.
`builtin`) the JPEGs and the raster PDF's pages are also extracted in one `vlmocr extract --offline` run
and both scored against the pages' gold (`vlmocr eval`): JSON valid, field F1, and how many answers are
the same.

    python benchmarks/bench_pdf_inputs.py [--n 48] [--extract builtin] [--out benchmarks/results/pdf_inputs_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def vector_pdf(path: Path, pages: list[list[str]]) -> None:
    """Letter-size pages of text lines, drawn as PDF text by matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    with PdfPages(path) as pdf:
        for lines in pages:
            fig = Figure(figsize=(8.5, 11))
            for i, line in enumerate(lines[:60]):
                fig.text(0.06, 0.95 - i * 0.015, line, family="DejaVu Sans Mono", fontsize=9)
            pdf.savefig(fig)


def timed(fn, items) -> tuple[list[float], list]:
    seconds, outputs = [], []
    for item in items:
        start = time.perf_counter()
        outputs.append(fn(item))
        seconds.append(time.perf_counter() - start)
    return seconds, outputs


def summary(seconds: list[float]) -> dict[str, float]:
    return {"pages": len(seconds), "ms_per_page_median": round(1000 * statistics.median(seconds), 2),
            "ms_per_page_mean": round(1000 * statistics.fmean(seconds), 2), "pages_per_s": round(len(seconds) / sum(seconds), 1)}


def extract_and_score(model: str, work: Path, jpegs: list[Path], pdf: Path) -> dict:
    """Both inputs through one `vlmocr extract --offline` run, each scored against the pages' gold."""
    from vlmocr.eval.evaluate import EvalConfig, evaluate

    pred = work / "pred.jsonl"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vlmocr.cli.app", "extract", str(jpegs[0].parent), str(pdf),
                    "--offline", model, "--out", str(pred)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    by_file = {row["file"]: row for row in rows}
    image_rows = [by_file[str(path)] for path in jpegs]
    pdf_rows = [by_file[f"{pdf}#page={i + 1}"] for i in range(len(jpegs))]
    out = {"seconds": round(seconds, 1), "same_answer": sum(a["json"] == b["json"] for a, b in zip(image_rows, pdf_rows)),
           "same_prompt_tokens": sum(a["prompt_tokens"] == b["prompt_tokens"] for a, b in zip(image_rows, pdf_rows))}
    for name, chosen in (("image", image_rows), ("pdf_raster", pdf_rows)):
        path = work / f"pred-{name}.jsonl"
        path.write_text("".join(json.dumps({**row, "file": str(jpeg)}) + "\n" for row, jpeg in zip(chosen, jpegs)))
        scored = evaluate(path, work / "data", None, EvalConfig()).summary
        out[name] = {"n": scored.n, "json_valid": round(scored.json_valid, 4), "field_f1": round(scored.field_f1, 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--layouts", default="form,two_column,receipt,dense", help="synth layouts of the pages")
    parser.add_argument("--extract", default=None, help="also extract both with this model (--offline) and score them")
    parser.add_argument("--out", type=Path, default=RESULTS / "pdf_inputs_cpu.json")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from vlmocr.client.inputs import discover_images, load_for_model
    from vlmocr.images import Resolution

    resolution = Resolution()  # the default contract (the built-in model's too)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "vlmocr.cli.app", "data", "synth", "--out", str(work / "data"),
                        "--test", str(args.n), "--seed", str(args.seed), "--layouts", args.layouts,
                        "--augment", "light", "--workers", "1"],
                       check=True, capture_output=True)
        jpegs = sorted((work / "data" / "test").glob("*.jpg"))
        rows = [json.loads(line) for line in (work / "data" / "test" / "annotations.jsonl").read_text().splitlines()]
        pages = [Image.open(p).convert("RGB") for p in jpegs]
        raster = work / "raster.pdf"
        pages[0].save(raster, save_all=True, append_images=pages[1:], resolution=300)
        vector = work / "vector.pdf"
        text_pages = [[f"{k}: {v}" for k, v in json.loads(r["suffix"]).items() if isinstance(v, str)]
                      + [json.dumps(p) for p in json.loads(r["suffix"]).get("products", [])] for r in rows]
        vector_pdf(vector, text_pages)

        def load(path: Path) -> Image.Image:
            return load_for_model(path, resolution)

        image_s, image_out = timed(load, jpegs)
        raster_s, raster_out = timed(load, discover_images([raster]))
        vector_s, vector_out = timed(load, discover_images([vector]))
        diffs = [float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())
                 for a, b in zip(image_out, raster_out, strict=True)]
        scores = extract_and_score(args.extract, work, jpegs, raster) if args.extract else None

    result = {
        "name": "pdf_inputs_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": {**library_versions(), **{name: metadata.version(name) for name in ("pypdfium2", "matplotlib")}},
        "contract": resolution.to_dict(),
        "pages": {"n": args.n, "seed": args.seed, "layouts": args.layouts.split(","), "augment": "light"},
        "method": __doc__.split("\n\n")[1].strip(),
        "records": [
            {"name": "image", "size": list(image_out[0].size), **summary(image_s)},
            {"name": "pdf_raster", "size": list(raster_out[0].size), **summary(raster_s),
             "mean_abs_diff_to_image": round(statistics.fmean(diffs), 3),
             "max_page_mean_abs_diff": round(max(diffs), 3)},
            {"name": "pdf_vector", "size": list(vector_out[0].size), **summary(vector_s)},
        ],
    }
    if scores is not None:
        result["extraction"] = {"model": args.extract, **scores}
    base = result["records"][0]["ms_per_page_median"]
    for record in result["records"]:
        record["median_vs_image"] = round(record["ms_per_page_median"] / base, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for record in result["records"]:
        print(record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
