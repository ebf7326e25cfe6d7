"""`datakit run` under `accelerate launch` or `torchrun`: one process per GPU runs the recipe.

Only distillation is distributed. Sampling, filtering and mixing write shared folders and must run
once: rank 0 runs them while the other ranks wait, then every rank trains, then rank 0 evaluates. The
wait is a broadcast over a gloo process group with a long timeout (sampling can take days), torn down
before training so accelerate sets up its own (NCCL) group as usual; a failure on rank 0 reaches the
waiting ranks as an error instead of a hang.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

from datakit.errors import DatakitError

WAIT = datetime.timedelta(days=7)  # how long other ranks wait for rank 0's stages


def rank_and_world() -> tuple[int, int]:
    """This process's global rank and the number of processes (0, 1 outside a launcher)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def on_rank_zero(work: Callable[[], None], what: str) -> None:
    """Run `work` on rank 0 only; the other ranks return once it has finished, or raise if it failed."""
    rank, world = rank_and_world()
    if world == 1:
        work()
        return
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=WAIT)
    status: list[str | None] = [None]
    error: BaseException | None = None
    try:
        if rank == 0:
            try:
                work()
                status = ["ok"]
            except BaseException as e:  # told to the other ranks, then raised here
                status, error = [f"{type(e).__name__}: {e}"], e
        dist.broadcast_object_list(status, src=0)
    finally:
        dist.destroy_process_group()
    if error is not None:
        raise error
    if status[0] != "ok":
        raise DatakitError(f"rank 0 failed in {what}: {status[0]}")
