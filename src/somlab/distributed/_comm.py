"""Process-group plumbing: the shard layout, collectives that work with or without a group,
and the torchrun start-up helper.

Every collective here is a no-op when ``torch.distributed`` has no default process group, so
the distributed fits run unchanged (and give the ordinary result) in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .._utils import resolve_device


def is_distributed() -> bool:
    """True when a default process group is initialised (torchrun + ``init_process_group``)."""
    return dist.is_available() and dist.is_initialized()


def init_from_env(device="cpu") -> str | None:
    """Initialise the default process group from torchrun's environment; returns the backend,
    or None in a plain ``python script.py`` (none of torchrun's variables set: one process, no
    group, and the ``fit_*`` functions are ordinary fits).

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    The backend is ``"nccl"`` when ``device`` (an estimator's ``device`` parameter, or the
    estimator itself) resolves to CUDA, else ``"gloo"``.  With NCCL each process first selects
    GPU ``LOCAL_RANK``, so ``device="cuda"`` means "this rank's GPU".  Calling it again once the
    group exists does nothing.

    Parameters
    ----------
    device : str, torch.device or estimator, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"auto"``, ...; an object with a ``device`` attribute (a somlab
        estimator) is read for it.
    """
    if is_distributed():
        return str(dist.get_backend())
    names = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [k for k in names if k not in os.environ]
    if len(missing) == len(names):
        return None  # not launched by torchrun: a single process
    if missing:
        raise RuntimeError(
            f"init_from_env needs torchrun's environment variables; {', '.join(missing)} "
            "not set (start the script with torchrun, or call "
            "torch.distributed.init_process_group yourself)"
        )
    device = getattr(device, "device", device)
    if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"  # fall back to gloo rather than fail in init_process_group
    dev = resolve_device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, init_method="env://")
    return backend


def shard_range(n_samples: int, rank: int | None = None, world_size: int | None = None) -> range:
    """Rows ``[start, stop)`` of this rank in an even contiguous split of ``n_samples`` rows.

    Ranks in order hold consecutive blocks (the first ``n_samples % world_size`` ranks one row
    more), the layout every distributed fit expects; defaults to the current rank and world.

    >>> shard_range(10, rank=1, world_size=3)
    range(4, 7)
    """
    if rank is None:
        rank = dist.get_rank() if is_distributed() else 0
    if world_size is None:
        world_size = dist.get_world_size() if is_distributed() else 1
    base, extra = divmod(int(n_samples), int(world_size))
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


@dataclass(frozen=True)
class Layout:
    """Where the global rows live: rank r holds rows ``[offsets[r], offsets[r] + sizes[r])``."""

    sizes: tuple
    rank: int

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def offset(self) -> int:
        return sum(self.sizes[: self.rank])

    def local_positions(self, ids: torch.Tensor):
        """For global row ids ``[b]``: ``(positions [c] in ids owned here, local rows [c])``."""
        lo = self.offset
        mine = (ids >= lo) & (ids < lo + self.sizes[self.rank])
        pos = torch.nonzero(mine).squeeze(1)
        return pos, ids[pos] - lo


class Comm:
    """Collectives on the default group (identity without one).

    Tensors travel on the device the backend needs (CUDA for pure NCCL, CPU for pure gloo,
    their own device for a mixed ``"cpu:gloo,cuda:nccl"`` group) and come back where they were.
    """

    def __init__(self):
        self.active = is_distributed()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        backend = str(dist.get_backend()) if self.active else ""
        self._wire = {"nccl": "cuda", "gloo": "cpu"}.get(backend)

    def _run(self, t: torch.Tensor, fn) -> torch.Tensor:
        if not self.active:
            return t
        wire = t if self._wire in (None, t.device.type) else t.to(self._wire)
        wire = wire.contiguous()
        fn(wire)
        return wire.to(t.device) if wire.device != t.device else wire

    def all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Element-wise sum, min or max of ``t`` over the ranks (a new tensor)."""
        red = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op]
        return self._run(t.clone(), lambda w: dist.all_reduce(w, op=red))

    def broadcast(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s ``t`` on every rank (a new tensor)."""
        return self._run(t.clone(), lambda w: dist.broadcast(w, src=src))

    def all_gather_object(self, obj) -> list:
        """Every rank's picklable ``obj``, in rank order."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sync_generator(self, gen: torch.Generator) -> torch.Generator:
        """Give every rank rank 0's generator state, so all ranks draw the same numbers."""
        if self.active:
            gen.set_state(self.broadcast(gen.get_state()))
        return gen

    def layout(self, n_rows: int, check: dict) -> Layout:
        """All-gather the shard sizes; ``check`` (e.g. hyper-parameters and feature count)
        must be equal on every rank, else ValueError names the first key that differs."""
        got = self.all_gather_object((int(n_rows), {k: repr(v) for k, v in check.items()}))
        for r, (_, other) in enumerate(got):
            for key, value in other.items():
                if value != got[0][1][key]:
                    raise ValueError(
                        f"{key} differs between ranks: {got[0][1][key]} on rank 0, "
                        f"{value} on rank {r}; every rank must build the same estimator"
                    )
        return Layout(tuple(n for n, _ in got), self.rank)

    def gather_rows(self, layout: Layout, ids: torch.Tensor, *columns: torch.Tensor):
        """Global rows ``ids [b]`` of the sharded columns, on every rank, in the order of ids.

        Each ``columns[i]`` is this rank's ``[n_local, c_i]`` block (one dtype); the owner of a
        row writes it into a zero buffer ``[b, sum c_i]`` and a sum all-reduce fills the rest.
        Adding zeros is exact, so the result equals indexing the concatenated data.  Returns
        one tensor per column block.
        """
        widths = [c.shape[1] for c in columns]
        ref = columns[0]
        buf = torch.zeros(ids.numel(), sum(widths), dtype=ref.dtype, device=ref.device)
        pos, rows = layout.local_positions(ids.to(ref.device))
        if pos.numel():
            buf[pos] = torch.cat([c[rows].to(ref.dtype) for c in columns], 1)
        buf = self.all_reduce(buf)
        return buf.split(widths, 1)
