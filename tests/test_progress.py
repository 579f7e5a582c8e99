"""unet_lib.progress: a bar where someone watches, one line per unit of work in a log file (#21)."""

import io

from unet_lib.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_unit_of_work_and_nothing_per_step():
    log = io.StringIO()
    progress = Progress(total=30, desc="training", unit="step", stream=log)
    for epoch in range(1, 4):
        for _ in range(10):
            progress.step(loss="0.5")
        progress.done(f"epoch {epoch} of 3")
    progress.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 3
    assert lines[0].startswith("training: epoch 1 of 3 (") and lines[0].endswith(" s)")


def test_a_terminal_gets_a_bar_and_a_disabled_progress_nothing():
    terminal = _Terminal()
    progress = Progress(total=3, desc="predicting", unit="image", stream=terminal)
    for k in range(3):
        progress.step()
        progress.done(f"{k + 1}/3 a.tif: 4 objects")
    progress.close()
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()       # tqdm redraws one line
    quiet = io.StringIO()
    off = Progress(total=3, desc="training", stream=quiet, disable=True)
    off.step()
    off.done("epoch 1 of 1")
    off.close()
    assert quiet.getvalue() == ""
