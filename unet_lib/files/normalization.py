"""Normalisation that keeps the objects: percentiles that clip little of the masks' foreground.

It measures how much of the masks' foreground given percentiles clip, and widens them where
they clip too much.

C, H, W = channels, height, width.

Each channel of an image is mapped to [0, 1] by its own ``low`` and ``high`` percentiles (1 and
99.8 by default): what lies below the low one becomes 0, what lies above the high one 1. That
suits objects that cover a good part of the image (the course's nuclei: 22% of the pixels, none
below the 1st percentile, 1% of theirs above the 99.8th). Objects darker than everything else
that cover less than 1% of the image (bacteria in phase contrast) lie below the 1st percentile
entirely: every one of their pixels becomes 0, their inner detail (the line between two touching
cells) is gone, and a network trained on them merges whole colonies. The training masks say where
the objects are, so the share of their pixels that a pair of percentiles clips can be measured
(``Clipping``) and the percentiles widened until it is small (``Clipping.choose``). The
chosen percentiles are stored with the model and applied to every image it predicts, which has no
mask.
"""

import numpy as np

__all__ = ["CLIP_LIMIT", "LOW_STEPS", "HIGH_STEPS", "Clipping"]

# At most this share of the foreground's pixels may be clipped at either end. The course's nuclei
# and toy cells lose 1.0% and 1.1% at the 99.8th percentile (their brightest pixels) and none at the
# 1st; dark rods covering 1.1% of their images lose 75% at the 1st percentile, 4.4% at the 0.05th.
CLIP_LIMIT = 0.05
# the percentiles tried, from the course's outwards; 0 and 100 are the image's minimum and maximum
LOW_STEPS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0)
HIGH_STEPS = (99.8, 99.9, 99.95, 99.98, 99.99, 100.0)


class Clipping:
    """Counts, image by image, of the foreground pixels (labels > 0) that the percentiles around
    ``low`` and ``high`` clip (``LOW_STEPS`` at or below ``low``, ``HIGH_STEPS`` at or above
    ``high``): ``add`` each raw image (C, H, W) with its labels (H, W), then ``shares`` or
    ``choose``. Counted per image, so that the images need not be kept."""

    def __init__(self, low: float = 1.0, high: float = 99.8):
        self.low, self.high = float(low), float(high)
        self.lows = [self.low] + [q for q in LOW_STEPS if q < self.low]
        self.highs = [self.high] + [q for q in HIGH_STEPS if q > self.high]
        self.below, self.above, self.total = None, None, 0

    def add(self, raw: np.ndarray, labels: np.ndarray) -> None:
        """Count the foreground pixels of one image at or below each channel's low percentiles of
        that image (normalisation maps them to 0), and at or above its high ones (mapped to 1)."""
        foreground = labels.ravel() > 0                                      # (H W,)
        if not foreground.any():
            return
        channels = raw.reshape(raw.shape[0], -1).astype(np.float64)          # (C, H W)
        values = np.percentile(channels, self.lows + self.highs, axis=1)     # (lows + highs, C)
        inside = channels[:, foreground]                                     # (C, n)
        n = len(self.lows)
        below = np.stack([(inside <= values[k][:, None]).sum(1) for k in range(n)])                # (lows, C)
        above = np.stack([(inside >= values[n + k][:, None]).sum(1) for k in range(len(self.highs))])  # (highs, C)
        self.total += int(foreground.sum())
        self.below = below if self.below is None else self.below + below
        self.above = above if self.above is None else self.above + above

    def shares(self) -> tuple[dict[float, float], dict[float, float]]:
        """({low: share}, {high: share}): the share of all foreground pixels clipped, the largest
        over the channels; 0 where there is no foreground."""
        if self.below is None:
            return dict.fromkeys(self.lows, 0.0), dict.fromkeys(self.highs, 0.0)
        return ({q: float(self.below[k].max()) / self.total for k, q in enumerate(self.lows)},
                {q: float(self.above[k].max()) / self.total for k, q in enumerate(self.highs)})

    def choose(self, limit: float = CLIP_LIMIT) -> dict:
        """The percentiles closest to ``low`` and ``high`` that clip at most ``limit`` of the
        foreground at each end; the widest tried (0, 100) where none does. A dict: ``low``,
        ``high`` (chosen), ``clipped_low``, ``clipped_high`` (their shares), ``given_low``,
        ``given_high``, ``given_clipped_low``, ``given_clipped_high`` (the percentiles asked for
        and their shares)."""
        below, above = self.shares()
        low = next((q for q in self.lows if below[q] <= limit), self.lows[-1])
        high = next((q for q in self.highs if above[q] <= limit), self.highs[-1])
        return dict(low=low, high=high, clipped_low=below[low], clipped_high=above[high], given_low=self.low,
                    given_high=self.high, given_clipped_low=below[self.low], given_clipped_high=above[self.high])
