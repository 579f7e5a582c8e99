"""Argument checks shared by every module of unet_lib, so that every error reads the same way.

Each check takes the argument's name first and its value second, returns the value in the form
the caller works with (a Python int or float, a numpy array, a tensor), and raises
``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind, wrong value) with a message

    {name} must be {what would be right}, got {what it got}[; {how to fix it}]

Arrays with NaN or infinite values are refused with a count of the bad pixels and where the
first one is, so a learner can find it: ``image has 1 NaN value among its 4096 (the first at
(12, 30))``.

API
---
* ``describe(value)``: a short text for what was given (``'10' (str)``, ``ndarray (0, 0) float64``).
* ``check_int(name, value, min=None, max=None)``, ``check_number(name, value, min=None,
  max=None, positive=False, finite=True)``, ``check_bool``, ``check_choice``, ``check_seed``,
  ``check_probability``, ``check_pair``, ``check_instance``.
* ``check_array(name, value, ndim=..., kind=..., finite=..., low=..., high=...)`` for numpy
  arrays (torch tensors and nested lists are converted), ``check_labels`` for label images,
  ``check_image`` for float images (``unit_range=True``: in [0, 1], with the 0..255 hint).
* ``check_tensor(name, value, ndim=..., kind=..., finite=...)``: the same for torch tensors.
* ``count_nonfinite(x)``: (NaN count, inf count, index of the first) for a numpy array or tensor.
* ``concrete_size(n)``: a size as a Python int, also while an exporter traces a forward pass.
"""

import math
import numbers
import operator
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

__all__ = [
    "describe", "check_int", "check_number", "check_bool", "check_choice", "check_seed", "check_probability",
    "check_pair", "check_instance", "check_rng", "check_array", "check_labels", "check_image", "check_tensor",
    "check_finite", "count_nonfinite", "check_index", "check_parameters_finite", "check_spatial", "concrete_size",
]

Kind = Literal["integer", "float", "real", "bool"]


def describe(value) -> str:
    """A short description of ``value`` for an error message: its repr when short, else its type
    (and shape and dtype for arrays and tensors)."""
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if value is None or type(value) in (bool, int, float):
        return text
    return f"{text} ({type(value).__name__})"


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""


# -- scalars ---------------------------------------------------------------------------------

def _is_integer(value) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds(low, high, strict_low: bool = False) -> str:
    """" in [low, high]", " in (low, high]", " >= low", " > low", " <= high" or ""."""
    if low is not None and high is not None:
        return f" in {'(' if strict_low else '['}{_fmt(low)}, {_fmt(high)}]"
    if low is not None:
        return f" {'>' if strict_low else '>='} {_fmt(low)}"
    if high is not None:
        return f" <= {_fmt(high)}"
    return ""


def check_int(name: str, value, min: int | None = None, max: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int: an int or numpy integer (not a bool, not a float such as 3.0)."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer{_bounds(min, max)}, got {describe(value)}{_hint(hint)}")
    value = int(value)
    if (min is not None and value < min) or (max is not None and value > max):
        raise ValueError(f"{name} must be an integer{_bounds(min, max)}, got {value}{_hint(hint)}")
    return value


def check_number(name: str, value, min: float | None = None, max: float | None = None, positive: bool = False,
                 finite: bool = True, hint: str = "") -> float:
    """``value`` as a Python float: a real number (int, float, numpy scalar; not a bool or a
    string), finite unless ``finite=False``, > 0 with ``positive``, within [min, max]."""
    low, strict = (0, True) if positive and min is None else (min, False)
    what = f"a{' finite' if finite else ''} number{_bounds(low, max, strict)}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise TypeError(f"{name} must be {what}, got {describe(value)}{_hint(hint)}")
    value = float(value)
    bad = ((finite and not math.isfinite(value)) or math.isnan(value)
           or (positive and not value > 0) or (min is not None and value < min) or (max is not None and value > max))
    if bad:
        raise ValueError(f"{name} must be {what}, got {value!r}{_hint(hint)}")
    return value


def check_probability(name: str, value, hint: str = "") -> float:
    """A number in [0, 1]."""
    return check_number(name, value, min=0.0, max=1.0, hint=hint)


def check_bool(name: str, value) -> bool:
    """``True`` or ``False`` (a numpy bool too); not 0/1 or a string such as "False"."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_choice(name: str, value, choices: Sequence) -> object:
    """One of ``choices``; the message lists them."""
    try:
        ok = value in choices
    except TypeError:   # an unhashable value
        ok = False
    if not ok:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(map(repr, choices))}")
    return value


def check_seed(name: str, value) -> int:
    """A seed for numpy's and torch's generators: an integer in [0, 2**64)."""
    return check_int(name, value, min=0, max=2**64 - 1,
                     hint="numpy and torch generators take a non-negative integer seed (e.g. 0)")


def check_pair(name: str, value, kind: Literal["integer", "number"] = "number", hint: str = "") -> tuple:
    """Two numbers ``(a, b)`` given as a tuple, list or array of length 2; returns a tuple."""
    what = "two integers" if kind == "integer" else "two numbers"
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (min, max) of {what}, got {describe(value)}{_hint(hint)}")
    check = check_int if kind == "integer" else check_number
    return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))


def check_instance(name: str, value, types, what: str, hint: str = ""):
    """``value`` if it is an instance of ``types``, else a TypeError that says ``what`` is expected."""
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}, got {describe(value)}{_hint(hint)}")
    return value


def check_rng(name: str, value) -> np.random.Generator:
    """A ``numpy.random.Generator``: the library never uses global random state."""
    return check_instance(name, value, np.random.Generator, "a numpy.random.Generator (e.g. np.random.default_rng(0))",
                          "augmentation never uses global random state")


def check_index(name: str, value, length: int, what: str) -> int:
    """An index into a sequence of ``length``: an int, numpy integer or 0-d integer tensor, in
    [-length, length); returns it in [0, length)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value)
    if isinstance(value, (bool, np.bool_, torch.Tensor, np.ndarray)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {describe(value)}; {what} is indexed one sample at a time")
    value = operator.index(value)
    if not -length <= value < length:
        raise IndexError(f"index {value} is out of range for {what} of length {length}")
    return value % length


# -- arrays ----------------------------------------------------------------------------------

def count_nonfinite(x) -> tuple[int, int, tuple[int, ...] | None]:
    """(number of NaN, number of +-inf, index of the first non-finite value or None) of a numpy
    array or torch tensor of any real dtype (integers are always finite)."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()) or x.is_meta:   # meta: shapes only, no values
            return 0, 0, None
        bad = ~torch.isfinite(x)
        if not bool(bad.any()):
            return 0, 0, None
        nan = int(torch.isnan(x).sum())
        first = tuple(int(i) for i in bad.nonzero()[0])
        return nan, int(bad.sum()) - nan, first
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        return 0, 0, None
    bad = ~np.isfinite(x)
    if not bad.any():
        return 0, 0, None
    nan = int(np.isnan(x).sum())
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), x.shape))
    return nan, int(bad.sum()) - nan, first


def check_finite(name: str, x, hint: str = "") -> None:
    """Refuse an array or tensor with NaN or infinite values, counting them."""
    nan, inf, first = count_nonfinite(x)
    if nan or inf:
        counts = " and ".join(t for t in (f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else "") if t)
        size = x.numel() if isinstance(x, torch.Tensor) else np.size(x)
        raise ValueError(f"{name} must be finite, got {counts} value{'s' if nan + inf > 1 else ''} among its {size} "
                         f"(the first at {first}){_hint(hint)}")


def _kind_ok(dtype_kind: str, kind: Kind | None) -> bool:
    if kind is None:
        return dtype_kind in "biuf"
    return {"integer": dtype_kind in "iu", "float": dtype_kind == "f", "real": dtype_kind in "iuf",
            "bool": dtype_kind == "b"}[kind]


_KIND_TEXT = {"integer": "an integer dtype", "float": "a floating-point dtype", "real": "a real (integer or float) dtype",
              "bool": "dtype bool", None: "a real (bool, integer or float) dtype"}


def check_array(name: str, value, ndim: int | tuple[int, ...] | None = None, dims: str = "", kind: Kind | None = None,
                finite: bool = True, low: float | None = None, high: float | None = None, nonempty: bool = True,
                hint: str = "") -> np.ndarray:
    """``value`` (numpy array, torch tensor or nested list) as a numpy array, checked in this
    order: it is an array, ``ndim`` (``dims`` such as "a 2-D (H, W) image" says what is wanted), dtype ``kind``,
    not empty, finite, values in [low, high]."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if value is None or isinstance(value, (str, bytes, dict, numbers.Number)) and not isinstance(value, np.generic):
        raise TypeError(f"{name} must be a numpy array or torch tensor{' ' + dims if dims else ''}, "
                        f"got {describe(value)}{_hint(hint)}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:   # ragged lists
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {describe(value)} "
                        f"({str(error).splitlines()[0]})") from None
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if ndims is not None and array.ndim not in ndims:
        want = dims or "a " + " or ".join(f"{n}-D" for n in ndims) + " array"
        raise ValueError(f"{name} must be {want}, got shape {array.shape}{_hint(hint)}")
    if not _kind_ok(array.dtype.kind, kind):
        raise TypeError(f"{name} must have {_KIND_TEXT[kind]}, got {array.dtype}{_hint(hint)}")
    if nonempty and array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}{_hint(hint)}")
    if finite:
        check_finite(name, array, hint)
    if array.size and ((low is not None and array.min() < low) or (high is not None and array.max() > high)):
        n_out = int(((array < low) if low is not None else 0).sum() + ((array > high) if high is not None else 0).sum())
        raise ValueError(f"{name} must hold values in [{low}, {high}], got {n_out} value{'s' if n_out > 1 else ''} "
                         f"outside, from {array.min()} to {array.max()}{_hint(hint)}")
    return array


# the largest id that every step (int64 arithmetic, float64 warps via relabelling) keeps exactly
MAX_LABEL = np.iinfo(np.int64).max


def check_labels(name: str, value, ndim: int | tuple[int, ...] = 2, dims: str = "(H, W)") -> np.ndarray:
    """A label image (0 = background, 1, 2, ... = cells): integer dtype (not bool, not float),
    no negative ids, ids that fit int64, not empty. Returns a numpy array (a view when possible)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    ndims = "-D or ".join(map(str, (ndim,) if isinstance(ndim, int) else ndim)) + "-D"
    array = check_array(name, value, ndim, dims=f"a {ndims} {dims} label image", kind=None, nonempty=False,
                        finite=False)
    if array.dtype == bool or array.dtype.kind not in "iu":
        hint = ("a boolean mask is not a label image: label its connected components with "
                "scipy.ndimage.label(mask)[0]" if array.dtype == bool else
                "cast it with .astype(np.int64) if the values are whole-number ids")
        raise TypeError(f"{name} must have an integer dtype (0 = background, 1, 2, ... = cells), "
                        f"got {array.dtype}; {hint}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if array.min() < 0:
        n = int((array < 0).sum())
        raise ValueError(f"{name} has negative ids ({n} pixel{'s' if n > 1 else ''}, min {array.min()}); "
                         f"use 0 for background and positive ids for cells")
    if array.dtype == np.uint64 and array.max() > MAX_LABEL:
        raise ValueError(f"{name} has ids above 2**63 - 1 (max {array.max()}), which int64 cannot hold; "
                         f"renumber them with np.unique(instances, return_inverse=True)")
    return array


def check_image(name: str, value, ndim: int | tuple[int, ...] = (2, 3), dims: str = "(H, W) or (C, H, W)",
                unit_range: bool = False) -> np.ndarray:
    """A float image: numpy (or torch, converted), floating-point dtype, not empty, finite, and
    with ``unit_range`` in [0, 1] (a 0..255 image gets the hint to divide by 255)."""
    array = check_array(name, value, ndim, dims=dims, kind="real", finite=True,
                        hint="replace them first, e.g. np.nan_to_num(image)")
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be floating point in [0, 1], got {array.dtype}; "
                        f"images in 0..255? use image.astype(np.float32) / 255")
    if unit_range and (array.min() < 0 or array.max() > 1):
        n_out = int(((array < 0) | (array > 1)).sum())
        scale = "; images in 0..255? divide by 255" if array.max() > 1 else ""
        raise ValueError(f"{name} must hold values in [0, 1], got {n_out} pixel{'s' if n_out > 1 else ''} outside, "
                         f"from {array.min():g} to {array.max():g}{scale}")
    return array


def check_tensor(name: str, value, ndim: int | None = None, dims: str = "", kind: Kind | None = None,
                 finite: bool = False, nonempty: bool = True, hint: str = "") -> torch.Tensor:
    """``value`` if it is a torch tensor with ``ndim`` dimensions (``dims`` names them), dtype
    ``kind`` ("integer": int64 exactly, as torch's indexing needs), not empty, and finite."""
    if not isinstance(value, torch.Tensor):
        fix = "; convert with torch.from_numpy(x)" if isinstance(value, np.ndarray) else ""
        raise TypeError(f"{name} must be a torch.Tensor{' ' + dims if dims else ''}, got {describe(value)}{fix}"
                        f"{_hint(hint)}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be a {dims or f'{ndim}-D'} tensor, got shape {tuple(value.shape)}{_hint(hint)}")
    if kind == "float" and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}; use {name}.float()")
    if kind == "integer" and value.dtype != torch.int64:
        raise TypeError(f"{name} must hold integer class indices (torch.int64), got {value.dtype}; use {name}.long()")
    if nonempty and concrete_size(value.numel()) == 0:   # numel is traced while an exporter traces
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}{_hint(hint)}")
    if finite:
        check_finite(name, value, hint)
    return value


def concrete_size(n):
    """``n``, or for a traced size its value at the traced example: while ``torch.jit.trace`` or
    ``torch.onnx.export`` traces a forward pass, ``x.shape`` holds 0-d tensors, which the checks
    here refuse. Their value is read, and the tracer's warning that the graph will not follow it
    is silenced: use the int to check a size, never to compute with it (the computation must use
    the traced size, so that the exported graph follows the input's size)."""
    if isinstance(n, torch.Tensor) and n.ndim == 0 and torch.jit.is_tracing():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return int(n)
    return n


def check_spatial(name: str, x) -> None:
    """Refuse an array or tensor whose last two (H, W) dimensions are missing or empty: there is
    nothing to mirror, pad or predict."""
    shape = tuple(x.shape)
    if len(shape) < 2 or 0 in shape[-2:] or 0 in shape:
        raise ValueError(f"{name} must have H, W >= 1 (and no empty dimension), got shape {shape}")


def check_parameters_finite(name: str, module: torch.nn.Module) -> None:
    """Refuse a network with NaN or infinite weights (a diverged training run): its output would
    be NaN "probabilities", and argmax would call every pixel background."""
    for pname, param in module.named_parameters():
        nan, inf, _ = count_nonfinite(param.detach())
        if nan or inf:
            raise ValueError(f"{name} has non-finite weights ({nan} NaN, {inf} inf in {pname}); it diverged in "
                             f"training (learning rate too high, or NaN in the inputs): retrain or load a checkpoint")
