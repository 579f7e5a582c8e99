"""Re-execute solution notebooks top to bottom in a fresh kernel and store their outputs.

    .venv/bin/python tools/run_notebooks.py notebooks/07_training.ipynb [more.ipynb ...]

This is how the committed outputs are made (then ``make exercises`` for the exercise editions):
each notebook runs in a new kernel of this Python, with the notebook's folder as the working
directory and torch's default thread count, exactly as nbval re-runs it in ``make test``.
The widget state is stored in the notebook (nbclient's ``store_widget_state``; JupyterLab's own
save does not store it by default), so that a static rendering (the course website) can show the
feature-map explorer. A notebook that raises in a cell not tagged ``raises-exception`` is left
unchanged and the error is printed; the file is replaced atomically, never half-written.
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unet_lib.atomic import atomic_write  # noqa: E402


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    atomic_write(path, nbformat.writes(nb) + "\n")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.notebooks:
        try:
            seconds = run(path, args.timeout)
        except CellExecutionError as error:
            failed += 1
            print(f"{path}: FAILED, left unchanged\n{error}", file=sys.stderr)
            continue
        print(f"{path}: executed in {seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
