"""Synthetic pallet manifests with exact JSON ground truth (the `vlmocr data synth` stage).

    from vlmocr.data.synth import SynthConfig, iter_samples, generate_dataset, LAYOUTS

- `iter_samples(config, split="train")`: an endless, deterministic stream of
  `SynthSample(image, target, doc_id, layout, ...)` for trainers (no files).
- `sample_at(config, split, i)`: the i-th sample of that stream alone (random access).
- `generate_dataset(out, train, valid, test, config)`: a Roboflow-format dataset that
  `vlmocr data check` accepts, split by document, written atomically.

Modules: content.py (values), layouts.py + forms.py + lists.py (rendering), canvas.py
(measured text placement), augment.py (photo-like augmentation), fonts.py (matplotlib's
DejaVu/STIX fonts), generate.py (streams and datasets), sheet.py (contact sheets).
"""

from __future__ import annotations

from vlmocr.data.synth.augment import LEVELS
from vlmocr.data.synth.config import SynthConfig
from vlmocr.data.synth.generate import (
    SynthReport,
    SynthSample,
    document_samples,
    generate_dataset,
    iter_samples,
    render_document,
    sample_at,
)
from vlmocr.data.synth.layouts import LAYOUTS

__all__ = [
    "LAYOUTS",
    "LEVELS",
    "SynthConfig",
    "SynthReport",
    "SynthSample",
    "document_samples",
    "generate_dataset",
    "iter_samples",
    "render_document",
    "sample_at",
]
