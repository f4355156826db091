"""Multi-process training without code changes: torchrun / `accelerate launch` set the env.

When WORLD_SIZE > 1 (with RANK, LOCAL_RANK, MASTER_ADDR/PORT, as torchrun and accelerate
launch set them), the trainer joins a process group (NCCL on CUDA, gloo on CPU), wraps
its loss module in DistributedDataParallel, gives each rank its block of every global
batch, and lets rank 0 alone write files and run evaluation. With one process every
call here is a no-op, so the single-GPU and CPU paths are the same code.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    initialized_here: bool = False

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: Any) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                import torch

                torch.cuda.set_device(device)
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
            self.initialized_here = True
        log.info("process %d of %d (local %d) on %s", self.rank, self.world_size, self.local_rank, device)

    def close(self) -> None:
        if self.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.initialized_here = False

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, value: Any) -> Any:
        """Sum a tensor over all processes (in place on a copy)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool, device: Any) -> bool:
        if not self.enabled:
            return flag
        import torch

        return bool(self.sum(torch.tensor([int(flag)], device=device)).item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, module: Any, device: Any) -> Any:
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=False)
