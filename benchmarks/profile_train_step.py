"""Where a `vlmocr train` step spends its time: torch.profiler over a few steps of the real path.

Loads the model, data and loss exactly as `vlmocr train` does (same config file and --set
overrides), runs warm-up steps, then profiles `--steps` optimizer steps and prints: wall time
per step, the GPU's busy time per step (sum of kernel times) and so its idle share, the
number of kernel launches, and the top operators by GPU time and by CPU time.

  python benchmarks/profile_train_step.py CONFIG --set model=M --set data.dataset=D --out prof.txt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from vlmocr.train.collate import BatchPlan, SampleEncoder, make_loader
    from vlmocr.train.config import load_config, parse_override
    from vlmocr.train.data import load_data
    from vlmocr.train.modeling import load_for_training, load_processor, make_loss_model, resolve_device

    cfg = load_config(args.config, {".".join(k): v for k, v in map(parse_override, args.sets)})
    device = resolve_device(cfg.device)
    processor, resolution = load_processor(cfg)
    data = load_data(cfg.data, cfg.prompt_contract() if cfg.prompt else None, want_valid=False)
    encoder = SampleEncoder(processor, resolution, cfg.max_length)
    loaded = load_for_training(cfg, processor, resolution, device=device)
    loss_model = make_loss_model(loaded.model, cfg.loss_chunk_size)
    params = [p for p in loaded.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda" or None)
    plan = BatchPlan(data.train.size, cfg.batch_size, seed=0)
    batches = iter(make_loader(data.train, encoder, plan, 0, num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda"))
    autocast = torch.autocast(device.type, dtype=loaded.autocast_dtype) if loaded.autocast_dtype else None

    def step() -> None:
        mb = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        if autocast is not None:
            with autocast:
                part, n = loss_model(**mb)
        else:
            part, n = loss_model(**mb)
        (part / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        wall = (time.perf_counter() - start) / args.steps
    events = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if device.type != "cuda":  # CPU: report operator times only
        kernels = []
    busy = sum(e.device_time for e in kernels) / 1e6 / args.steps  # µs → s
    summary = {"config": str(args.config), "overrides": args.sets, "batch_size": cfg.batch_size,
               "vision_attention": loaded.vision_attention, "wall_s_per_step": wall,
               "gpu_busy_s_per_step": busy, "gpu_idle_share": max(0.0, 1 - busy / wall),
               "kernel_launches_per_step": len(kernels) / args.steps}
    text = [json.dumps(summary, indent=2),
            events.table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60),
            events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60)]
    args.out.write_text("\n\n".join(text) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
