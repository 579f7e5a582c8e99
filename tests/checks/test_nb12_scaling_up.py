"""Tests for unet_lib.checks.nb12_scaling_up: ``check_rank_shard``, ``check_steps_per_epoch`` both ways.

Each check passes a correct answer worked out here, refuses the torch objects whose rule it asks
for (however they are reached), and fails deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from unet_lib.checks import (
    CheckError,
    check_rank_shard,
    check_steps_per_epoch,
)


def rank_shard_by_hand(n, world_size, rank, epoch, seed, pad=True, stride=True, reseed=True, shuffle=True):
    g = torch.Generator().manual_seed(seed + (epoch if reseed else 0))
    order = torch.randperm(n, generator=g).tolist() if shuffle else list(range(n))
    total = -(-n // world_size) * world_size
    if pad:
        order += (order * total)[: total - n]
    if stride:
        return order[rank::world_size]
    part = len(order) // world_size
    return order[rank * part:(rank + 1) * part]


def test_check_rank_shard_passes_a_hand_written_shard():
    assert_passes(check_rank_shard, rank_shard_by_hand)
    assert_skeleton_is_friendly(check_rank_shard, "rank_shard_by_hand")


def _sampler(n, w, r, e, s):
    sampler = DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=True, seed=s)
    sampler.set_epoch(e)
    return list(sampler)


SAMPLER = DistributedSampler   # imported under another name: still refused


@pytest.mark.parametrize("answer", [
    _sampler,
    lambda n, w, r, e, s: list(iter(SAMPLER(list(range(n)), w, r, seed=s + e))),   # renamed, seeded by hand
], ids=["the sampler", "the sampler under another name"])
def test_check_rank_shard_refuses_the_sampler(answer):
    with pytest.raises(CheckError, match=r"called `DistributedSampler`, which already does what this exercise asks"):
        check_rank_shard(answer)


BROKEN_RANK_SHARD = {
    "no padding": (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, pad=False),
                   r"rank \d of 4, 10 samples, epoch 0, seed 0: rank_shard gave \[.*\]: 2 indices, fewer than the "
                   r"sampler gives this rank\nHint 1 of 2: every rank takes the same number of samples"),
    "contiguous blocks": (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, stride=False),
                          r"rank 0 of 2, 12 samples.*: the ranks together take the right samples, but not each its "
                          r"sampler's part\nHint: one shuffled list shared by all ranks"),
    "sorted": (lambda n, w, r, e, s: sorted(rank_shard_by_hand(n, w, r, e, s)),
               r": the right samples in the wrong order\nHint: each rank takes its samples in the order"),
    "not reseeded by the epoch": (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, reseed=False),
                                  r"epoch 1, seed 0: .*: the same list as in epoch 0\nHint 1 of 2: the sampler "
                                  r"shuffles anew every epoch"),
    "not shuffled": (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, shuffle=False),
                     r"rank 0 of 2, 12 samples.*: in the order of the samples, not shuffled\nHint: the sampler "
                     r"shuffles"),
    "every sample on every rank": (lambda n, w, r, e, s: rank_shard_by_hand(n, 1, 0, e, s),
                                   r"rank 0 of 2, 12 samples.*: 12 indices, more than the sampler gives this rank"),
    "another generator": (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s + 1),
                          r"not the sampler's list for this rank\nHint 1 of 2: all ranks share one shuffled order"),
    "returns None": (lambda n, w, r, e, s: None, r"returned None; expected a list of sample indices"),
}


@pytest.mark.parametrize("answer, match", BROKEN_RANK_SHARD.values(), ids=BROKEN_RANK_SHARD.keys())
def test_check_rank_shard_fails_a_broken_shard(answer, match):
    with pytest.raises(CheckError, match=match):
        check_rank_shard(answer)


def test_check_rank_shard_never_prints_the_samplers_list():
    with pytest.raises(CheckError) as info:
        check_rank_shard(lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s + 1))
    expected = _sampler(12, 2, 0, 0, 0)
    assert str(expected) not in str(info.value)


def test_check_rank_shard_gives_the_tool_on_a_second_failure():
    broken = BROKEN_RANK_SHARD["another generator"][0]
    with pytest.raises(CheckError):
        check_rank_shard(broken)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: torch's shuffles come from torch.randperm"):
        check_rank_shard(broken)


def steps_per_epoch_by_hand(n, batch_size, world_size, pad=True, drop_last=True, per_process=True):
    shard = -(-n // world_size) if pad else n // world_size
    if not per_process:
        return max(1, shard * world_size // batch_size)
    if shard < batch_size:
        return 1 if drop_last else -(-shard // batch_size)
    return shard // batch_size if drop_last else -(-shard // batch_size)


def test_check_steps_per_epoch_passes_a_hand_written_count():
    assert_passes(check_steps_per_epoch, steps_per_epoch_by_hand)
    assert_skeleton_is_friendly(check_steps_per_epoch, "steps_per_epoch_by_hand")


def _loader_len(n, b, w):
    sampler = DistributedSampler(range(n), num_replicas=w, rank=0, shuffle=True, seed=0)
    return len(DataLoader(range(n), batch_size=b, sampler=sampler, drop_last=len(sampler) >= b))


@pytest.mark.parametrize("answer, shortcut", [
    (_loader_len, "`DistributedSampler`, `DataLoader`"),
    (lambda n, b, w: len(DataLoader(range(-(-n // w)), batch_size=b, drop_last=-(-n // w) >= b)),
     "`DataLoader`"),
    (lambda n, b, w: sum(1 for _ in DataLoader(range(-(-n // w)), batch_size=b, drop_last=-(-n // w) >= b)),
     "`DataLoader`"),
    (lambda n, b, w: len(BatchSampler(SequentialSampler(range(-(-n // w))), b, drop_last=-(-n // w) >= b)),
     "`BatchSampler`"),
], ids=["fit's loader", "a loader's len", "counting a loader's batches", "a batch sampler's len"])
def test_check_steps_per_epoch_refuses_loaders_and_samplers(answer, shortcut):
    with pytest.raises(CheckError, match=rf"called {shortcut}.*, which already does what this exercise asks"):
        check_steps_per_epoch(answer)


@pytest.mark.parametrize("answer, match", [
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, pad=False),
     r"30 samples, batch_size 4 per process, 4 process\(es\): steps_per_epoch gave 1, too few\n"
     r"Hint: when the samples do not split evenly over the processes, the sampler pads"),
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, drop_last=False),
     r"100 samples, batch_size 8 per process, 4 process\(es\): steps_per_epoch gave 4, too many\nHint: .*drop_last"),
    (lambda n, b, w: -(-n // w) // b, r"10 samples.* gave 0, too few\nHint: a rank with fewer samples"),
    (lambda n, b, w: n // b, r"64 samples, batch_size 4 per process, 2 process\(es\): steps_per_epoch gave 16, too "
                             r"many\nHint: batch_size is per process"),
    (lambda n, b, w: n // w // b + 1, r"64 samples, batch_size 4 per process, 1 process\(es\): steps_per_epoch gave "
                                     r"17, too many\nHint 1 of 2: count for one rank"),
    (lambda n, b, w: n / (b * w), r"returned 16.0; expected an int"),
])
def test_check_steps_per_epoch_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_steps_per_epoch(answer)


def by_exec_of_the_samplers_source(n, w, r, e, s):
    """torch's DistributedSampler.__iter__, read with inspect.getsource and run as the learner's own."""
    import inspect
    import textwrap
    import types
    namespace = {}
    exec(textwrap.dedent(inspect.getsource(DistributedSampler.__iter__)), vars(torch.utils.data.distributed), namespace)
    fake = types.SimpleNamespace(shuffle=True, seed=s, epoch=e, dataset=range(n), drop_last=False, total_size=-(-n // w) * w,
                                 num_samples=-(-n // w), rank=r, num_replicas=w)
    return list(namespace["__iter__"](fake))


def in_another_process(n, w, r, e, s):
    """An answer that asks another Python process (where the check cannot watch) before it answers."""
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", "print(0)"], check=True, capture_output=True)
    return rank_shard_by_hand(n, w, r, e, s)


@pytest.mark.parametrize("answer, shortcut", [
    (by_exec_of_the_samplers_source, "`inspect.getsource`"),
    (in_another_process, "`subprocess.Popen`"),
], ids=["the sampler's source, executed", "another process"])
def test_check_rank_shard_refuses_the_samplers_source_and_another_process(answer, shortcut):
    with pytest.raises(CheckError, match=rf"called {shortcut}, which already does what this exercise asks"):
        check_rank_shard(answer)


def test_check_rank_shard_draws_cases_that_a_table_made_beforehand_cannot_answer():
    from unet_lib.checks.nb12_scaling_up import _SHARD_CASES
    table = {(n, w, r, e, s): _sampler(n, w, r, e, s) for n, w in _SHARD_CASES for r in range(w)
             for e, s in ((0, 0), (1, 0), (3, 7))}
    with pytest.raises(KeyError):                 # the fixed cases pass, a drawn case is not in the table
        check_rank_shard(lambda n, w, r, e, s: table[n, w, r, e, s])


def test_check_rank_shard_names_a_wrong_padding():
    def reversed_padding(n, w, r, e, s):           # pads with the permutation's last indices, reversed
        order = torch.randperm(n, generator=torch.Generator().manual_seed(s + e)).tolist()
        total = -(-n // w) * w
        return (order + order[::-1][: total - n])[r::w]
    with pytest.raises(CheckError, match=r"rank \d of 4, 10 samples, epoch 0, seed 0: .*: the shuffled samples are "
                                         r"right, the padding is not\nHint: the sampler pads the shared shuffled"):
        check_rank_shard(reversed_padding)


def test_check_steps_per_epoch_refuses_another_process():
    def in_another_process(n, b, w):
        import subprocess
        import sys
        subprocess.run([sys.executable, "-c", "print(0)"], check=True, capture_output=True)
        return steps_per_epoch_by_hand(n, b, w)
    with pytest.raises(CheckError, match=r"called `subprocess.Popen`, which already does what this exercise asks"):
        check_steps_per_epoch(in_another_process)


def test_check_steps_per_epoch_draws_cases_that_a_table_made_beforehand_cannot_answer():
    from unet_lib.checks.nb12_scaling_up import _STEPS_CASES
    table = {(n, b, w): _loader_len(n, b, w) if w > 1 else steps_per_epoch_by_hand(n, b, w) for n, b, w in _STEPS_CASES}
    with pytest.raises(KeyError):
        check_steps_per_epoch(lambda n, b, w: table[n, b, w])
