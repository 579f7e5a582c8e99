"""The checks of notebook 12, scaling up: ``check_rank_shard``, ``check_steps_per_epoch``."""

import inspect
import subprocess
from collections.abc import Callable

import numpy as np
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from ._core import CheckPassed, T, call, fail, learner_check, passed

__all__ = ['check_rank_shard', 'check_steps_per_epoch']


# (n_samples, world_size): divisible, padded (n not a multiple of world_size, also by more than
# n), more ranks than samples, one rank; each with (epoch, seed) (0, 0), (1, 0) and (3, 7)
_SHARD_CASES = [(12, 2), (10, 4), (7, 3), (3, 4), (2, 5), (9, 1)]
# the sampler, its source run as the learner's own (inspect.getsource), and another process that
# runs the sampler where the check cannot watch it
_SHARD_SHORTCUTS = {"DistributedSampler": DistributedSampler, "inspect.getsource": inspect.getsource,
                    "subprocess.Popen": subprocess.Popen}


def _drawn_shard_cases(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """(n_samples, world_size, epoch, seed) drawn anew on every run, so that a table of the
    sampler's lists made beforehand cannot answer: one case that splits evenly, one that pads."""
    world_size = int(rng.integers(2, 9))
    even = world_size * int(rng.integers(3, 12))
    padded = even + int(rng.integers(1, world_size))
    return [(n, world_size, int(rng.integers(2, 50)), int(rng.integers(100, 100_000))) for n in (even, padded)]


def _sampler_shard(n: int, world_size: int, rank: int, epoch: int, seed: int) -> list[int]:
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


@learner_check
def check_rank_shard(rank_shard: Callable) -> CheckPassed:
    """``rank_shard(n_samples, world_size, rank, epoch, seed)`` must list the sample indices that
    rank ``rank`` is given in epoch ``epoch``, in order, as torch's
    ``DistributedSampler(range(n_samples), world_size, rank, shuffle=True, seed=seed)`` gives them
    after ``set_epoch(epoch)`` (as ``fit`` uses it), without the sampler: its use is refused. The
    messages say where the learner's lists part from the sampler's, never the sampler's lists. Two
    of the cases are drawn anew on every run."""
    cases = [(n, world_size, epoch, seed) for n, world_size in _SHARD_CASES for epoch, seed in ((0, 0), (1, 0), (3, 7))]
    for n, world_size, epoch, seed in [*cases, *_drawn_shard_cases(np.random.default_rng())]:
        got_all, expected_all = [], []
        for rank in range(world_size):
            got = call(rank_shard, n, world_size, rank, epoch, seed, refuse=_SHARD_SHORTCUTS)
            try:
                got = [int(i) for i in got]
            except (TypeError, ValueError):
                fail("rank_shard returned {got!r}; expected a list of sample indices",
                     "return a list of ints, one per sample the rank takes, in the order it takes them",
                     got=got)
            got_all.append(got)
            expected_all.append(_sampler_shard(n, world_size, rank, epoch, seed))
        if got_all == expected_all:
            continue
        rank = next(r for r in range(world_size) if got_all[r] != expected_all[r])
        got, expected = got_all[rank], expected_all[rank]
        values = dict(rank=rank, world_size=world_size, n=n, epoch=epoch, seed=seed, got=got,
                      k=len(got), per_rank=len(expected))
        if len(got) < len(expected):
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "{k} indices, fewer than the sampler gives this rank",
                 "every rank takes the same number of samples in every epoch (DDP needs every rank to take "
                 "the same number of steps): what does the sampler give when the samples do not split evenly?",
                 "print the sampler's lists for a case that does not split evenly, and look at which indices "
                 "come twice",
                 **values)
        if len(got) > len(expected):
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "{k} indices, more than the sampler gives this rank",
                 "each rank takes its own part of one epoch, no more: how many samples is a rank's part?",
                 **values)
        if sorted(got) == sorted(expected):
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "the right samples in the wrong order",
                 "each rank takes its samples in the order of one shuffled list that all ranks share: which "
                 "positions of that list does rank r take?",
                 **values)
        if epoch > 0 and got == call(rank_shard, n, world_size, rank, 0, seed, refuse=_SHARD_SHORTCUTS):
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "the same list as in epoch 0",
                 "the sampler shuffles anew every epoch (set_epoch): what does the epoch change in the shuffle?",
                 "the permutation's generator is seeded from the seed and the epoch together",
                 **values)
        total = -(-n // world_size) * world_size
        unshuffled = (list(range(n)) * (total // n + 1))[:total]     # the samples in order, padded
        if got == unshuffled[rank::world_size]:
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "in "
                 "the order of the samples, not shuffled",
                 "the sampler shuffles (shuffle=True): all ranks share one shuffled order of the samples",
                 **values)
        shared = [i for step in zip(*expected_all) for i in step]    # the padded permutation all ranks share
        if all(len(part) == len(expected) for part in got_all) and n % world_size \
                and [i for step in zip(*got_all) for i in step][:n] == shared[:n]:
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "the shuffled samples are right, the padding is not",
                 "the sampler pads the shared shuffled list to a multiple of world_size: which of its indices "
                 "does it repeat, and in which order?",
                 **values)
        if [i for part in got_all for i in part] == shared:
            fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "the ranks together take the right samples, but not each its sampler's part",
                 "one shuffled list shared by all ranks; rank r takes every world_size-th entry of it, from "
                 "position r. Which positions did yours take?",
                 **values)
        fail("rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}: rank_shard gave {got}: "
                 "not the sampler's list for this rank",
             "all ranks share one shuffled order of the samples, the same for the same seed and epoch: is "
             "yours the order the sampler draws?",
             "torch's shuffles come from torch.randperm with a torch.Generator seeded by manual_seed; print the "
             "sampler's list beside yours to see where they part",
             **values)
    return passed("✓ rank_shard gives every rank the samples that DistributedSampler gives it, padded, epoch after "
                  "epoch")


# -- exercise 2: steps per epoch ------------------------------------------------------------------

_STEPS_SHORTCUTS = {"DataLoader": DataLoader, "BatchSampler": BatchSampler, "DistributedSampler": DistributedSampler,
                    "subprocess.Popen": subprocess.Popen}


def _fit_steps(n: int, batch_size: int, world_size: int) -> int:
    """The number of batches in one epoch of ``fit``'s loader on each of ``world_size`` ranks."""
    if world_size == 1:
        return len(DataLoader(range(n), batch_size=batch_size, shuffle=True, drop_last=n >= batch_size))
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=0, shuffle=True, seed=0)
    return len(DataLoader(range(n), batch_size=batch_size, sampler=sampler, drop_last=len(sampler) >= batch_size))


# (n_samples, batch_size, world_size): divisible, padded, an incomplete last batch dropped, fewer
# samples on a rank than its batch, one process, more processes than samples
_STEPS_CASES = [(64, 4, 1), (64, 4, 2), (64, 4, 8), (100, 8, 4), (30, 4, 4), (10, 4, 4), (3, 4, 1), (5, 2, 3),
                (37, 5, 2), (1000, 16, 8), (7, 3, 1), (2, 4, 5), (50, 6, 3)]


@learner_check
def check_steps_per_epoch(steps_per_epoch: Callable) -> CheckPassed:
    """``steps_per_epoch(n_samples, batch_size, world_size)`` must give the optimizer steps in one
    epoch of ``fit`` with ``world_size`` processes and ``batch_size`` per process; compared with
    the length of a loader built as ``fit`` builds it. Building a loader, a batch sampler or a
    distributed sampler inside the learner's function is refused: the rule is the exercise. The
    messages say whether a count is too high or too low, not the expected count. Three of the
    cases are drawn anew on every run (a table of loader lengths made beforehand cannot answer)."""
    rng = np.random.default_rng()
    drawn = [(int(rng.integers(11, 5000)), int(rng.integers(2, 33)), int(rng.integers(1, 17))) for _ in range(3)]
    for n, batch_size, world_size in [*_STEPS_CASES, *drawn]:
        got = call(steps_per_epoch, n, batch_size, world_size, refuse=_STEPS_SHORTCUTS)
        expected = _fit_steps(n, batch_size, world_size)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            fail("steps_per_epoch returned {got!r}; expected an int", "a number of steps is a whole number",
                 got=got)
        if got == expected:
            continue
        shard = -(-n // world_size)   # each rank's samples, padded by the sampler
        values = dict(n=n, batch_size=batch_size, world_size=world_size, got=int(got))
        problem = (T("{n} samples, batch_size {batch_size} per process, {world_size} process(es): steps_per_epoch "
                     "gave {got}, too many") if got > expected else
                   T("{n} samples, batch_size {batch_size} per process, {world_size} process(es): steps_per_epoch "
                     "gave {got}, too few"))
        if got == 0 and shard < batch_size:
            fail(problem,
                 "a rank with fewer samples than batch_size still takes one step: fit drops an incomplete last "
                 "batch only when the rank has a full one",
                 **values)
        if world_size > 1 and n % world_size and got in (n // (batch_size * world_size), n // world_size // batch_size):
            fail(problem,
                 "when the samples do not split evenly over the processes, the sampler pads: how many samples "
                 "does each rank then get?",
                 **values)
        if got == -(-shard // batch_size) and shard >= batch_size:
            fail(problem,
                 "fit's loader drops an incomplete last batch (drop_last) when a rank has at least one full batch",
                 **values)
        if world_size > 1 and got in (n // batch_size, -(-n // batch_size), max(1, shard * world_size // batch_size)):
            fail(problem,
                 "batch_size is per process: in one step the processes together take world_size x batch_size "
                 "samples",
                 **values)
        fail(problem,
             "count for one rank: how many samples does the sampler give it, and how many full batches do they "
             "make, with fit's drop_last rule?",
             "build the loader of the exercise text for this case outside your function and print len(loader) "
             "beside your number",
             **values)
    return passed("✓ steps_per_epoch counts the steps of fit's epochs for any number of processes")
