"""The checks of notebook 12, scaling up: ``check_rank_shard``, ``check_steps_per_epoch``."""

from collections.abc import Callable

import numpy as np

from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_rank_shard', 'check_steps_per_epoch']


# (n_samples, world_size): divisible, padded (n not a multiple of world_size), more ranks than samples
_SHARD_CASES = [(12, 2), (10, 4), (7, 3), (3, 4), (9, 1)]


@learner_check
def check_rank_shard(rank_shard: Callable) -> CheckPassed:
    """``rank_shard(n_samples, world_size, rank, epoch, seed)`` must list the sample indices that
    rank ``rank`` is given in epoch ``epoch``, in order; compared with torch's
    ``DistributedSampler(range(n_samples), world_size, rank, shuffle=True, seed=seed)`` after
    ``set_epoch(epoch)``, as ``fit`` uses it."""
    from torch.utils.data import DistributedSampler
    for n, world_size in _SHARD_CASES:
        for epoch, seed in ((0, 0), (1, 0), (3, 7)):
            for rank in range(world_size):
                sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
                sampler.set_epoch(epoch)
                expected = list(sampler)
                got = call(rank_shard, n, world_size, rank, epoch, seed)
                try:
                    got = [int(i) for i in got]
                except (TypeError, ValueError):
                    fail(f"rank_shard returned {got!r}; expected a list of sample indices",
                          "return a list of ints, e.g. permutation[...].tolist()")
                if got == expected:
                    continue
                where = f"rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}"
                if len(got) != len(expected):
                    hint = (f"every rank gets the same number of samples, ceil({n} / {world_size}) = {len(expected)}: "
                            f"the permutation is padded at its end by repeating its first indices"
                            if len(got) < len(expected) else
                            f"each rank gets ceil(n_samples / world_size) = {len(expected)} samples, no more")
                elif sorted(got) == sorted(expected):
                    hint = ("the right samples in the wrong order: rank r takes every world_size-th index of the "
                            "padded permutation, starting at r, in the order of the permutation")
                elif epoch > 0 and got == call(rank_shard, n, world_size, rank, 0, seed):
                    hint = "a new order every epoch: the permutation's generator is seeded with seed + epoch"
                else:
                    hint = ("the permutation is torch.randperm(n_samples, generator=g) with g = torch.Generator() "
                            "seeded (manual_seed) with seed + epoch; print list(sampler) of a real "
                            "DistributedSampler beside yours to see where they part")
                fail(f"{where}: rank_shard gave {got}; DistributedSampler gives {expected}", hint)
    return CheckPassed("✓ rank_shard gives every rank the samples that DistributedSampler gives it, "
                       "padded, epoch after epoch")


def _fit_steps(n: int, batch_size: int, world_size: int) -> int:
    """The number of batches in one epoch of ``fit``'s loader on each of ``world_size`` ranks."""
    from torch.utils.data import DataLoader, DistributedSampler
    if world_size == 1:
        return len(DataLoader(range(n), batch_size=batch_size, shuffle=True, drop_last=n >= batch_size))
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=0, shuffle=True, seed=0)
    return len(DataLoader(range(n), batch_size=batch_size, sampler=sampler, drop_last=len(sampler) >= batch_size))


@learner_check
def check_steps_per_epoch(steps_per_epoch: Callable) -> CheckPassed:
    """``steps_per_epoch(n_samples, batch_size, world_size)`` must give the optimizer steps in one
    epoch of ``fit`` with ``world_size`` processes and ``batch_size`` per process; compared with
    the length of a loader built as ``fit`` builds it."""
    cases = [(64, 4, 1), (64, 4, 2), (64, 4, 8), (100, 8, 4), (30, 4, 4), (10, 4, 4), (3, 4, 1), (5, 2, 3)]
    for n, batch_size, world_size in cases:
        got, expected = call(steps_per_epoch, n, batch_size, world_size), _fit_steps(n, batch_size, world_size)
        if not isinstance(got, (int, np.integer)):
            fail(f"steps_per_epoch returned {got!r}; expected an int", "count whole steps: use // or math.ceil")
        if got == expected:
            continue
        shard = -(-n // world_size)   # each rank's samples
        if got == 0 and shard < batch_size:
            hint = ("a rank with fewer samples than batch_size still takes one step: fit drops the incomplete "
                    "last batch only when there is a full one")
        elif got == n // (batch_size * world_size) or got == n // world_size // batch_size:
            hint = (f"each rank's part is ceil({n} / {world_size}) = {shard} samples (the sampler pads), "
                    f"not {n // world_size}")
        elif got == -(-shard // batch_size):
            hint = "fit's loader drops an incomplete last batch (drop_last) when a rank has at least one full batch"
        elif got == n // batch_size or got == shard * world_size // batch_size:
            hint = "batch_size is per process: in one step the ranks together take world_size x batch_size samples"
        else:
            hint = ("build the loader of the exercise text (a DistributedSampler and a DataLoader) for this case "
                    "and print len(loader) beside your number")
        fail(f"{n} samples, batch_size {batch_size} per process, {world_size} processes: steps_per_epoch gave "
              f"{got}; fit takes {expected} steps per epoch", hint)
    return CheckPassed("✓ steps_per_epoch counts the steps of fit's epochs for any number of processes")
