"""How fast a model trained from scratch memorizes 16 digit pages, per pixel normalization.

The pages, config and schedule are those of
tests/integration/test_train.py::test_a_model_trained_from_scratch_learns_from_its_images
(16 pages, one 80 px digit each, full training, batch 16, lr 1e-3 constant after 10 warm-up
steps, one torch thread), run for 200 steps with a tiny model built with each normalization.
The same question for every page, so the loss falls below chance only through the image.

    python benchmarks/probe_memorize_cpu.py

Writes the `memorize16` record of benchmarks/results/builtin_reading_probe_cpu.json.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "builtin_reading_probe_cpu.json"


def curve(norm: str, work: Path) -> tuple[dict[str, float], float]:
    from tests.integration.test_train import config, digit_pages, load_tokenizer, losses
    from vlmocr.models.build import build_model
    from vlmocr.train.trainer import train

    build_model(work / "model", "tiny", pixel_norm=norm)
    digit_pages(work / "data" / "train", 16)
    train(config(work / "model", work / "run", method="full", batch_size=16, max_steps=200, log_every=10,
                 data={"dataset": str(work / "data"), "target_format": "verbatim"},
                 **{"optim.learning_rate": 1e-3, "optim.warmup_steps": 10, "optim.scheduler": "constant",
                    "max_length": 256}))
    tokens = len(load_tokenizer(work / "model")(json.dumps({"code": "7"}), add_special_tokens=False).input_ids) + 1
    return {str(k): round(v, 3) for k, v in losses(work / "run").items()}, math.log(10) / tokens


def main() -> None:
    import torch

    sys.path.insert(0, str(REPO))
    torch.set_num_threads(1)
    by_norm, chance = {}, None
    for norm in ("clip", "documents"):
        with tempfile.TemporaryDirectory(prefix="vlmocr-memorize-") as tmp:
            by_norm[norm], chance = curve(norm, Path(tmp))
        print(norm, by_norm[norm], flush=True)
    record = {"name": "memorize16",
              "what": "16 fixed pages, one 80 px digit each (tests/integration/test_train.py digit_pages), tiny "
                      "model built with each normalization, full training, batch 16, lr 1e-3 constant after 10 "
                      "warm-up steps, one torch thread; loss logged every 10 steps (benchmarks/probe_memorize_cpu.py)",
              "chance_loss": round(chance, 4), "loss_by_step": by_norm}
    data = json.loads(RESULT.read_text())
    data["records"] = [r for r in data["records"] if r.get("name") != "memorize16"] + [record]
    RESULT.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
