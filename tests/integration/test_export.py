"""Export on the tiny model: a LoRA adapter made with PEFT, merged, reloaded and compared.

The adapter is built directly (get_peft_model on the language model's linear layers,
lora_B perturbed so the merge changes outputs) and saved as a run's `best/`, the way
`vlmocr train` writes it. Expected values come from PEFT and transformers here, not
from the export code under test.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from vlmocr.contract import load_contract, save_contract
from vlmocr.errors import ExportError
from vlmocr.export.files import LEGACY_FILES, REQUIRED_FILES
from vlmocr.export.merge import ExportConfig, ExportResult, export_model, verify_model
from vlmocr.export.verify import VerifyConfig

#: The language model's linear layers (the vision tower's MLP has gate/up/down_proj too).
LM_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
NO_VLLM = VerifyConfig(vllm=False)


def make_run(base: Path, run: Path, *, scale: float = 0.05, method: str = "lora", seed: int = 1) -> Path:
    """A run folder whose best/ is a PEFT LoRA adapter on `base` with lora_B ~ N(0, scale)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=LM_TARGETS))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    peft_model.save_pretrained(run / "best")
    AutoProcessor.from_pretrained(base).save_pretrained(run / "best")
    contract = replace(load_contract(base), base_model=str(base), extra={"method": method})
    save_contract(run / "best", contract)
    save_contract(run, contract)
    return run


def probe(model_dir: Path):
    """Inputs built with transformers' own processor (independent of the export's probe)."""
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "extract"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    image = Image.new("RGB", (140, 112), (200, 30, 60))
    return processor(text=[text], images=[image], return_tensors="pt")


def logits_of(model, inputs):
    import torch

    with torch.no_grad():
        return model(**inputs).logits.float()


@pytest.fixture(scope="module")
def lora_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tiny_model, tmp_path_factory.mktemp("runs") / "lora")


@pytest.fixture(scope="module")
def exported(lora_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("exports") / "fp32"
    return export_model(lora_run, out, ExportConfig(dtype="fp32", shard_size="2MB", verification=NO_VLLM))


def test_lora_export_equals_base_plus_adapter(exported: ExportResult, lora_run: Path, tiny_model: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    inputs = probe(exported.path)
    merged = AutoModelForImageTextToText.from_pretrained(exported.path, dtype=torch.float32).eval()
    base = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    base_logits = logits_of(base, inputs)
    reference = PeftModel.from_pretrained(base, lora_run / "best").eval()
    got, want = logits_of(merged, inputs), logits_of(reference, inputs)
    assert (got - want).abs().max() <= 1e-4
    assert (got - base_logits).abs().max() > 1e-2  # the merge really changed the model
    assert merged.get_output_embeddings().weight.data_ptr() == merged.get_input_embeddings().weight.data_ptr()
    assert exported.kind == "lora" and exported.method == "lora"
    assert exported.verification is not None and exported.verification.ok
    statuses = {c.name: c.status for c in exported.verification.checks}
    assert statuses.pop("vllm") == "skipped"
    assert set(statuses.values()) == {"ok"}, statuses


def test_file_set_is_complete_and_carries_the_contract(exported: ExportResult, tiny_model: Path) -> None:
    out = exported.path
    names = {p.name for p in out.iterdir()}
    assert set(REQUIRED_FILES) | set(LEGACY_FILES) | {"model.safetensors.index.json", "export_report.json"} <= names
    assert len(exported.weight_files) > 1 and "model.safetensors" not in names  # sharded at 2MB
    assert not [n for n in names if n.endswith((".bin", ".pt")) or n.startswith(".")]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(exported.weight_files)
    contract, base_contract = load_contract(out), load_contract(tiny_model)
    assert contract.resolution == base_contract.resolution and contract.prompt == base_contract.prompt
    stored = json.loads((out / "vlmocr.json").read_text())
    assert stored["base_model"] == str(tiny_model) and stored["extra"]["method"] == "lora"
    assert {"transformers", "peft", "torch"} <= set(stored["provenance"]["libraries"])
    pre = json.loads((out / "preprocessor_config.json").read_text())
    res = base_contract.resolution
    assert (pre["min_pixels"], pre["max_pixels"]) == (res.min_pixels, res.max_pixels)
    assert pre["size"] == {"shortest_edge": res.min_pixels, "longest_edge": res.max_pixels}
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "float32"
    template = (out / "chat_template.jinja").read_text()
    assert json.loads((out / "chat_template.json").read_text())["chat_template"] == template
    report = json.loads((out / "export_report.json").read_text())
    assert report["verification"]["ok"] and report["config"]["dtype"] == "fp32"


def test_exported_processor_and_tokenizer_match_the_base(exported: ExportResult, tiny_model: Path) -> None:
    import torch

    a, b = probe(exported.path), probe(tiny_model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from transformers import AutoTokenizer

    text = '{"route":"17","dock":"3"} <|im_start|>user'
    assert AutoTokenizer.from_pretrained(exported.path)(text).input_ids == AutoTokenizer.from_pretrained(tiny_model)(text).input_ids


def test_bf16_export_is_bf16_and_within_tolerance(lora_run: Path, tmp_path: Path) -> None:
    from vlmocr.export.files import inspect_weights

    result = export_model(lora_run, tmp_path / "bf16", ExportConfig(dtype="bf16", verification=NO_VLLM))
    assert inspect_weights(result.path).dtypes == {"BF16"}
    assert result.weight_files == ["model.safetensors"]
    checks = {c.name: c for c in result.verification.checks}
    logits = checks["logits"].values
    assert 0 < logits["max_abs_diff"] <= logits["tolerance"]  # rounded, but within the bf16 bound
    assert checks["changed"].status == "ok"


def _copy(result: ExportResult, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(result.path, target)
    return target


def test_corrupted_tensor_is_caught(exported: ExportResult, lora_run: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    copy = _copy(exported, tmp_path)
    index = json.loads((copy / "model.safetensors.index.json").read_text())["weight_map"]
    name = next(k for k in index if "layers.1.mlp.down_proj" in k)
    shard = copy / index[name]
    tensors = load_file(shard)
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, shard, metadata={"format": "pt"})
    report = verify_model(copy, lora_run, ExportConfig(verification=NO_VLLM))
    failed = {c.name for c in report.failures}
    assert failed == {"logits"}, report.to_dict()


@pytest.mark.parametrize("victim", ["tokenizer.json", "chat_template.jinja", "preprocessor_config.json", "shard"])
def test_deleted_file_is_caught(exported: ExportResult, lora_run: Path, tmp_path: Path, victim: str) -> None:
    copy = _copy(exported, tmp_path)
    name = exported.weight_files[-1] if victim == "shard" else victim
    (copy / name).unlink()
    report = verify_model(copy, lora_run, ExportConfig(verification=NO_VLLM))
    files = next(c for c in report.checks if c.name == "files")
    assert files.status == "failed" and name in files.detail
    assert not report.ok


def test_changed_resolution_is_caught(exported: ExportResult, lora_run: Path, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    pre = json.loads((copy / "preprocessor_config.json").read_text())
    pre["max_pixels"] = pre["size"]["longest_edge"] = 12_845_056
    (copy / "preprocessor_config.json").write_text(json.dumps(pre))
    report = verify_model(copy, lora_run, ExportConfig(verification=NO_VLLM))
    assert {c.name for c in report.failures} == {"resolution"}


def test_changed_prompt_contract_is_caught(exported: ExportResult, lora_run: Path, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    stored = json.loads((copy / "vlmocr.json").read_text())
    stored["prompt"]["question"] = "describe the picture"
    (copy / "vlmocr.json").write_text(json.dumps(stored))
    report = verify_model(copy, lora_run, ExportConfig(verification=NO_VLLM))
    assert {c.name for c in report.failures} == {"processor"}


def test_diverging_chat_template_copies_are_caught(exported: ExportResult, lora_run: Path, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    (copy / "chat_template.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    report = verify_model(copy, lora_run, ExportConfig(verification=NO_VLLM))
    failed = {c.name: c.detail for c in report.failures}
    assert "chat_template.json" in failed["files"]


def test_adapter_equal_to_base_fails_and_leaves_no_directory(tiny_model: Path, tmp_path: Path) -> None:
    run = make_run(tiny_model, tmp_path / "untrained", scale=0.0)
    out = tmp_path / "exports" / "model"
    with pytest.raises(ExportError, match="equals the base"):
        export_model(run, out, ExportConfig(dtype="fp32", verification=NO_VLLM))
    assert not out.exists() and list((tmp_path / "exports").iterdir()) == []
    allowed = replace(NO_VLLM, allow_unchanged=True)
    result = export_model(run, out, ExportConfig(dtype="fp32", verification=allowed))
    assert {c.name: c.status for c in result.verification.checks}["changed"] == "skipped"


@pytest.mark.filterwarnings("ignore:Found missing adapter keys")
def test_adapter_that_matches_no_module_is_refused(lora_run: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "renamed"
    shutil.copytree(lora_run / "best", bad)
    tensors = load_file(bad / "adapter_model.safetensors")
    save_file({k.replace("language_model", "lm"): v for k, v in tensors.items()}, bad / "adapter_model.safetensors")
    with pytest.raises(ExportError, match="match no module"):
        export_model(bad, tmp_path / "out", ExportConfig(dtype="fp32", verification=NO_VLLM))
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_unless_overwrite(exported: ExportResult, lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_model(lora_run, out, ExportConfig(dtype="fp32", verification=NO_VLLM))
    assert (out / "keep.txt").read_text() == "mine"
    export_model(lora_run, out, ExportConfig(dtype="fp32", verify=False, overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_full_finetune_is_resaved_and_compared_with_its_base(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    final = tmp_path / "run" / "final"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(1.3)
    model.save_pretrained(final)
    AutoProcessor.from_pretrained(tiny_model).save_pretrained(final)
    save_contract(final, replace(load_contract(tiny_model), base_model=str(tiny_model), extra={"method": "full"}))
    result = export_model(tmp_path / "run", tmp_path / "out", ExportConfig(dtype="fp32", verification=NO_VLLM))
    checks = {c.name: c.status for c in result.verification.checks}
    assert result.kind == "full" and checks["logits"] == checks["changed"] == checks["tied_embeddings"] == "ok"
    reloaded = AutoModelForImageTextToText.from_pretrained(result.path, dtype=torch.float32)
    assert torch.equal(reloaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_cli_exports_and_reports(lora_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vlmocr.cli.app import app

    out = tmp_path / "cli"
    args = ["export", str(lora_run), "--out", str(out), "--dtype", "fp32", "--no-vllm-check", "--shard-size", "3MB"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and "logits" in result.output
    assert (out / "model.safetensors.index.json").is_file()
    bad = CliRunner().invoke(app, ["export", str(lora_run), "--out", str(tmp_path / "x"), "--dtype", "int4"])
    assert bad.exit_code == 2 and "dtype" in bad.output and not (tmp_path / "x").exists()


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serves_the_export_with_transformers_greedy_output(lora_run: Path, tmp_path: Path) -> None:
    result = export_model(lora_run, tmp_path / "served", ExportConfig(dtype="bf16"))
    check = next(c for c in result.verification.checks if c.name == "vllm")
    assert check.status == "ok", check.detail
    assert check.values["vllm_tokens"] == check.values["transformers_tokens"]
    assert len(check.values["transformers_tokens"]) > 0
    assert check.values["first_token_logprob_max_abs_diff"] < 1e-2
