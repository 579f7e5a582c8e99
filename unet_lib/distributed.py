"""Training on several processes: the few helpers around PyTorch's DistributedDataParallel (DDP)
that ``fit`` and the command line use under torchrun, and ``launch_local`` to start ranks here.

B, C, H, W = batch, channels, height, width.

``torchrun --standalone --nproc_per_node=N -m unet_lib.train --images DIR --masks DIR --out M.pt``
starts N copies of the command line; ``init_from_env`` joins them into one process group, and
``fit`` notices the group (``world()``) and trains with DDP: each process (a *rank*) takes its
own part of every epoch's samples (``DistributedSampler``), DDP averages the gradients over the
ranks after every backward pass, and every rank takes the same optimizer step, so the weights
stay identical everywhere. This module holds only the few helpers around torch's own pieces;
the distribution itself is torch's.

* ``world() -> (rank, world_size)``: (0, 1) without a process group; ``env_world_size()``: the
  number of processes torchrun started (1 without torchrun).
* ``init_from_env(device) -> torch.device``: the process group from torchrun's environment
  (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), NCCL for CUDA
  (this process's GPU: ``cuda:LOCAL_RANK``), gloo for the CPU. ``close()`` ends it; ``barrier()``
  waits for all ranks.
* ``rank_seed(seed, rank)``: a seed of its own for each rank's random draws (rank 0: ``seed``).
* ``sum_over_ranks(values)``, ``any_rank(flag)``, ``broadcast_buffers(model)``: the collectives
  that ``fit`` needs beyond DDP's.
* ``sync_batch_norm(model, device)``: a context in which the BatchNorm layers are torch's
  ``SyncBatchNorm`` (statistics over the batches of all ranks), the original layers restored after.
* ``launch_local(script, nproc)``: run a script on ``nproc`` CPU processes of this machine as
  torchrun would (one thread each), with a time limit; notebook 12 trains on two ranks with it.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .validate import check_int, check_number, check_seed

__all__ = ["world", "env_world_size", "init_from_env", "close", "barrier", "rank_seed", "sum_over_ranks", "any_rank",
           "broadcast_buffers", "sync_batch_norm", "launch_local"]


def world() -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) without a process group (``python -m``, not torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer; torchrun sets it "
                         f"(start this command with torchrun, or unset {name})") from None


def env_world_size() -> int:
    """The ``WORLD_SIZE`` that torchrun set (1 when it is not set: one process)."""
    return _env_int("WORLD_SIZE", 1)


def init_from_env(device: str | torch.device | None = None) -> torch.device:
    """Join the process group that torchrun describes in the environment; returns this process's
    device. ``device``: None (CUDA when present, else the CPU), "cpu", or "cuda" (each process takes
    the GPU of its ``LOCAL_RANK``). The backend follows the device: NCCL on CUDA, gloo on the CPU.
    """
    local_rank = _env_int("LOCAL_RANK", 0)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        if device.index is not None and device.index != local_rank:
            raise ValueError(f"device={str(device)!r} under torchrun: each process uses the GPU of its local rank "
                             f"(this one: cuda:{local_rank}); pass 'cuda' without an index")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank}, but torch sees {torch.cuda.device_count()} GPU(s) here; "
                             f"start at most that many processes per machine (--nproc_per_node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)   # NCCL's collectives run on the current device
    elif device.type != "cpu":
        raise ValueError(f"device={str(device)!r}: distributed training runs on 'cpu' (gloo) or 'cuda' (NCCL)")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return device


def close() -> None:
    """Leave the process group (a no-op without one), so that the processes exit cleanly."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (a no-op without a process group)."""
    if world()[1] > 1:
        dist.barrier()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random draws: ``seed`` itself on rank 0 (one process draws what
    rank 0 draws), a seed derived from (seed, rank) on the others.

    Why: ``Augmented`` and ``ImageFolder`` draw access k of sample i from (seed, i, k), counting
    accesses in each process. Over the epochs a sample goes to different ranks, and each rank
    counts from 0: with one seed, rank 1 would repeat the augmentation that rank 0 drew for that
    sample an epoch earlier."""
    seed = check_seed("seed", seed)
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0])


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """The element-wise sum of ``values`` over all ranks (float64: counts up to 2**53 stay exact);
    ``values`` itself without a process group. Every rank must call it with as many values."""
    if world()[1] == 1:
        return [float(v) for v in values]
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any: a decision that ends a loop (a time
    budget, early stopping) must be taken by all ranks at once, or the others wait forever."""
    return sum_over_ranks([float(bool(flag))])[0] > 0


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm's running statistics) to every rank. Without
    ``SyncBatchNorm`` (on the CPU) each rank updates them from its own batches; after this every
    rank holds the network that rank 0 will save, and validates that one."""
    if world()[1] == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


@contextlib.contextmanager
def sync_batch_norm(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Within the block, ``model``'s BatchNorm layers are ``torch.nn.SyncBatchNorm`` layers that
    share their weights and running statistics (the same tensors), so each normalises with the
    mean and variance of the whole global batch; afterwards the original layers are back, and a
    checkpoint holds the keys of a single-process model.

    On the CPU torch has no SyncBatchNorm kernels: the model is left as it is, and each rank
    normalises with its own batch's statistics (what DDP does without SyncBatchNorm).
    """
    convertible = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    originals = [(parent, name, child) for parent in model.modules()
                 for name, child in parent.named_children() if isinstance(child, convertible)]
    # the conversion itself needs no process group (a test without a GPU checks the swap and the
    # restoration with device "cuda"); fit enters this block only when it trains on several ranks
    if device.type != "cuda" or not originals:
        yield model
        return
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # replaces the children in place
    try:
        yield converted
    finally:
        for parent, name, child in originals:
            setattr(parent, name, child)


def _free_port() -> int:
    """A TCP port that is free now on this machine (the system picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(script: str | Path, nproc: int = 2, args: Sequence[str] = (), timeout: float = 120.0) -> list[str]:
    """Run ``script`` on ``nproc`` CPU processes of this machine, joined as torchrun joins them, and
    return what each printed (stdout and stderr together; rank r's at index r).

    ``python script ARGS`` starts ``nproc`` times with torchrun's environment (``RANK`` and
    ``LOCAL_RANK`` = r, ``WORLD_SIZE`` = ``LOCAL_WORLD_SIZE`` = nproc, ``MASTER_ADDR`` =
    127.0.0.1, ``MASTER_PORT`` a free port), so the same script runs unchanged under
    ``torchrun --standalone --nproc_per_node=NPROC script ARGS``; it joins the group itself
    (``init_from_env("cpu")``: gloo). Without torchrun's own process, one import of torch fewer.
    Each process gets ``OMP_NUM_THREADS=1`` (the processes share the cores, and their results do
    not depend on the thread count) and this process's import path (``sys.path``) ahead of its own,
    so that it imports the same ``unet_lib``, from a checkout or an installed wheel.

    Raises ``TimeoutError`` when the processes have not finished after ``timeout`` seconds (a rank
    left waiting for a collective that another never reaches) and ``RuntimeError`` with the end
    of its output when a process fails; either way no process is left behind.
    """
    script = Path(script)
    if not script.is_file():
        raise ValueError(f"script={str(script)!r} is not a file; write the script that every rank runs first")
    nproc = check_int("nproc", nproc, min=1, hint="the number of processes (ranks) to start")
    timeout = check_number("timeout", timeout, positive=True, hint="seconds")
    if isinstance(args, str) or not all(isinstance(a, str) for a in args):
        raise TypeError(f"args must be a sequence of strings (the script's command line), got {args!r}")
    # the children import what this process imports: the same path, in the same order ('' is the cwd)
    path = os.pathsep.join(os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str))
    base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory() as logs:
        files = [open(Path(logs) / f"rank{r}.txt", "w+") for r in range(nproc)]   # files: no pipe to fill up
        procs = []
        try:
            for r, log in enumerate(files):
                # a session of its own, so that a stuck rank and anything it started can be killed together
                procs.append(subprocess.Popen([sys.executable, str(script), *args], stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}))
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise TimeoutError(
                        f"the {nproc} processes of {script.name} did not finish in {timeout:g} s and were "
                        f"stopped; a rank that waits forever usually waits for a collective (a DDP backward, "
                        f"an all_reduce) that another rank never reaches") from None
        finally:
            for proc in procs:
                if proc.poll() is None:   # after a timeout, a failed start or an interrupt
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            outputs = []
            for log in files:
                log.seek(0)
                outputs.append(log.read())
                log.close()
    for r, proc in enumerate(procs):
        if proc.returncode != 0:
            raise RuntimeError(f"{script.name} failed on rank {r} of {nproc} (exit code {proc.returncode}); "
                               f"the end of its output:\n{outputs[r][-3000:]}")
    return outputs
