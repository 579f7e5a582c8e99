"""Checkpoints: a trained U-Net saved and loaded with the arguments that rebuild it, its training
config and history; and where the course's own lives (``COURSE_CHECKPOINT``).

B, C, K, H, W = batch, channels, classes (num_classes), height, width.

A checkpoint is one file written by ``torch.save`` that holds only plain dicts, lists, strings,
numbers and tensors, so ``load_checkpoint`` reads it with ``torch.load(weights_only=True)``,
which never runs code from the file. It is written atomically (``unet_lib.atomic``): a crash, a
full disk or a kill during a save leaves the previous file whole.

Version 2 adds a *probe*: the logits of the saved network for a fixed, seeded input. The stored
``model_config`` rebuilds the network, and some edits of it still fit the weights (``padding``
changes no weight shape), so ``load_checkpoint`` runs the probe again and refuses a network that
answers differently. Version 1 files (no probe, such as the course's) still load.

A checkpoint may also hold the optimizer's state (``save_checkpoint(..., optimizer_state=...)``,
what ``python -m unet_lib.train --images`` writes), so that ``--resume`` continues Adam's moments
or SGD's momentum; ``load_optimizer_state`` reads it (None for a file without it).
"""

import dataclasses
import numbers
import re
import typing
from pathlib import Path
from typing import NamedTuple

import torch

from .atomic import atomic_write
from .config import TrainConfig
from .model import UNet
from .shipped import course_file

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "load_optimizer_state", "COURSE_CHECKPOINT"]

# the checkpoint that the course ships (written by `python -m unet_lib.train`, see
# unet_lib.train.course), one of the course's files: found from any working directory
COURSE_CHECKPOINT = course_file("unet_toycells.pt", must_exist=False)

_FORMAT = "unet_lib checkpoint"
_VERSION = 2
_PROBE_SEED = 0
_PROBE_MIN_OUTPUT = 8   # probe with an input whose output is at least 8x8: 64 pixels per class


class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` returns: the model (eval mode, CPU), its TrainConfig, its history,
    and ``meta``: what prediction needs beyond the network ({} for files without it), e.g. the
    normalisation percentiles and the mask kind of ``python -m unet_lib.train --images``."""

    model: UNet
    config: TrainConfig
    history: dict[str, list[float]]
    meta: dict | None = None


_META_VALUES = (str, int, float, bool, type(None))


def _check_meta(meta: object, where: str = "meta") -> dict:
    """``meta`` as a dict of str keys and plain values (str, int, float, bool, None, or lists
    and tuples of them), which a safe load (weights_only=True) reads back; tuples become lists."""
    if not isinstance(meta, dict):
        raise TypeError(f"{where} must be a dict of plain values (str, numbers, bools, None, lists of them), "
                        f"got {type(meta).__name__}")
    checked = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} keys must be strings, got {key!r}")
        if isinstance(value, list | tuple):
            if not all(isinstance(v, _META_VALUES) for v in value):
                raise ValueError(f"{where}[{key!r}] must hold plain values (str, numbers, bools, None), got {value!r:.100}")
            value = list(value)
        elif not isinstance(value, _META_VALUES):
            raise ValueError(f"{where}[{key!r}] must be a plain value (str, number, bool, None or a list of them), "
                             f"got {type(value).__name__}")
        checked[key] = value
    return checked


# -- the probe -------------------------------------------------------------------------------

def _probe_size(model: UNet) -> int:
    """The smallest valid input side whose output is at least ``_PROBE_MIN_OUTPUT`` wide."""
    n = model.min_input_size()
    step = 2**model.depth
    while model.output_size(n) < _PROBE_MIN_OUTPUT:
        n += step
    return n


@torch.no_grad()
def _probe(model: UNet, size: int) -> torch.Tensor:
    """The logits (1, K, H_out, W_out) of ``model`` in eval mode for a seeded uniform input
    (1, C, size, size) on the CPU; the same input on every machine."""
    generator = torch.Generator().manual_seed(_PROBE_SEED)
    x = torch.rand(1, model.in_channels, size, size, generator=generator)   # (1, C, size, size)
    was_training = model.training
    try:
        return model.eval()(x.to(model.outc.weight.dtype)).float()
    finally:
        model.train(was_training)


# -- checks ----------------------------------------------------------------------------------

def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_history(history: object, where: str = "history") -> dict[str, list[float]]:
    """``history`` as {str: [float, ...]}; a ``ValueError`` naming the entry otherwise."""
    if not isinstance(history, dict):
        raise TypeError(f"{where} must be a dict of lists of numbers (what fit returns), "
                        f"got {type(history).__name__}")
    checked = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} keys must be strings such as 'train_loss', got {key!r}")
        if not isinstance(values, list | tuple):
            raise ValueError(f"{where}[{key!r}] must be a list of numbers (one per epoch), "
                             f"got {type(values).__name__}")
        for i, x in enumerate(values):
            if not _is_number(x):
                raise ValueError(f"{where}[{key!r}][{i}] must be a number, got {x!r} ({type(x).__name__})")
        checked[key] = [float(x) for x in values]
    return checked


def _matches(value: object, hint: object) -> bool:
    """Whether ``value`` has the type ``hint`` of a TrainConfig field (int, float, bool, str,
    Literal[...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return value in args
    if args:   # a union such as bool | None
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return _is_number(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _check_train_config(saved: object, path: Path) -> TrainConfig:
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: train_config must be a dict of TrainConfig fields, got {type(saved).__name__}")
    hints = typing.get_type_hints(TrainConfig)
    for name, value in saved.items():
        if name in hints and not _matches(value, hints[name]):
            raise ValueError(f"{path}: train_config[{name!r}] = {value!r} is not a valid TrainConfig.{name} "
                             f"({hints[name]}); the file was edited or written by other code")
    # fields that a later TrainConfig dropped are left out, so older files still load
    return TrainConfig(**{k: v for k, v in saved.items() if k in hints})


def _check_model_config(saved: object, path: Path) -> dict:
    """The stored constructor arguments, checked by ``UNet.check_config`` (which also refuses a
    network too large to build) before anything is allocated."""
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise ValueError(f"{path}: model_config must be a dict of UNet arguments, got {saved!r:.200}")
    known = set(typing.get_type_hints(UNet.check_config)) - {"return"}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ValueError(f"{path}: model_config has arguments that UNet does not take: {unknown}; "
                         f"UNet takes {sorted(known)}")
    try:
        return UNet.check_config(**saved)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: model_config {saved} does not describe a UNet this library builds: {error}") from None


def _describe_unreadable(path: Path, error: BaseException) -> str:
    """What ``path`` looks like, for a file that ``torch.load(weights_only=True)`` refused. Never
    torch's own advice, which suggests the unsafe ``weights_only=False``."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(512)
    if size == 0:
        return "it is empty (0 bytes); the save that wrote it did not finish"
    if head.startswith(b"version https://git-lfs"):
        return ("it is a Git LFS pointer (a small text file that stands for the real one), not the checkpoint: "
                "run `git lfs install` and `git lfs pull` to download it")
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if found:
        return (f"it holds a pickled Python object ({found.group(1)}), e.g. a whole model saved with "
                f"torch.save(model); a checkpoint holds only tensors and plain values, so that loading it runs "
                f"no code from the file. Write checkpoints with unet_lib.checkpoint.save_checkpoint")
    if head.startswith(b"PK\x03\x04"):
        return (f"it is a zip archive (as torch files are) of {size:,} bytes that torch cannot read: truncated or "
                f"damaged (an interrupted save or download); save or download it again")
    try:
        text = head.decode("utf8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        first = next((line for line in text.splitlines() if line.strip()), "")[:60]
        return f"it is a text file ({size:,} bytes, starting {first!r}), not a torch checkpoint"
    if head[:1] == b"\x80":
        return "it is a pickle file but not one that a safe load (weights_only=True) can read"
    return f"it is neither a torch file nor text: {size:,} bytes starting {head[:8].hex(' ')}"


# -- save and load ---------------------------------------------------------------------------

def _check_optimizer_state(state: object, where: str = "optimizer_state") -> dict:
    """An optimizer's ``state_dict()`` (``{"state": {index: {name: tensor or number}},
    "param_groups": [{...}]}``) with its tensors on the CPU, so that it loads on any machine."""
    if not (isinstance(state, dict) and isinstance(state.get("state"), dict)
            and isinstance(state.get("param_groups"), list)
            and all(isinstance(g, dict) for g in state["param_groups"])):
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise TypeError(f"{where} must be an optimizer's state_dict() (a dict with 'state' and 'param_groups'), "
                        f"got {found}")

    def cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(cpu(v) for v in value)
        return value
    return cpu(state)


def save_checkpoint(path: str | Path, model: UNet, config: TrainConfig, history: dict,
                    meta: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Save weights, the model's constructor arguments, the training config, the history and
    the probe (see the module docstring), atomically. Returns the path. ``meta``: optional plain
    values that prediction needs (normalisation, mask kind, tile size); stored only when given.
    ``optimizer_state``: ``optimizer.state_dict()`` after training, for resuming (stored on the
    CPU, only when given; ``load_optimizer_state`` reads it back).

    ``history`` is what ``fit`` returns: {name: [number per epoch]}. ``path`` is a file name;
    its folder is created.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"save_checkpoint saves a unet_lib.UNet (it can be rebuilt from its config), "
                        f"got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    history = _check_history(history)
    meta = _check_meta(meta) if meta is not None else None
    optimizer_state = _check_optimizer_state(optimizer_state) if optimizer_state is not None else None
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name inside it, e.g. {path / 'model.pt'}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}   # NCHW on disk
    # the probe runs on what the file will hold: the CPU weights, in a network rebuilt from the config
    with torch.device("meta"):
        rebuilt = UNet(**model.config)
    rebuilt.load_state_dict(state, assign=True)
    size = _probe_size(rebuilt)
    saved = {
        "format": _FORMAT, "version": _VERSION,
        "model_config": dict(model.config),
        "state_dict": state,
        "train_config": dataclasses.asdict(config),
        "history": history,
        "probe": {"input_size": size, "seed": _PROBE_SEED, "logits": _probe(rebuilt, size)},
    }
    if meta is not None:
        saved["meta"] = meta
    if optimizer_state is not None:
        saved["optimizer"] = optimizer_state
    return atomic_write(path, lambda f: torch.save(saved, f))


def _check_probe(model: UNet, probe: object, path: Path) -> None:
    """Refuse a network that does not answer the stored probe as the saved one did."""
    if not (isinstance(probe, dict) and isinstance(probe.get("input_size"), int)
            and isinstance(probe.get("logits"), torch.Tensor)):
        raise ValueError(f"{path}: the probe entry is damaged (expected input_size and logits), got {probe!r:.200}")
    size, expected = probe["input_size"], probe["logits"]
    mismatch = f"{path}: the stored model_config {model.config} does not rebuild the network that was saved"
    try:
        logits = _probe(model, size)
    except ValueError as error:   # the probe's size is not valid for this config: padding or depth edited
        raise ValueError(f"{mismatch}: its probe input ({size}x{size}) is not valid for this config ({error}); "
                         f"was padding or depth edited?") from None
    if logits.shape != expected.shape:
        raise ValueError(f"{mismatch}: for its {size}x{size} probe it gives logits of shape {tuple(logits.shape)}, "
                         f"the saved network gave {tuple(expected.shape)}; was padding edited?")
    # loose enough for another CPU or thread count, far tighter than any other network would meet
    scale = max(1.0, float(expected.abs().max()))
    err = float((logits - expected.float()).abs().max())
    if not err <= 1e-3 * scale:
        raise ValueError(f"{mismatch}: its logits for the probe input differ by up to {err:.3g} "
                         f"(scale {scale:.3g}); the weights or the config were changed after saving")


def _read(path: Path) -> dict:
    """The dict in the checkpoint file at ``path``, read safely, with its format checked."""
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no file"
        raise FileNotFoundError(f"no checkpoint at {path} ({what} there); the course's is written by "
                                f"`python -m unet_lib.train` to {COURSE_CHECKPOINT}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # torch raises many kinds: UnpicklingError, RuntimeError, KeyError, EOFError...
        raise ValueError(f"{path} could not be read as a checkpoint (truncated, damaged or not a torch file): "
                         f"{_describe_unreadable(path, error)}") from None
    keys = {"format", "model_config", "state_dict", "train_config", "history"}
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT or not keys <= saved.keys():
        found = sorted(map(str, saved.keys())) if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(f"{path} is not a unet_lib checkpoint (expected keys {sorted(keys)}, found {found}); "
                         f"write checkpoints with unet_lib.checkpoint.save_checkpoint")
    return saved


def load_optimizer_state(path: str | Path) -> dict | None:
    """The optimizer state stored with the checkpoint at ``path`` (tensors on the CPU), or None
    for a file saved without one (the course's, and files written before unet_lib stored it).
    Restore it with ``optimizer.load_state_dict`` into an optimizer of the same kind over the
    same model (``unet_lib.train.make_optimizer``). Raises as ``load_checkpoint`` does for a
    file that is not a checkpoint, and ``ValueError`` for a damaged optimizer entry."""
    path = Path(path)
    saved = _read(path)
    if "optimizer" not in saved:
        return None
    try:
        return _check_optimizer_state(saved["optimizer"], where=f"{path}: optimizer")
    except TypeError as error:
        raise ValueError(str(error)) from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint written by ``save_checkpoint``: ``Checkpoint(model, config, history, meta)``
    (``meta`` is {} for a file saved without it, such as the course's).

    The model is rebuilt from the constructor arguments stored with the weights, on the CPU, in
    eval mode, after checking that they describe a network of sensible size. Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is truncated,
    is not a checkpoint (the message says what it looks like: text, a Git LFS pointer, a
    damaged zip, other bytes), holds entries of the wrong type, or holds weights that do not
    fit its model or (version 2) do not answer its probe as saved.
    """
    path = Path(path)
    saved = _read(path)
    version = saved.get("version", 1)
    if not isinstance(version, int) or not 1 <= version <= _VERSION:
        raise ValueError(f"{path} is a unet_lib checkpoint of version {version!r}; this unet_lib reads versions "
                         f"1 to {_VERSION}: update unet_lib")
    model_config = _check_model_config(saved["model_config"], path)
    state = saved["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"{path}: state_dict must map parameter names to tensors, got {type(state).__name__}")
    config = _check_train_config(saved["train_config"], path)
    history = _check_history(saved["history"], where=f"{path}: history")
    model = UNet(**model_config)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()[1:4]]
        raise ValueError(f"the weights in {path} do not fit UNet(**{saved['model_config']}): "
                         + " ".join(lines)) from None
    model.eval()
    if version >= 2:
        _check_probe(model, saved.get("probe"), path)
    try:
        meta = _check_meta(saved.get("meta", {}), where=f"{path}: meta")
    except TypeError as error:
        raise ValueError(str(error)) from None
    return Checkpoint(model, config, history, meta)
