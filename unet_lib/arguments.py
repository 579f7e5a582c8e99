"""What the command lines share: argparse types for numbers and fractions, and the ``--device`` check.

Used by ``python -m unet_lib.train`` and ``python -m unet_lib.predict``.
"""

import argparse

import torch

__all__ = ["positive", "fraction", "device_arg"]


def positive(kind):
    """An argparse type: a number of ``kind`` > 0 (argparse names the flag in its message)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def fraction(text: str) -> float:
    """An argparse type: the fraction of images kept for validation, in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (the fraction of images kept for validation), got {text}")
    return value


def device_arg(parser: argparse.ArgumentParser, device: str | None) -> str | None:
    """``--device`` as given (None: the command chooses), after ``parser.error`` for a string that
    is not a torch device or asks for CUDA where torch sees none."""
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parser.error(f"argument --device: {device!r} is not a torch device; use cpu, cuda or cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"argument --device: {device!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    return device
