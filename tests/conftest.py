"""Shared by every test: the Chinese edition's progress (issue #23) printed at the end of a run.

``tests/test_translation.py::test_the_progress_of_the_chinese_edition`` computes the line in the
process that runs it (a pytest-xdist worker under ``make test``) and records it as a property of
its report; the main process prints it here, so it imports nothing of the course itself.

And the course as a wheel, for the tests that install it (``test_shipped.py``, ``test_launch.py``):
``course_wheel``, built once per run, and ``fresh_environment``, a new virtual environment that
has the course's dependencies but not the course.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import pytest

_progress: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _progress.extend(value for name, value in report.user_properties if name == "chinese_edition")


def pytest_terminal_summary(terminalreporter):
    if _progress:
        terminalreporter.write_line(f"Chinese edition (issue #23, see i18n/README.md): {_progress[-1]}")


# -- the course as a wheel, installed elsewhere -----------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# what the wheel is built from: setuptools writes build/ and *.egg-info next to the sources, so a copy
WHEEL_SOURCES = ("pyproject.toml", "README.md", "unet_lib", "data")


def _build_wheel(folder: Path) -> Path:
    tree = folder / "tree"
    tree.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, tree / name)
    # setuptools' build backend, the one `pip wheel` (make wheel) calls, without pip's start-up
    build = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                            "print(build_meta.build_wheel(sys.argv[1]))", str(folder / "dist")],
                           cwd=tree, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-3000:]
    return folder / "dist" / build.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def course_wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once per test run: pytest-xdist's workers share it (the
    first builds it in the run's folder above their own, under a lock; the others wait for it)."""
    from filelock import FileLock   # a dependency of torch

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder = shared / "course-wheel"
    with FileLock(str(shared / "course-wheel.lock")):
        built = sorted((folder / "dist").glob("unet_lib-*.whl"))
        if built:
            return built[0]
        shutil.rmtree(folder, ignore_errors=True)   # what a failed build in another worker left
        return _build_wheel(folder)


@pytest.fixture(scope="session")
def course_dependencies(tmp_path_factory) -> Path:
    """A folder of links to this environment's packages without its own unet_lib (editable) and its
    .pth hooks: the course's dependencies, as an environment that has them (Colab, Binder) has them."""
    deps = tmp_path_factory.mktemp("deps")
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not (entry.name.startswith(("unet_lib", "unet_course_data", "__editable__")) or entry.suffix == ".pth"):
            (deps / entry.name).symlink_to(entry)
    return deps


class Environment(NamedTuple):
    python: Path    # its interpreter
    site: Path      # its own site-packages, empty but for the link to the dependencies
    deps: Path      # the dependencies (course_dependencies)
    environ: dict   # for its processes: no PYTHONPATH, pip kept off every index


@pytest.fixture
def fresh_environment(tmp_path, course_dependencies) -> Environment:
    """A new virtual environment (in tmp_path/fresh) without the course, whose packages are the
    dependencies, on a path behind its own site-packages."""
    folder = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next((folder / "lib").glob("python3*/site-packages"))
    (site / "course-deps.pth").write_text(f"{course_dependencies}\n")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS")}
    environ.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return Environment(folder / "bin" / "python", site, course_dependencies, environ)
