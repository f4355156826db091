"""Time `export_model` (merge + save + verification) on the built-in model sizes, on this machine.

Each case runs in a fresh Python process (so peak RSS is that case's own): build a model,
make a LoRA adapter (r=16 on the language model's linear layers, lora_B perturbed so
the merge changes outputs), export it, and record wall time, verification time, peak
resident memory and what verification measured. Writes benchmarks/results/export_cpu.json.

Usage: python benchmarks/export_speed.py [--sizes tiny small] [--vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "export_cpu.json"
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def run_case(size: str, dtype: str, vllm: bool, work: Path) -> dict:
    import resource

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract, save_contract
    from vlmocr.export.merge import ExportConfig, export_model
    from vlmocr.export.verify import VerifyConfig
    from vlmocr.models.build import build_model

    built = build_model(work / "base", size, seed=0)
    model = AutoModelForImageTextToText.from_pretrained(built.path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    best = work / "run" / "best"
    peft_model.save_pretrained(best)
    AutoProcessor.from_pretrained(built.path).save_pretrained(best)
    contract = load_contract(built.path)
    from dataclasses import replace

    save_contract(best, replace(contract, base_model=str(built.path), extra={"method": "lora"}))
    del model, peft_model
    start = time.perf_counter()
    result = export_model(work / "run", work / "export", ExportConfig(dtype=dtype, verification=VerifyConfig(vllm=vllm)))
    wall = time.perf_counter() - start
    checks = {c.name: {"status": c.status, **{k: v for k, v in c.values.items() if not isinstance(v, list)}}
              for c in result.verification.checks}
    return {
        "size": size,
        "dtype": dtype,
        "vllm_check": vllm,
        "n_parameters": result.n_parameters,
        "export_seconds": round(wall, 2),
        "verify_seconds": round(result.verify_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "weight_bytes": sum((result.path / f).stat().st_size for f in result.weight_files),
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--vllm", action="store_true", help="also run the vLLM check (bf16 cases)")
    parser.add_argument("--case", nargs=3, metavar=("SIZE", "DTYPE", "VLLM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        with tempfile.TemporaryDirectory(prefix="vlmocr-export-bench-") as tmp:
            print(json.dumps(run_case(args.case[0], args.case[1], args.case[2] == "1", Path(tmp))))
        return
    cases = []
    for size in args.sizes:
        for dtype in args.dtypes:
            vllm = args.vllm and dtype == "bf16"
            proc = subprocess.run([sys.executable, __file__, "--case", size, dtype, "1" if vllm else "0"],
                                  capture_output=True, text=True, check=True)
            cases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(cases[-1]), flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "export_model: merge + save + verification, CPU",
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                    "note": "shared development machine; other jobs ran at the same time"},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": cases,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
