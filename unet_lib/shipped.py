"""Where the course's shipped files are: the two checkpoints, the nuclei image and the benchmarks' results.

They live in the repository's top-level ``data/`` folder (its README.md says where each came from),
which is also a package of its own, installed as ``unet_course_data`` (pyproject.toml maps the name
onto the folder; ``unet_lib.data`` is the toy-cells module). So ``importlib.resources`` finds them
wherever the course is installed, from any working directory: in a checkout after
``pip install -e .`` (what ``make`` runs), in site-packages after ``pip install`` of the wheel
(Colab, Binder). No module builds a path from its own file to the repository.

API
---
* ``course_file(name, *, must_exist=True) -> Path``: the course's file ``name``, e.g.
  ``course_file("unet_nuclei.pt")``; a clear error names the file and lists those that exist.
* ``course_data_dir() -> Path``: the folder that holds them.
"""

import importlib.resources
import sys
from pathlib import Path

__all__ = ["course_file", "course_data_dir", "COURSE_DATA"]

COURSE_DATA = "unet_course_data"   # the import name of the repository's data/ folder


def course_data_dir() -> Path:
    """The folder of the course's files: the checkout's ``data/`` or the installed ``unet_course_data/``."""
    try:
        folder = importlib.resources.files(COURSE_DATA)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"the course's files (the package {COURSE_DATA}, the repository's data/ folder) are not installed "
            f"in this Python ({sys.executable}); install the course: `pip install --no-deps -e .` "
            f"in a checkout (what make runs), or `pip install unet_lib` from a wheel") from None
    if not isinstance(folder, Path):   # e.g. imported from a zip archive: no file to hand to torch.load
        raise FileNotFoundError(f"the course's files ({COURSE_DATA}) are inside {folder}, not in a folder; install "
                                f"the course with pip, which unpacks them")
    return folder


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "__init__.py")
    return ", ".join(names) if names else "nothing"


def course_file(name: str, *, must_exist: bool = True) -> Path:
    """The path of the course's file ``name`` (a file name in ``data/``, e.g. ``"unet_toycells.pt"``).

    Raises ``FileNotFoundError`` naming the file and listing the course's files when it is not
    there; ``must_exist=False`` gives the path of a file about to be written (``python -m
    unet_lib.train`` writes the course checkpoint, the benchmarks their results).
    """
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"name must be the name of one of the course's files, e.g. 'unet_nuclei.pt', got {name!r}")
    folder = course_data_dir()
    path = folder / name
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"the course has no file {name!r} (looked in {folder}); its files: {_listing(folder)}")
    return path
