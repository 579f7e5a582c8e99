"""The U-Net of Ronneberger, Fischer & Brox (2015), Fig. 1, and its size arithmetic.

B, C, H, W = batch, channels, height, width.

With the defaults this is the paper's network: 1 input channel, 2 classes, 4 poolings, 64
channels at the top level doubling to 1024 at the bottom, unpadded convolutions, learned
up-convolutions, no BatchNorm; 31,030,658 parameters; a 572x572 tile gives a 388x388 output.
"""

import copy
import math

import torch
from torch import nn

from .blocks import DoubleConv, Down, OutConv, Padding, Up, Upsampling
from .validate import check_bool, check_choice, check_int, check_number, concrete_size

__all__ = ["UNet", "named_blocks", "block_shapes", "cut_skips", "receptive_field"]

Size = int | tuple[int, int]


def _output_side(n: int, depth: int, padding: Padding) -> int | None:
    """Output length of one spatial side, or None when ``n`` is not a valid input length."""
    shrink = 4 if padding == "valid" else 0   # a valid DoubleConv removes 2 px per side
    n -= shrink                               # first DoubleConv
    for _ in range(depth):                    # contracting path
        if n < 2 or n % 2:
            return None                       # max-pool needs an even size
        n = n // 2 - shrink
    if n < 1:
        return None
    for _ in range(depth):                    # expansive path
        n = 2 * n - shrink
        if n < 1:
            return None
    return n


def _valid_sizes_rule(depth: int, padding: Padding) -> tuple[int, int]:
    """(first, step): the valid input lengths are exactly first + k * step, k = 0, 1, 2, ...

    Why an arithmetic progression: a valid input is what the contracting path makes of a
    bottom length s >= 1 run backwards (undo a DoubleConv: + shrink; undo a pooling: x 2), so
    n(s) = 2**depth * s + const, and every pooling then sees an even length. The expansive path
    adds one more condition, 2x - shrink >= 1 at every step up, which holds from some small s on.
    """
    shrink = 4 if padding == "valid" else 0
    step = 2**depth
    for s in range(1, 6):   # s = 4 satisfies the expansive path for any depth (2 * 4 - 4 = 4)
        x, ok = s, True
        for _ in range(depth):
            x = 2 * x - shrink
            ok = ok and x >= 1
        if ok:
            break
    n = s
    for _ in range(depth):
        n = 2 * (n + shrink)   # undo the level's DoubleConv, then its pooling
    return n + shrink, step    # undo the first DoubleConv


# A U-Net larger than this is an error, not a model: 1e9 float32 parameters are 4 GB of
# weights before gradients and optimizer state. The paper's network has 31 million.
MAX_PARAMETERS = 10**9


class _Arguments:
    """``UNet``'s constructor arguments, without building anything: checked (``check_config``) and
    counted in parameters (``count_parameters``). UNet inherits these static methods."""

    @staticmethod
    def check_config(in_channels: int = 1, num_classes: int = 2, depth: int = 4, base_channels: int = 64,
                     padding: Padding = "valid", upsampling: Upsampling = "transpose", batch_norm: bool = False,
                     dropout: float = 0.0) -> dict:
        """The constructor arguments checked and normalised (plain ints, a float ``dropout``,
        left out when 0), as ``UNet.config`` holds them. Raises ``ValueError`` or ``TypeError``
        naming the argument, and ``ValueError`` when the network would have more than
        ``MAX_PARAMETERS`` parameters, before anything is allocated."""
        check_choice("padding", padding, ("valid", "same"))
        check_choice("upsampling", upsampling, ("transpose", "bilinear"))
        # a bool, a float or a str is an error (``True`` would silently mean 1)
        ints = {name: check_int(name, value, min=least) for name, value, least in [
            ("in_channels", in_channels, 1), ("num_classes", num_classes, 1),
            ("depth", depth, 0), ("base_channels", base_channels, 1)]}
        # `if batch_norm:` would take any non-empty string, 'no' included, as True
        batch_norm = check_bool("batch_norm", batch_norm)
        dropout = check_number("dropout", dropout, min=0.0, finite=False,
                               hint="the probability of zeroing a feature; the paper's is 0.5")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (the probability of zeroing a feature; the paper's "
                             f"is 0.5), got {dropout!r}")
        config = dict(**ints, padding=padding, upsampling=upsampling, batch_norm=batch_norm)
        if dropout > 0:
            config["dropout"] = float(dropout)
        n = _Arguments.count_parameters(**config)
        if n > MAX_PARAMETERS:
            raise ValueError(
                f"UNet(depth={ints['depth']}, base_channels={ints['base_channels']}, "
                f"in_channels={ints['in_channels']}, num_classes={ints['num_classes']}) would have {n:,} parameters, "
                f"{4 * n / 1e9:,.1f} GB of float32 weights alone (the paper's network has 31,030,658); the limit "
                f"is {MAX_PARAMETERS:,}. Each level doubles the channels: lower depth or base_channels")
        return config

    @staticmethod
    def count_parameters(in_channels: int = 1, num_classes: int = 2, depth: int = 4, base_channels: int = 64,
                         padding: Padding = "valid", upsampling: Upsampling = "transpose", batch_norm: bool = False,
                         dropout: float = 0.0) -> int:
        """The number of parameters of ``UNet(**config)``, by arithmetic, without building it
        (31,030,658 for the defaults). Padding and dropout add no parameters."""
        def double_conv(c_in: int, c_out: int) -> int:
            per_conv_extra = 2 * c_out if batch_norm else c_out   # BatchNorm's weight and bias, or the bias
            return 9 * c_in * c_out + 9 * c_out * c_out + 2 * per_conv_extra

        widths = [base_channels * 2**level for level in range(depth + 1)]
        n = double_conv(in_channels, widths[0])                               # inc
        n += sum(double_conv(widths[i], widths[i + 1]) for i in range(depth))  # contracting path
        for i in range(depth):                                                # expansive path
            c, half = widths[i + 1], widths[i + 1] // 2
            kernel = 4 if upsampling == "transpose" else 1                    # 2x2 up-conv or 1x1 conv
            n += kernel * c * half + half + double_conv(2 * half, widths[i])
        return n + widths[0] * num_classes + num_classes                     # outc


class _InputSizes:
    """Which inputs a U-Net of ``self.depth`` and ``self.padding`` takes and what each gives: the size
    arithmetic (``output_size``, ``valid_input_sizes``, ``min_input_size``, computed without running
    the network) and the check of ``forward``'s input (``_check_input``). UNet inherits it. Over 60
    lines: six short methods of one job, each with the message that names the nearest valid sizes."""

    depth: int
    padding: Padding
    in_channels: int

    def output_size(self, input_size: Size) -> Size:
        """Output size for an input of ``input_size`` (an int, or (h, w)); same type back.

        Raises ``ValueError`` naming the nearest valid sizes when the input size is not valid.
        """
        if not isinstance(input_size, (tuple, list, torch.Size)):
            return self._output_side(input_size, "input size")
        if len(input_size) != 2:
            raise ValueError(f"input size must be an int or (height, width), got {tuple(input_size)}")
        h, w = input_size
        return self._output_side(h, "input height"), self._output_side(w, "input width")

    def valid_input_sizes(self, lo: int = 1, hi: int = 1024) -> list[int]:
        """All valid input side lengths n with lo <= n <= hi, in closed form: they are
        ``min_input_size() + k * 2**depth`` (188, 204, 220, ... for the paper's net; the multiples
        of ``2**depth`` for ``padding="same"``). At most a million of them, so that a typo in
        ``hi`` is an error rather than gigabytes of list."""
        lo = check_int("lo", lo, min=1, hint="an input side length in pixels")
        hi = check_int("hi", hi, min=1, hint="an input side length in pixels")
        if hi < lo:
            raise ValueError(f"hi must be >= lo, got lo={lo}, hi={hi}")
        first, step = _valid_sizes_rule(self.depth, self.padding)
        start = first if lo <= first else first + -(-(lo - first) // step) * step   # the first valid n >= lo
        count = max(0, (hi - start) // step + 1)
        if count > 1_000_000:
            raise ValueError(f"lo={lo}, hi={hi} holds {count:,} valid sizes, more than the 1,000,000 this returns; "
                             f"narrow the range (the valid sizes are {first} + k * {step})")
        return list(range(start, hi + 1, step))

    def _output_side(self, n: int, what: str) -> int:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"{what} must be an int, got {type(n).__name__}")
        out = _output_side(n, self.depth, self.padding)
        if out is None:
            raise ValueError(f"{what} {n} is not valid for depth={self.depth}, padding={self.padding!r}; "
                             f"{self._nearest_valid(n)}")
        return out

    def _nearest_valid(self, n: int) -> str:
        first, step = _valid_sizes_rule(self.depth, self.padding)
        if n < first:
            return f"nearest valid sizes: {first} (the smallest valid size is {first})"
        smaller = first + (n - 1 - first) // step * step   # the largest valid size < n
        return f"nearest valid sizes: {smaller}, {smaller + step}"

    def min_input_size(self) -> int:
        """The smallest valid input side length."""
        return _valid_sizes_rule(self.depth, self.padding)[0]

    def _check_input(self, x: torch.Tensor) -> None:
        """Refuse an input ``forward`` cannot take, naming the fix: not a 4-D tensor of the
        weights' dtype with ``in_channels`` channels, or a size that is not valid (the nearest
        valid sizes named). While an exporter traces ``forward`` (``unet_lib.export``), the sizes
        are traced values, checked at the traced example's values (``concrete_size``)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"UNet expects a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
        if x.ndim != 4:
            hint = "; add a batch dimension with x.unsqueeze(0)" if x.ndim == 3 else ""
            raise ValueError(f"UNet expects a 4-D tensor (B, C, H, W), got shape {tuple(x.shape)}{hint}")
        channels, h, w = (concrete_size(n) for n in x.shape[1:])
        if channels != self.in_channels:
            raise ValueError(f"UNet was built with in_channels={self.in_channels}, "
                             f"but the input has {channels} channels (shape {tuple(x.shape)})")
        dtype = self.outc.weight.dtype
        if x.dtype != dtype:
            hint = " (images in 0..255? use x.float() / 255)" if not x.is_floating_point() else ""
            raise TypeError(f"UNet expects a {dtype} input like its weights, got {x.dtype}; "
                            f"convert with x.to({dtype}){hint}")
        self.output_size((int(h), int(w)))   # raises with the nearest valid sizes


class UNet(_Arguments, _InputSizes, nn.Module):
    """U-Net: a contracting path that captures context and a symmetric expansive path that
    enables precise localisation, joined by skip connections (crop and concatenate).

    forward: (B, in_channels, H, W) float -> (B, num_classes, H_out, W_out) raw logits.
    ``H_out = output_size(H)``. With ``padding="valid"`` (the paper) each side must be a valid
    input size (``valid_input_sizes``; 16k + 12 from 188 up for depth=4) and the output is
    smaller than the input: it covers the centre of the input, whose border only provides
    context. With ``padding="same"`` each side must be divisible by ``2**depth`` and the output
    has the input's size.

    ``dropout``: the probability of ``nn.Dropout`` on the output of the contracting path (the
    bottleneck, the last ``Down`` block; for ``depth=0`` the first DoubleConv), active in train
    mode only. The paper: "Drop-out layers at the end of the contracting path perform further
    implicit data augmentation" (Sec. 3.1), without a rate; ``UNet(dropout=0.5)`` adds one such
    layer with the common rate of 0.5. The course
    leaves it off (0.0) so that trained results stay as they were; it has no parameters.

    ``UNet.count_parameters(**config)`` gives the parameter count without building anything;
    a configuration over ``MAX_PARAMETERS`` (1e9) is refused before any memory is allocated.

    UNet holds the network (its blocks, their initialisation, ``forward``); it inherits the
    arithmetic of its arguments (``_Arguments``) and of its input sizes, with the check of
    ``forward``'s input (``_InputSizes``), both above. Over 60 lines: the docstring states the
    size rule and the paper's drop-out.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 64,
        padding: Padding = "valid",
        upsampling: Upsampling = "transpose",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        config = self.check_config(in_channels=in_channels, num_classes=num_classes, depth=depth,
                                   base_channels=base_channels, padding=padding, upsampling=upsampling,
                                   batch_norm=batch_norm, dropout=dropout)
        in_channels, num_classes, depth, base_channels = (config[k] for k in ("in_channels", "num_classes", "depth",
                                                                              "base_channels"))
        # the constructor arguments, stored so that a checkpoint can rebuild the model; dropout
        # only when it is on, so a model without it has the config it had before the option existed
        self.config = config
        self.in_channels, self.num_classes, self.depth, self.padding = in_channels, num_classes, depth, padding
        widths = [base_channels * 2**level for level in range(depth + 1)]   # 64, 128, ..., 1024
        self.inc = DoubleConv(in_channels, widths[0], padding, batch_norm)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], padding, batch_norm) for i in range(depth))
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], padding, upsampling, batch_norm) for i in reversed(range(depth))
        )
        self.outc = OutConv(widths[0], num_classes)
        # no parameters, so the state_dict is the same with or without it
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation as in the paper (Sec. 3): weights ~ N(0, sqrt(2/N)), where N is the
        number of incoming nodes of one neuron ("for a 3x3 convolution and 64 feature channels
        in the previous layer N = 9*64 = 576"); biases zero."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                # stride 2 = kernel size: every output pixel is fed by one input pixel through
                # one kernel tap, so N = in_channels (torch's fan_in would say out_channels * 4)
                nn.init.normal_(m.weight, std=math.sqrt(2 / m.in_channels))
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        skips = []
        x = self.inc(x)                         # (B, 64, H - 4, W - 4) for the paper's net
        for down in self.downs:                 # contracting path
            skips.append(x)
            x = down(x)                         # (B, C, H, W) -> (B, 2C, H/2 - 4, W/2 - 4)
        if self.dropout is not None:            # the paper's "Drop-out layers at the end of the contracting path"
            x = self.dropout(x)
        for up, skip in zip(self.ups, reversed(skips)):   # expansive path
            x = up(x, skip)                     # (B, C, H, W) -> (B, C/2, 2H - 4, 2W - 4)
        return self.outc(x)                     # (B, num_classes, H_out, W_out)


def named_blocks(model: UNet) -> list[tuple[str, nn.Module]]:
    """The blocks of a U-Net in the order ``forward`` runs them: ``inc``, ``downs[0]`` ...
    ``downs[depth-1]`` (the last is the bottleneck), ``ups[0]`` ... ``ups[depth-1]``, ``outc``."""
    return [("inc", model.inc),
            *[(f"downs[{k}]", m) for k, m in enumerate(model.downs)],
            *[(f"ups[{k}]", m) for k, m in enumerate(model.ups)],
            ("outc", model.outc)]


def block_shapes(model: UNet, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model`` on ``x`` and return (block name, output shape) for every block, in order.

    Works on the ``meta`` device too, where tensors have shapes but no data.
    """
    shapes: list[tuple[str, tuple[int, ...]]] = []
    hooks = [module.register_forward_hook(lambda m, args, out, name=name: shapes.append((name, tuple(out.shape))))
             for name, module in named_blocks(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def cut_skips(model: UNet) -> list[torch.utils.hooks.RemovableHandle]:
    """Cut every skip connection of ``model``: a forward pre-hook hands each ``Up`` block zeros
    in place of the feature map from the contracting path, so the expansive path only has what
    came up from below. Returns the hooks' handles; ``handle.remove()`` restores the skips."""
    def zero_skip(module: nn.Module, args: tuple[torch.Tensor, torch.Tensor]):
        x, skip = args
        return x, torch.zeros_like(skip)

    return [up.register_forward_pre_hook(zero_skip) for up in model.ups]


def receptive_field(model: nn.Module, input_size: int, pixel: tuple[int, int] | None = None) -> tuple[int, torch.Tensor]:
    """Measure which input pixels one output pixel depends on.

    Returns the width of that region (one side, in pixels) and the (H, W) map of
    |d logits[0, 0, pixel] / d input|; ``pixel`` defaults to the centre of the output.

    Measured on a copy of ``model`` with positive weights (so that no ReLU is switched off)
    and with average pooling in place of max pooling: max pooling passes the gradient to one
    pixel of each 2x2 window only, average pooling to all four, and both read the same window.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"receptive_field measures a unet_lib.UNet, got {type(model).__name__}")
    if next(model.parameters()).is_meta:
        raise ValueError("receptive_field needs a model with real weights (it measures gradients), got one on "
                         "the 'meta' device, which has shapes but no data; build it outside `with "
                         "torch.device('meta')`, or use block_shapes, which works on 'meta'")
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.abs() + 1e-3)
    device = next(model.parameters()).device   # the probe goes where the (copied) model is
    x = torch.zeros(1, model.in_channels, input_size, input_size, device=device, requires_grad=True)
    out = model(x)
    i, j = pixel if pixel is not None else (out.shape[-2] // 2, out.shape[-1] // 2)
    out[0, 0, i, j].backward()
    grad = x.grad[0].abs().sum(0).cpu()           # (H, W)
    cols = (grad > 0).any(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1), grad
