"""Progress of long work: a bar where someone watches, a line per unit of work where output goes to a file.

The units are training epochs and predicted images.

A tqdm bar redraws itself with carriage returns several times a second: in a terminal or a
notebook that is one line that moves, in a log file (``python -m unet_lib.train ... > log.txt``,
a cluster job, a CI run) it is thousands of lines. ``Progress`` is a bar when its stream is a
terminal or the code runs in a notebook, and otherwise writes one line per ``done`` call (an
epoch, an image) and nothing per step.
"""

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm

__all__ = ["Progress"]


def _interactive(stream: TextIO) -> bool:
    """Whether someone watches ``stream``: a terminal, or a notebook (where tqdm.auto draws a widget)."""
    if getattr(tqdm, "__module__", "").startswith("tqdm.notebook"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """``total`` steps of work (``unit``: "step", "image"), shown as ``desc``. ``step()`` after
    each step; ``done(text)`` after each unit that a log should record (an epoch, an image): the
    bar shows ``text`` beside it, a log file gets the line ``desc: text``. ``disable``: nothing at
    all (ranks other than 0, ``TrainConfig(progress=False)``). ``stream``: default ``sys.stderr``,
    where tqdm writes."""

    def __init__(self, total: int, desc: str, unit: str = "step", disable: bool = False,
                 stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.desc, self.disable, self.start = desc, disable, time.perf_counter()
        self.bar, self.last = None, ""
        if not disable and _interactive(self.stream):
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=None if stream is None else stream)

    def step(self, n: int = 1, **postfix) -> None:
        """``n`` steps done; ``postfix`` (e.g. the running loss) shown on the bar only, before the
        text of the last ``done``."""
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                now = ", ".join(f"{k}={v}" for k, v in postfix.items())
                self.bar.set_postfix_str(f"{now} | {self.last}" if self.last else now, refresh=False)

    def done(self, text: str) -> None:
        """A unit of work ended: ``text`` beside the bar (until the next one), or one line in a log."""
        if self.disable:
            return
        if self.bar is not None:
            self.last = text
            self.bar.set_postfix_str(text)
        else:
            print(f"{self.desc}: {text} ({time.perf_counter() - self.start:.0f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
