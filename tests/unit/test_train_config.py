"""Training config (defaults ← YAML ← overrides), batch plans, the fallback scorer, the LR schedule.

No torch: these modules import it only inside the functions that train.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vlmocr.errors import ConfigError
from vlmocr.train.collate import BatchPlan
from vlmocr.train.config import DEFAULT_BASE_MODEL, TrainConfig, apply_overrides, dump_config, load_config
from vlmocr.train.evaluate import parse_json, score_json_fields


def test_defaults_are_the_documented_ones() -> None:
    cfg = TrainConfig()
    assert cfg.model == DEFAULT_BASE_MODEL == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert cfg.method == "lora" and cfg.data.target_format == "compact"
    assert cfg.prompt_contract().question == "extract data in JSON format"
    assert cfg.resolution_contract() is None  # the base model's contract applies
    assert cfg.loss_chunk_size > 0 and cfg.precision == "auto"


def test_yaml_then_overrides_then_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "model: runs/base\nmethod: full\nbatch_size: 8\n"
        "optim: {learning_rate: 1.0e-4, scheduler: linear}\n"
        "resolution: {min_pixels: 3136, max_pixels: 200704}\n"
        "data: {dataset: data/pallets, target_format: verbatim}\n"
    )
    cfg = load_config(path, ["optim.learning_rate=3e-5", "batch_size=2", "eval.every_steps=50",
                             "lora.target_modules=[q_proj, v_proj]"])
    assert cfg.method == "full" and cfg.batch_size == 2 and cfg.optim.learning_rate == 3e-5
    assert cfg.optim.scheduler == "linear" and cfg.eval.every_steps == 50
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.resolution_contract().max_pixels == 200704
    again = tmp_path / "resolved.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(again) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lerning_rate=1"], "optim.lerning_rate"),
        (["batchsize=2"], "batchsize"),
        (["method=dora"], "method must be one of"),
        (["batch_size=two"], "batch_size: expected an integer"),
        (["gradient_checkpointing=maybe"], "expected true/false"),
        (["data.synth={}", "max_steps=null"], "set max_steps"),
        (["data.dataset=a", "data.train_file=b"], "not ['dataset', 'train_file']"),
        (["resolution={min_pixels: 100}"], "min_pixels must be at least 784"),
        (["prompt={sytem: x}"], "unknown prompt keys"),
        (["data.target_format=pretty"], "target_format"),
        (["optim=3"], "expected a mapping"),
        (["broken"], "section.key=value"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, overrides)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_apply_overrides_does_not_touch_the_input() -> None:
    data = {"optim": {"learning_rate": 1.0}}
    out = apply_overrides(data, {"optim.learning_rate": 2.0, "data.synth.seed": 3})
    assert data == {"optim": {"learning_rate": 1.0}}
    assert out == {"optim": {"learning_rate": 2.0}, "data": {"synth": {"seed": 3}}}


def test_batch_plan_is_reproducible_and_resumable() -> None:
    plan = BatchPlan(10, 3, seed=7)
    first = [plan.micro_batch(i) for i in range(8)]
    assert first == [BatchPlan(10, 3, seed=7).micro_batch(i) for i in range(8)]
    # One epoch visits every sample once; the next epoch is a different order.
    flat = [i for b in first for i in b]
    assert sorted(flat[:10]) == list(range(10)) and flat[10:20] != flat[:10]
    # Resuming at micro-step 5 yields what an uninterrupted run yields there.
    resumed = BatchPlan(10, 3, seed=7).iter_from(5)
    assert [next(resumed) for _ in range(3)] == first[5:8]
    assert BatchPlan(10, 3, seed=8).micro_batch(0) != first[0] or BatchPlan(10, 3, seed=8).micro_batch(1) != first[1]


def test_batch_plan_ranks_split_the_global_batch() -> None:
    single = BatchPlan(None, 4, seed=0)
    ranks = [BatchPlan(None, 2, seed=0, world_size=2, rank=r) for r in (0, 1)]
    for step in range(3):
        assert ranks[0].micro_batch(step) + ranks[1].micro_batch(step) == single.micro_batch(step)
    assert single.micro_batch(2) == [8, 9, 10, 11]  # an endless stream is read in order


def test_batch_plan_groups_by_length() -> None:
    lengths = [5, 100, 7, 90, 6, 95, 8, 99]
    plan = BatchPlan(8, 2, seed=0, lengths=lengths, group_by_length=True)
    batches = [plan.micro_batch(i) for i in range(4)]
    assert sorted(i for b in batches for i in b) == list(range(8))
    spreads = [abs(lengths[a] - lengths[b]) for a, b in batches]
    assert max(spreads) <= 10  # long with long, short with short


def test_fallback_scorer() -> None:
    gold = {"route": "A1", "products": [{"cases": "4"}, {"cases": "2"}], "total": "6"}
    perfect = score_json_fields([(gold, gold)])
    assert perfect == {"json_valid": 1.0, "field_f1": 1.0, "exact_match": 1.0, "n": 1.0}
    half = score_json_fields([({"route": "A1", "products": [{"cases": "4"}], "total": "9"}, gold), (None, gold)])
    assert half["json_valid"] == 0.5 and half["exact_match"] == 0.0
    # 2 true of 3 predicted fields, 8 gold fields: P=2/3, R=2/8.
    assert half["field_f1"] == pytest.approx(2 * (2 / 3) * (2 / 8) / ((2 / 3) + (2 / 8)))
    assert parse_json(' {"a": "1"}\n') == {"a": "1"} and parse_json('{"a": ') is None


def test_lr_schedule_warmup_then_cosine() -> None:
    from vlmocr.train.trainer import _lr_lambda

    f = _lr_lambda(total=10, warmup=2, kind="cosine")
    assert [round(f(s), 3) for s in (0, 1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.0)
    assert _lr_lambda(10, 0, "linear")(5) == pytest.approx(0.5) and _lr_lambda(10, 0, "constant")(9) == 1.0


def test_lr_schedule_warm_restarts() -> None:
    """cycles=2 over 20 steps: two copies of the 10-step schedule, each warming up again and reaching zero."""
    from vlmocr.train.trainer import _lr_lambda

    one, two = _lr_lambda(10, 2, "cosine"), _lr_lambda(20, 2, "cosine", cycles=2)
    assert [two(s) for s in range(10)] == [one(s) for s in range(10)]
    assert [two(s) for s in range(10, 20)] == [one(s) for s in range(10)]
    assert two(9) < 0.05 and two(10) == pytest.approx(0.5) and two(11) == pytest.approx(1.0)
    gentle = _lr_lambda(30, 2, "cosine", cycles=3, cycle_decay=0.5)
    assert [gentle(s) for s in (1, 11, 21)] == [1.0, 0.5, 0.25]  # each cycle's peak, after its warm-up
    assert [gentle(s) for s in range(10, 20)] == [0.5 * one(s) for s in range(10)]
    with pytest.raises(ConfigError, match="optim.cycle_decay"):
        TrainConfig.from_dict({"model": "m", "data": {"dataset": "d"}, "optim": {"cycle_decay": 0}}).validate()
    with pytest.raises(ConfigError, match="optim.cycles"):
        TrainConfig.from_dict({"model": "m", "data": {"dataset": "d"}, "optim": {"cycles": 0}}).validate()


def test_train_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import vlmocr.train.config, vlmocr.train.data, vlmocr.train.collate, vlmocr.train.evaluate, "
        "vlmocr.train.trainer, vlmocr.train.checkpoint, vlmocr.cli.train, vlmocr.cli.model\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_cli_reports_config_errors_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim: {learnig_rate: 1}\n")
    result = subprocess.run([sys.executable, "-m", "vlmocr.cli.app", "train", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "optim.learnig_rate" in result.stderr


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.out.startswith("runs/") and cfg.method in ("lora", "full")


LONG = 1000  # modeling.COMPILE_MIN_BATCHES: runs this long pay back the compile


@pytest.mark.parametrize(
    ("device", "overrides", "batches", "liger_installed", "expected"),
    [
        # A long LoRA run on a CUDA GPU: compiled, so no Liger (its RMSNorm does not build under compile).
        ("cuda", {}, LONG, True, (False, True)),
        # A short one would not pay back the minute of compiling: Liger where installed.
        ("cuda", {}, LONG - 1, True, (True, False)),
        ("cuda", {}, None, True, (True, False)),
        # Gradient checkpointing was not measured compiled.
        ("cuda", {"gradient_checkpointing": True}, LONG, True, (True, False)),
        ("cuda", {"gradient_checkpointing": True}, LONG, False, (False, False)),
        # Full training and QLoRA are not compiled unless asked.
        ("cuda", {"method": "full"}, LONG, True, (True, False)),
        ("cuda", {"method": "qlora"}, LONG, False, (False, False)),
        # An explicit choice of one switch turns the other's automatic value off.
        ("cuda", {"liger": True}, LONG, True, (True, False)),
        ("cuda", {"compile": False}, LONG, True, (True, False)),
        ("cuda", {"compile": True, "method": "full"}, 10, True, (False, True)),
        # Nothing turns itself on on a CPU.
        ("cpu", {}, LONG, True, (False, False)),
        ("cpu", {"compile": True}, None, True, (False, True)),
    ],
)
def test_speed_switches_resolve_liger_and_compile(device: str, overrides: dict, batches: int | None,
                                                   liger_installed: bool, expected: tuple[bool, bool],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    from types import SimpleNamespace

    from vlmocr.train import modeling

    assert modeling.COMPILE_MIN_BATCHES == LONG
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(modeling.importlib.util, "find_spec",
                        lambda name, *a: (object() if liger_installed else None) if name == "liger_kernel"
                        else real_find_spec(name, *a))
    cfg = load_config(None, overrides)
    assert modeling.speed_switches(cfg, SimpleNamespace(type=device), batches) == expected


def test_liger_and_compile_both_on_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="liger: true and compile: true do not combine"):
        load_config(None, {"liger": True, "compile": True})
    assert load_config(None, {"liger": True, "compile": False}).liger is True
