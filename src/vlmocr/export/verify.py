"""Prove an exported directory is complete and equal to what was trained.

Checks, each reported as ok / failed / skipped with its numbers:
- files: every required file, weights readable (one file or shards + index), no pickle files;
- resolution: every processor file and `vlmocr.json` carry the contract's min/max pixels;
- dtype: every floating tensor and config.json are in the requested dtype;
- tied_embeddings: tying is what the base had (tied: no lm_head tensor, one shared weight);
- processor: the exported processor turns the probe (a fixed generated image and the
  contract's prompt) into exactly the source's input ids and pixels;
- load: transformers loads the weights with no missing, unexpected or mismatched tensor;
- logits: exported logits == base+adapter logits (the reference) within the tolerance;
- changed: the exported model differs from the bare base by more than the tolerance
  (catches "merged model silently equal to the base");
- vllm: vLLM loads the directory and its greedy answer to the probe equals transformers'.

Tolerance, on the max absolute logit difference: fp32 1e-4 x max(1, max|reference|);
bf16 and fp16 5e-2 x max(1, max|reference|) (one rounding of every weight to 8 or 11
mantissa bits; the comparison runs in fp32 on the stored weights).
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vlmocr.contract import ModelContract, load_contract
from vlmocr.export import files as F
from vlmocr.images import Resolution, resize_for_model

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class VerifyConfig:
    """How strict verification is and whether vLLM takes part."""

    rtol_fp32: float = 1e-4
    rtol_half: float = 5e-2
    vllm: bool = True
    vllm_max_tokens: int = 16
    vllm_timeout_s: float = 600.0
    allow_unchanged: bool = False

    def tolerance(self, dtype: str, reference_scale: float) -> float:
        factor = self.rtol_fp32 if dtype == "fp32" else self.rtol_half
        return factor * max(1.0, reference_scale)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifyReport:
    """Every check with its outcome; `ok` when none failed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    def add(self, name: str, problems: list[str], ok_detail: str, **values: Any) -> None:
        status: Status = "failed" if problems else "ok"
        self.checks.append(Check(name, status, "; ".join(problems) if problems else ok_detail, values))

    def skip(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, "skipped", reason))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


@dataclass
class Reference:
    """What the source computes on the probe, measured before the merge."""

    inputs: Any
    logits: Any
    base_logits: Any | None
    base_skip_reason: str = ""
    tied: bool = True


def probe_image(resolution: Resolution) -> Any:
    """A fixed, generated document-like image, already sized to the resolution contract."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (448, 336), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 439, 327), outline="black", width=3)
    for i, line in enumerate(("PALLET 0042  ROUTE 17", "DOCK 3  LOAD 88", "CASES 120  LAYERS 6")):
        draw.text((24, 24 + 40 * i), line, fill="black")
    for i in range(6):
        draw.rectangle((24 + 68 * i, 200, 80 + 68 * i, 200 + 15 * (i + 1)), fill=(40 * i, 90, 200 - 30 * i))
    return resize_for_model(image, resolution)


def probe_messages(contract: ModelContract) -> list[dict[str, Any]]:
    """The contract's prompt around one image, in transformers' chat format."""
    return [
        {"role": "system", "content": contract.prompt.system},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": contract.prompt.question}]},
    ]


def probe_inputs(processor: Any, contract: ModelContract) -> Any:
    """Model inputs (input ids, pixels, grid) for the probe image and prompt."""
    text = processor.apply_chat_template(probe_messages(contract), tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[probe_image(contract.resolution)], return_tensors="pt")


def forward_logits(model: Any, inputs: Any) -> Any:
    """Float32 logits of one forward pass (CPU, no grad)."""
    import torch

    with torch.no_grad():
        return model(**inputs).logits[0].float().cpu()


def load_model(path: str | Path, dtype: str = "fp32", *, loading_info: bool = False) -> Any:
    """Load a Qwen2.5-VL-style model from safetensors only, with remote code off."""
    import torch
    from transformers import AutoModelForImageTextToText

    result = AutoModelForImageTextToText.from_pretrained(
        str(path),
        dtype=getattr(torch, F.TORCH_DTYPE_NAMES[dtype]),
        use_safetensors=True,
        trust_remote_code=False,
        output_loading_info=loading_info,
    )
    model = result[0] if loading_info else result
    model.eval()
    return result if loading_info else model


def verify_export(
    directory: Path,
    reference: Reference | None,
    *,
    contract: ModelContract,
    dtype: str,
    legacy_files: bool = True,
    config: VerifyConfig | None = None,
) -> VerifyReport:
    """Run every check on `directory` (weights compared against `reference` if given)."""
    config = config or VerifyConfig()
    directory = Path(directory)
    report = VerifyReport()
    weights = _check_static(report, directory, contract, dtype, legacy_files)
    if report.failures:
        report.skip("load", "static checks failed; the model was not loaded")
        return report
    if reference is None:
        report.skip("logits", "no reference outputs (the source model was not run)")
        return report
    _check_processor(report, directory, reference)
    info = load_model(directory, "fp32", loading_info=True)
    model, loading = info
    problems = [
        f"{k.replace('_', ' ')}: {sorted(loading[k])[:5]}"
        for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
        if loading.get(k)
    ]
    report.add("load", problems, f"{len(weights.tensors)} tensors loaded by transformers")
    _check_tying(report, model, reference.tied, weights)
    logits = forward_logits(model, reference.inputs)
    scale = float(reference.logits.abs().max())
    tol = config.tolerance(dtype, scale)
    diff = float((logits - reference.logits).abs().max()) if logits.shape == reference.logits.shape else float("inf")
    report.add(
        "logits",
        [f"max |exported - reference| = {diff:.3g} exceeds {tol:.3g}"] if not diff <= tol else [],
        f"max |exported - reference| = {diff:.3g} <= {tol:.3g} ({dtype})",
        max_abs_diff=diff, tolerance=tol, reference_scale=scale,
        top1_agreement=float((logits.argmax(-1) == reference.logits.argmax(-1)).float().mean()),
    )
    _check_changed(report, logits, reference, tol, config)
    if not config.vllm:
        report.skip("vllm", "disabled")
        return report
    from vlmocr.export import vllm_check as V

    if not V.vllm_available():
        report.skip("vllm", "vllm is not installed (pip install 'vlmocr[cpu]' or 'vlmocr[gpu]')")
        return report
    hf_ids = V.transformers_greedy(model, reference.inputs, config.vllm_max_tokens)
    eos_ids, last_logits = V.eos_token_ids(model), logits[-1].clone()
    del model, info, logits
    gc.collect()  # vLLM loads its own copy next
    V.compare_with_vllm(report, directory, hf_ids, eos_ids, reference.inputs, contract, config, last_logits)
    return report


def _check_static(
    report: VerifyReport, directory: Path, contract: ModelContract, dtype: str, legacy: bool
) -> F.WeightsInfo:
    weights = F.inspect_weights(directory)
    problems = [f"missing {name}" for name in F.missing_files(directory, legacy=legacy)]
    problems += weights.problems
    problems += [f"pickle file {name} (only safetensors are exported)" for name in F.pickle_files(directory)]
    problems += _invalid_json(directory)
    problems += _template_problems(directory)
    report.add(
        "files", problems,
        f"{len(weights.files)} weight file(s){' + index' if weights.sharded else ''}, "
        f"{len(weights.tensors)} tensors, processor/tokenizer/template present",
        weight_files=weights.files,
    )
    report.add("resolution", _resolution_problems(directory, contract.resolution),
               f"min/max pixels {contract.resolution.min_pixels}/{contract.resolution.max_pixels} everywhere")
    want = F.SAFETENSORS_DTYPES[dtype]
    found = weights.dtypes
    problems = [f"tensors stored as {sorted(found - {want})}, asked {want}"] if found - {want} else []
    model_config = _json(directory / "config.json")
    config_dtype = model_config.get("dtype") or model_config.get("torch_dtype")
    if config_dtype != F.TORCH_DTYPE_NAMES[dtype]:
        problems.append(f"config.json dtype is {config_dtype}, asked {F.TORCH_DTYPE_NAMES[dtype]}")
    report.add("dtype", problems, f"all floating tensors {want}")
    return weights


def _resolution_problems(directory: Path, resolution: Resolution) -> list[str]:
    problems = []
    want = (resolution.min_pixels, resolution.max_pixels)
    for name in ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json"):
        path = directory / name
        if not path.is_file():
            continue
        data = _json(path)
        blocks = [data] if name != "processor_config.json" else [
            data[k] for k in ("image_processor", "video_processor") if isinstance(data.get(k), dict)
        ]
        for block in blocks:
            size = block.get("size") or {}
            got = (size.get("shortest_edge", block.get("min_pixels")), size.get("longest_edge", block.get("max_pixels")))
            legacy = (block.get("min_pixels", got[0]), block.get("max_pixels", got[1]))
            if got != want or legacy != want:
                problems.append(f"{name}: min/max pixels {got}, contract says {want}")
    try:
        stored = load_contract(directory)
    except Exception as exc:  # a malformed vlmocr.json
        return [*problems, f"vlmocr.json: {exc}"]
    if stored.resolution != resolution:
        problems.append(f"vlmocr.json resolution {stored.resolution} != {resolution}")
    return problems


def _check_processor(report: VerifyReport, directory: Path, reference: Reference) -> None:
    """The exported processor and exported prompt contract must build the source's exact inputs."""
    import torch
    from transformers import AutoProcessor

    try:
        contract = load_contract(directory)
        processor = AutoProcessor.from_pretrained(str(directory), trust_remote_code=False)
        got = probe_inputs(processor, contract)
    except Exception as exc:  # whatever the loader raises, it is this check's finding
        report.add("processor", [f"the exported processor cannot build the probe: {exc}"], "")
        return
    problems = []
    for key in sorted(set(reference.inputs) | set(got)):
        a, b = reference.inputs.get(key), got.get(key)
        if a is None or b is None or a.shape != b.shape or not torch.equal(a, b):
            problems.append(f"{key} differs from the source processor's")
    report.add("processor", problems, f"same {len(reference.inputs['input_ids'][0])} input ids and pixels as the source")


def _check_tying(report: VerifyReport, model: Any, tied: bool, weights: F.WeightsInfo) -> None:
    config = model.config
    flag = bool(getattr(config, "tie_word_embeddings", False))
    problems = [f"config says tie_word_embeddings={flag}, base had {tied}"] if flag != tied else []
    head = model.get_output_embeddings().weight
    emb = model.get_input_embeddings().weight
    shared = head.data_ptr() == emb.data_ptr()
    if tied and not shared:
        problems.append("lm_head and embed_tokens are separate tensors after loading")
    if tied and any(k.endswith("lm_head.weight") for k in weights.tensors):
        problems.append("an lm_head tensor was saved although the embeddings are tied")
    if not tied and shared:
        problems.append("lm_head shares the input embeddings although the base had separate ones")
    report.add("tied_embeddings", problems, f"tie_word_embeddings={flag}, as in the base")


def _check_changed(report: VerifyReport, logits: Any, reference: Reference, tol: float, config: VerifyConfig) -> None:
    """The export must differ from the bare base by more than the export tolerance.

    When it does not, the message says whether the adapter itself is a no-op (its fp32
    effect is within fp32 noise: untrained, or zero weights saved) or whether its effect
    was lost in the dtype's rounding.
    """
    if reference.base_logits is None:
        report.skip("changed", reference.base_skip_reason or "no base model to compare with")
        return
    diff = float((logits - reference.base_logits).abs().max())
    effect = float((reference.logits - reference.base_logits).abs().max())
    values = {"max_abs_diff": diff, "adapter_effect": effect, "tolerance": tol}
    if diff > tol:
        report.add("changed", [], f"max |exported - base| = {diff:.3g} > {tol:.3g}", **values)
        return
    noise = config.tolerance("fp32", float(reference.logits.abs().max()))
    why = (
        f"the trained weights themselves change nothing (source vs base: {effect:.3g} <= {noise:.3g}); "
        "was the run trained and saved?"
        if effect <= noise
        else f"the trained change ({effect:.3g}) is lost below this dtype's tolerance; export in fp32"
    )
    if config.allow_unchanged:
        report.checks.append(Check("changed", "skipped", f"equal to the base ({why}); allowed", values))
        return
    report.add("changed", [f"exported model equals the base (max diff {diff:.3g} <= {tol:.3g}): {why} "
                           "(pass --allow-unchanged to export it anyway)"], "", **values)


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing or invalid (the files check reports it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _template_problems(directory: Path) -> list[str]:
    """chat_template.json (read first by transformers processors) must equal chat_template.jinja."""
    legacy, raw = directory / "chat_template.json", directory / "chat_template.jinja"
    if legacy.is_file() and raw.is_file() and _json(legacy).get("chat_template") != raw.read_text(encoding="utf-8"):
        return ["chat_template.json and chat_template.jinja hold different templates"]
    return []


def _invalid_json(directory: Path) -> list[str]:
    problems = []
    for path in sorted(directory.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path.name} is not valid JSON ({exc})")
    return problems
