"""Tests for unet_lib.checks.nb12_scaling_up: ``check_rank_shard``, ``check_steps_per_epoch`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib.checks import (
    CheckError,
    check_rank_shard,
    check_steps_per_epoch,
)


def rank_shard_by_hand(n, world_size, rank, epoch, seed, pad=True, stride=True, reseed=True):
    g = torch.Generator().manual_seed(seed + (epoch if reseed else 0))
    order = torch.randperm(n, generator=g).tolist()
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


@pytest.mark.parametrize("answer, match", [
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, pad=False),
     r"rank \d of 4, 10 samples.*\nHint: every rank gets the same number of samples, ceil\(10 / 4\) = 3: .*padded"),
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, stride=False),
     r"rank 0 of 2, 12 samples.*\nHint: the permutation is torch.randperm"),
    (lambda n, w, r, e, s: sorted(rank_shard_by_hand(n, w, r, e, s)), r"\nHint: the right samples in the wrong order"),
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, reseed=False),
     r"epoch 1, seed 0: .*\nHint: a new order every epoch: .*seed \+ epoch"),
    (lambda n, w, r, e, s: list(range(r, n, w)), r"\nHint: the permutation is torch.randperm"),
    (lambda n, w, r, e, s: None, r"returned None; expected a list of sample indices"),
])
def test_check_rank_shard_fails_a_broken_shard(answer, match):
    with pytest.raises(CheckError, match=match):
        check_rank_shard(answer)


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


@pytest.mark.parametrize("answer, match", [
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, pad=False),
     r"30 samples, batch_size 4 per process, 4 processes: steps_per_epoch gave 1; fit takes 2.*\n"
     r"Hint: .*ceil\(30 / 4\) = 8"),
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, drop_last=False), r"gave 4; fit takes 3.*\nHint: .*drop_last"),
    (lambda n, b, w: -(-n // w) // b, r"10 samples.* gave 0; fit takes 1.*\nHint: a rank with fewer samples"),
    (lambda n, b, w: n // b, r"64 samples, batch_size 4 per process, 2 processes: .*gave 16; fit takes 8.*\nHint: "
                             r"batch_size is per process"),
    (lambda n, b, w: n / (b * w), r"returned 16.0; expected an int"),
])
def test_check_steps_per_epoch_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_steps_per_epoch(answer)
