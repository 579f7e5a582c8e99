"""Tests for unet_lib.distributed and fit on several processes (#14): two CPU processes (gloo),
started by the tests themselves with a time limit and killed on failure, against one process."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unet_lib import UNet, distributed
from unet_lib.checkpoint import load_checkpoint
from unet_lib.data import ToyCells
from unet_lib.train import NonFiniteLossError, TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120   # seconds for a whole multi-process run: a hang (a rank left waiting) fails, not blocks
N_TRAIN, N_VAL = 12, 3   # 3 validation images on 2 ranks: one rank scores 2, the other 1


def _data(n, seed):
    return ToyCells(n, size=36, seed=seed, n_cells=(2, 4), radius=(4.0, 7.0))


def _model(batch_norm):
    torch.manual_seed(0)
    return UNet(depth=1, base_channels=4, batch_norm=batch_norm)


def _config(**kwargs):
    return TrainConfig(**{"epochs": 1, "batch_size": 2, "augment": False, "progress": False, "device": "cpu",
                          **kwargs})


class _Recording(torch.utils.data.Dataset):
    """Samples that fit asks for anew every epoch (draws_on_access), recording which it was asked."""

    draws_on_access = True

    def __init__(self, samples):
        self.samples, self.asked = samples, []

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        self.asked.append(i)
        return self.samples[i]


def _worker(out: str) -> None:
    """One rank: train the runs the tests compare and save what they look at to out/rank{r}.pt."""
    torch.distributed.init_process_group("gloo")
    try:
        rank, world_size = distributed.world()
        result = {}
        # 1. without BatchNorm: batch 2 on each of 2 ranks against batch 4 in one process
        model = _model(batch_norm=False)
        result["history"] = fit(model, _data(N_TRAIN, 0), _data(N_VAL, 1), _config())
        result["state"] = model.state_dict()
        # 2. with BatchNorm (per-rank statistics on the CPU), early stopping, keep_best and a time
        # budget: decisions that all ranks must take together; rank 0 writes the checkpoint
        model = _model(batch_norm=True)
        history = fit(model, _data(N_TRAIN, 0), _data(N_VAL, 1),
                      _config(epochs=4, lr=0.5, optimizer="sgd", patience=1, keep_best=True, cosine=False,
                              max_minutes=10.0))
        result["bn_history"], result["bn_state"] = history, model.state_dict()
        result["bn_types"] = sorted({type(m).__name__ for m in model.modules()})
        if rank == 0:
            from unet_lib.checkpoint import save_checkpoint
            save_checkpoint(Path(out) / "ddp.pt", model, _config(), history)
        distributed.barrier()
        # 3. which samples each rank is given, epoch by epoch
        recording = _Recording([_data(N_TRAIN, 0)[i] for i in range(N_TRAIN)])
        fit(_model(batch_norm=False), recording, None, _config(epochs=2))
        result["asked"] = recording.asked[N_TRAIN:]   # after fit's check of every sample's first draw
        # 4. a loss that overflows on the rank that gets sample 0 only: both ranks must stop
        samples = [_data(4, 0)[i] for i in range(4)]
        samples[0] = dict(samples[0], weight_map=torch.full_like(samples[0]["weight_map"], 3e38))
        try:
            fit(_model(batch_norm=False), samples, None, _config())
        except NonFiniteLossError as error:
            result["nonfinite"] = str(error)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(commands: list[list[str]], envs: list[dict], timeout: float = TIMEOUT) -> list[str]:
    """Start the processes, wait for all (at most ``timeout`` s in all), kill every one that is left
    on failure; returns their outputs (stdout and stderr together)."""
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for cmd, env in zip(commands, envs)]
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            outputs.append(out)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the processes did not finish in {timeout} s (a rank left waiting?)")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)   # its own session: torchrun's workers with it
                proc.wait()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, f"a process failed (exit code {proc.returncode}):\n{out[-3000:]}"
    return outputs


def _env(**extra) -> dict:
    # one thread per process: 2 processes on a 2-core machine, and results that do not depend on it
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The results of _worker on two gloo ranks: ({rank: result}, folder)."""
    out = tmp_path_factory.mktemp("ddp")
    port = str(_free_port())
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_distributed as t; "
            f"t._worker({str(out)!r})")
    envs = [_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
            for r in range(2)]
    _run([[sys.executable, "-c", code]] * 2, envs)
    return {r: torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)}, out


def test_two_ranks_with_batch_b_train_the_weights_of_one_process_with_batch_2b(two_ranks):
    results, _ = two_ranks
    torch.set_num_threads(1)   # as in the ranks: the same rounding
    # The same global batches: DistributedSampler shuffles with randperm(seed + epoch) and gives rank
    # r every other index from r, so its global batch j is the j-th 4 of that permutation; one
    # process's DataLoader draws another order, asked here of a DataLoader built as fit builds it.
    data = _data(N_TRAIN, 0)
    ddp_order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(0)).tolist()
    loader = torch.utils.data.DataLoader(range(N_TRAIN), batch_size=4, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    one_order = torch.cat(list(loader)).tolist()
    reordered = [None] * N_TRAIN
    for t in range(N_TRAIN):
        reordered[one_order[t]] = data[ddp_order[t]]   # one process's t-th sample is the ranks' t-th
    model = _model(batch_norm=False)
    history = fit(model, reordered, _data(N_VAL, 1), _config(batch_size=4))
    single = model.state_dict()
    for rank in (0, 1):
        state = results[rank]["state"]
        diff = max(float((state[k] - single[k]).abs().max()) for k in single)
        assert diff < 1e-6, f"rank {rank}: weights differ from one process with batch 4 by {diff:.3g}"
    # the ranks' histories: the mean loss over both ranks' steps, validation counted over both halves
    ranked = results[0]["history"]
    assert set(ranked) == set(history)
    assert {k: v for k, v in ranked.items() if k != "seconds"} == \
        {k: v for k, v in results[1]["history"].items() if k != "seconds"}   # each rank its own clock
    assert ranked["train_loss"] == pytest.approx(history["train_loss"], rel=1e-6)
    for key in ("val_loss", "val_iou", "val_f1", "val_merged", "val_split"):
        assert ranked[key] == pytest.approx(history[key], rel=1e-6), key


def test_every_rank_gets_its_own_part_of_the_data_in_a_new_order_each_epoch(two_ranks):
    results, _ = two_ranks
    half = N_TRAIN // 2
    asked = [results[r]["asked"] for r in (0, 1)]
    assert [len(a) for a in asked] == [2 * half, 2 * half]   # two epochs of half the samples each
    for epoch in (0, 1):
        parts = [set(a[epoch * half:(epoch + 1) * half]) for a in asked]
        assert not parts[0] & parts[1] and parts[0] | parts[1] == set(range(N_TRAIN))
    assert asked[0][:half] != asked[0][half:]   # set_epoch: another order in epoch 2


def test_decisions_are_taken_together_and_the_checkpoint_loads_in_one_process(two_ranks):
    results, out = two_ranks
    a, b = results[0], results[1]
    a["bn_history"].pop("seconds"), b["bn_history"].pop("seconds")   # each rank its own clock
    assert a["bn_history"] == b["bn_history"]                     # the same stop, the same best epoch
    assert "stopped_early" in a["bn_history"] and a["bn_history"]["epoch"][-1] < 4
    assert all(torch.equal(a["bn_state"][k], b["bn_state"][k]) for k in a["bn_state"])   # buffers too
    assert "BatchNorm2d" in a["bn_types"] and "SyncBatchNorm" not in a["bn_types"]
    checkpoint = load_checkpoint(out / "ddp.pt")
    assert set(checkpoint.model.state_dict()) == set(_model(batch_norm=True).state_dict())   # no "module."
    assert all(torch.equal(checkpoint.model.state_dict()[k], a["bn_state"][k]) for k in a["bn_state"])


def test_a_non_finite_loss_on_one_rank_stops_every_rank(two_ranks):
    results, _ = two_ranks
    messages = [results[r].get("nonfinite", "went on training") for r in (0, 1)]
    here = [m for m in messages if "the loss is inf (not finite)" in m]
    other = [m for m in messages if "the loss on another rank is not finite" in m]
    assert len(here) == 1 and len(other) == 1, messages   # the rank that had sample 0, and the other


def test_torchrun_trains_from_the_command_line_and_rank_0_alone_prints_and_writes(tmp_path):
    from test_cli import write_instance_folder   # the tiny folders of the command-line tests
    write_instance_folder(tmp_path)
    out = tmp_path / "model.pt"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    (printed,) = _run([torchrun + ["-m", "unet_lib.train", "--images", str(tmp_path / "images"),
                                   "--masks", str(tmp_path / "masks"), "--out", str(out), "--epochs", "1",
                                   "--depth", "1", "--base-channels", "4", "--tile", "36", "--device", "cpu"]],
                      [_env()])
    assert printed.count("found 4 image/mask pairs") == 1 and printed.count(f"wrote {out}") == 1, printed
    assert "2 processes on cpu: a global batch of 2 x 4 tiles" in printed
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".pt" or p.name.startswith(".")] == ["model.pt"]
    checkpoint = load_checkpoint(out)
    assert checkpoint.history["epoch"] == [1.0] and checkpoint.meta["tile_size"] == 36


# -- the helpers, in one process --------------------------------------------------------------

def test_without_a_process_group_there_is_one_rank():
    assert distributed.world() == (0, 1)
    assert distributed.sum_over_ranks([1.5, 2]) == [1.5, 2.0]
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    distributed.barrier()   # returns at once
    distributed.close()     # nothing to close


def test_rank_seed_is_the_seed_on_rank_0_and_another_on_every_other():
    assert distributed.rank_seed(7, 0) == 7
    seeds = [distributed.rank_seed(7, r) for r in range(1, 5)]
    assert len(set(seeds + [7])) == 5 and seeds == [distributed.rank_seed(7, r) for r in range(1, 5)]
    with pytest.raises(ValueError, match="seed"):
        distributed.rank_seed(-1, 1)


def test_sync_batch_norm_swaps_the_layers_for_the_block_and_puts_the_originals_back():
    model = _model(batch_norm=True)
    originals = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    keys = list(model.state_dict())
    with distributed.sync_batch_norm(model, torch.device("cuda")) as converted:   # converts; runs nothing
        synced = [m for m in converted.modules() if isinstance(m, nn.SyncBatchNorm)]
        assert len(synced) == len(originals) > 0
        assert all(s.weight is o.weight and s.running_mean is o.running_mean for s, o in zip(synced, originals))
        assert list(converted.state_dict()) == keys
    assert [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == originals
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    with distributed.sync_batch_norm(model, torch.device("cpu")) as same:   # no SyncBatchNorm kernels on the CPU
        assert same is model and not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


def test_init_from_env_names_what_is_wrong(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match=r"device='mps'.*runs on 'cpu' \(gloo\) or 'cuda' \(NCCL\)"):
        distributed.init_from_env("mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="LOCAL_RANK=1, but torch sees 0 GPU"):
            distributed.init_from_env("cuda")
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(ValueError, match="LOCAL_RANK='one' is not an integer"):
        distributed.init_from_env("cpu")


def test_the_command_line_refuses_what_torchrun_cannot_do(monkeypatch, capsys):
    from unet_lib import train
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--epochs", "1"])
    assert exit_info.value.code == 2 and "the course model trains in one process" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--epochs", "1"])
    assert exit_info.value.code == 2 and "WORLD_SIZE='two' is not an integer" in capsys.readouterr().err


# -- launch_local: the notebooks' way to start ranks ------------------------------------------

def test_launch_local_starts_the_ranks_as_torchrun_would_and_returns_what_each_printed(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text("import sys, torch\n"
                      "from unet_lib import distributed\n"
                      "distributed.init_from_env('cpu')\n"
                      "rank, world_size = distributed.world()\n"
                      "total = distributed.sum_over_ranks([rank + 1])[0]\n"
                      "print(f'rank {rank} of {world_size}, sum {total:g}, threads {torch.get_num_threads()}, '\n"
                      "      f'args {sys.argv[1:]}')\n"
                      "distributed.close()\n")
    outputs = distributed.launch_local(script, nproc=2, args=["a", "b"], timeout=TIMEOUT)
    assert [o.strip() for o in outputs] == [f"rank {r} of 2, sum 3, threads 1, args ['a', 'b']" for r in (0, 1)]


def test_launch_local_ranks_import_what_this_process_imports(tmp_path, monkeypatch):
    """A folder only on this process's sys.path (a notebook's own, a checkout put there by hand)
    and this unet_lib (checkout or installed wheel): the ranks find both."""
    own = tmp_path / "own"
    own.mkdir()
    (own / "own_module.py").write_text("")
    monkeypatch.syspath_prepend(str(own))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    script = tmp_path / "where.py"
    script.write_text("import importlib.util, own_module\n"   # no torch: a cheap rank
                      "print(own_module.__file__, importlib.util.find_spec('unet_lib').origin)\n")
    outputs = distributed.launch_local(script, nproc=1, timeout=TIMEOUT)
    import unet_lib
    assert outputs[0].split() == [str(own / "own_module.py"), unet_lib.__file__]


def test_launch_local_reports_a_failed_rank_with_its_output(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import os, sys\n"
                      "if os.environ['RANK'] == '1':\n"
                      "    sys.exit('rank 1 gives up')\n")
    with pytest.raises(RuntimeError, match=r"fails.py failed on rank 1 of 3 \(exit code 1\); the end of its "
                                           r"output:\nrank 1 gives up"):
        distributed.launch_local(script, nproc=3, timeout=TIMEOUT)


def test_launch_local_stops_ranks_that_do_not_finish_in_time(tmp_path):
    script = tmp_path / "waits.py"
    script.write_text("import os, pathlib, sys, time\n"
                      f"pathlib.Path({str(tmp_path)!r}, 'pid' + os.environ['RANK']).write_text(str(os.getpid()))\n"
                      "time.sleep(600)\n")
    with pytest.raises(TimeoutError, match=r"the 2 processes of waits.py did not finish in 3 s and were stopped"):
        distributed.launch_local(script, nproc=2, timeout=3)
    for r in (0, 1):
        pid_file = tmp_path / f"pid{r}"
        if pid_file.exists():   # a rank that had started: it is gone
            with pytest.raises(ProcessLookupError):
                os.kill(int(pid_file.read_text()), 0)


def test_launch_local_names_wrong_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"script='.*missing.py' is not a file"):
        distributed.launch_local(tmp_path / "missing.py")
    script = tmp_path / "ok.py"
    script.write_text("")
    with pytest.raises(ValueError, match="nproc must be"):
        distributed.launch_local(script, nproc=0)
    with pytest.raises(TypeError, match="args must be a sequence of strings"):
        distributed.launch_local(script, args="--fast")
    with pytest.raises(ValueError, match="timeout"):
        distributed.launch_local(script, timeout=0)
