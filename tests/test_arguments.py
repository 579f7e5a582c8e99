"""Tests for unet_lib.arguments: the argparse types and the --device check that the command lines share."""

import argparse

import pytest
import torch

from unet_lib.arguments import device_arg, fraction, positive


def _parser(**types) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmd", exit_on_error=False)
    for flag, kind in types.items():
        parser.add_argument(f"--{flag}", type=kind)
    return parser


def test_positive_and_fraction_parse_and_refuse_naming_the_flag(capsys):
    parser = _parser(n=positive(int), lr=positive(float), val=fraction)
    args = parser.parse_args(["--n", "3", "--lr", "2e-3", "--val", "0"])
    assert (args.n, args.lr, args.val) == (3, 0.002, 0.0)
    for argv, message in [(["--n", "0"], "argument --n: must be > 0, got 0"),
                          (["--n", "2.5"], "argument --n: '2.5' is not an integer"),
                          (["--lr", "x"], "argument --lr: 'x' is not a number"),
                          (["--val", "1"], r"argument --val: must be in \[0, 1\)")]:
        with pytest.raises(argparse.ArgumentError, match=message):
            parser.parse_args(argv)


def test_device_arg_passes_a_device_and_refuses_what_torch_cannot_use(capsys):
    parser = argparse.ArgumentParser(prog="cmd")
    assert device_arg(parser, None) is None and device_arg(parser, "cpu") == "cpu"
    with pytest.raises(SystemExit):
        device_arg(parser, "gpu0")
    assert "argument --device: 'gpu0' is not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            device_arg(parser, "cuda")
        assert "torch sees no CUDA GPU here; use --device cpu" in capsys.readouterr().err
