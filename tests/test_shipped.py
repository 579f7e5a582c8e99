"""Tests for unet_lib.shipped: where the course's files are, in this checkout and in the installed wheel.

The wheel (``course_wheel`` in conftest.py, built once per run and shared with test_launch.py)
must hold every module and every file of data/; installed (not editable) into a fresh environment
that has the dependencies, it is used from a folder outside the repository: every module imports,
every course file loads, and ``unet-predict`` segments a crop of the nuclei image.
"""

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

import unet_lib
from unet_lib import COURSE_CHECKPOINT, course_data_dir, course_file, load_checkpoint, load_real_nuclei
from unet_lib.data import DATA_DIR
from unet_lib.metrics import dice
from unet_lib.shipped import COURSE_DATA

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# the files of the checkout's data/ that the course ships (all of them, but the package's own __init__.py)
SHIPPED = sorted(p.name for p in (ROOT / "data").iterdir() if p.is_file() and p.name != "__init__.py")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _modules() -> list[str]:
    """Every module of the checkout's unet_lib, as dotted names (``__main__`` modules left out:
    importing one runs it)."""
    names = []
    for path in sorted((ROOT / "unet_lib").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


# -- course_file, here (this checkout, installed editable) ------------------------------------

def test_course_file_finds_every_shipped_file_in_the_installed_data_package():
    import unet_course_data

    assert {"README.md", "dsb2018_img2d.npz", "dsb2018_mask2d.npz", "loss_ablation.json", "three_class.json",
            "unet_nuclei.pt", "unet_toycells.pt"} <= set(SHIPPED)
    folder = course_data_dir()
    assert folder == Path(unet_course_data.__file__).parent and COURSE_DATA == "unet_course_data"
    for name in SHIPPED:
        path = course_file(name)
        assert path == folder / name and path.is_file()
    # the public names of before stay, and point at the same files
    assert COURSE_CHECKPOINT == course_file("unet_toycells.pt") and DATA_DIR == folder
    assert unet_lib.course_file is course_file and "course_file" in unet_lib.__all__


def test_a_missing_file_is_named_with_the_files_there_are():
    with pytest.raises(FileNotFoundError, match=r"the course has no file 'unet_cells.pt' \(looked in .*\); its "
                                                r"files: README.md, dsb2018_img2d.npz, .*, unet_toycells.pt$"):
        course_file("unet_cells.pt")
    # a file about to be written (python -m unet_lib.train, the benchmarks)
    assert course_file("new_results.json", must_exist=False) == course_data_dir() / "new_results.json"


@pytest.mark.parametrize("name", ["", ".", "..", "../README.md", "data/unet_nuclei.pt", Path("unet_nuclei.pt"), 3])
def test_a_name_that_is_not_a_file_name_is_refused(name):
    with pytest.raises(ValueError, match=r"name must be the name of one of the course's files, e.g. "
                                         r"'unet_nuclei.pt', got "):
        course_file(name)


def test_without_the_data_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, COURSE_DATA, None)   # as if it were not installed
    with pytest.raises(FileNotFoundError, match=r"the course's files \(the package unet_course_data, the "
                                                r"repository's data/ folder\) are not installed .*pip install"):
        course_file("unet_nuclei.pt")


def test_pyproject_lists_every_package_of_the_checkout():
    """A folder of unet_lib with an __init__.py that is not listed would be left out of the wheel
    (the editable install would hide it: there the folder is found next to its parent)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf8"))["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "unet_lib").rglob("__init__.py")}
    assert packages >= {"unet_lib", "unet_lib.checks", "unet_lib.files", "unet_lib.train"}
    missing = packages - set(tool["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    assert tool["package-dir"] == {"unet_course_data": "data"} and "unet_course_data" in tool["packages"]


# -- the wheel ---------------------------------------------------------------------------------

def test_wheel_holds_every_module_and_every_course_file(course_wheel):
    with zipfile.ZipFile(course_wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "unet_lib").rglob("*.py")}
    course_files = {f"unet_course_data/{name}" for name in SHIPPED + ["__init__.py"]}
    missing = (modules | course_files | {"unet_lib/checks/locale/zh.json"}) - names
    assert not missing, f"not in the wheel: {sorted(missing)} (pyproject.toml: [tool.setuptools] packages, package-data)"
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"unet_lib", "unet_course_data"}   # nothing else
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "unet-predict = unet_lib.predict:main" in entry_points and "unet-train = unet_lib.train:main" in entry_points


INSTALLED = """
import hashlib, importlib, json, sys
from pathlib import Path
import numpy as np
modules = {name: importlib.import_module(name).__file__ for name in json.loads(sys.argv[1])}
import unet_course_data
from unet_lib import COURSE_CHECKPOINT, course_data_dir, course_file, load_checkpoint, load_real_nuclei
from unet_lib.data import DATA_DIR
files = {}
for path in sorted(course_data_dir().iterdir()):
    if path.suffix == ".pt":
        what = repr(load_checkpoint(path).model.config)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            what = {key: list(f[key].shape) for key in f.files}
    elif path.suffix == ".json":
        what = sorted(json.loads(path.read_text()))
    elif path.suffix == ".md":
        what = path.read_text().splitlines()[0]
    else:
        continue
    files[path.name] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "loaded": what}
image, instances = load_real_nuclei()
try:
    course_file("unet_cells.pt")
except FileNotFoundError as error:
    missing = str(error)
print(json.dumps({"modules": modules, "data": unet_course_data.__file__, "checkpoint": str(COURSE_CHECKPOINT),
                  "data_dir": str(DATA_DIR), "files": files, "nuclei": [list(image.shape), int(instances.max())],
                  "missing": missing}))
"""


def test_installed_wheel_works_from_outside_the_repository(tmp_path, course_wheel, fresh_environment):
    fresh = fresh_environment   # tests/conftest.py: dependencies yes, course no
    install = subprocess.run([str(fresh.python), "-m", "pip", "install", "--quiet", str(course_wheel)],
                             capture_output=True, text=True, env=fresh.environ, cwd=tmp_path, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]   # the declared dependencies are all there
    installed_data = fresh.site / COURSE_DATA

    # a file of one's own, outside the repository: a crop of the nuclei image, as stored (uint8)
    outside = tmp_path / "elsewhere"
    (outside / "images").mkdir(parents=True)
    with np.load(course_file("dsb2018_img2d.npz")) as f:
        tifffile.imwrite(outside / "images" / "nuclei.tif", f["image"][:128, :128].astype(np.uint8))
    # the console script and the checks run at once: two processes, each importing torch
    predict = subprocess.Popen([str(fresh.python.parent / "unet-predict"), str(installed_data / "unet_nuclei.pt"),
                                "images", "--out", "labels", "--device", "cpu"], cwd=outside, env=fresh.environ,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = subprocess.run([str(fresh.python), "-c", INSTALLED, json.dumps(_modules())], capture_output=True, text=True,
                         cwd=outside, env=fresh.environ, timeout=300)
    predicted, _ = predict.communicate(timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    # every module imports, from the installed wheel (not the checkout)
    assert sorted(result["modules"]) == _modules()
    assert [m for m, file in result["modules"].items() if not Path(file).is_relative_to(fresh.site)] == []
    # every course file is there, the same bytes, and loads; the public paths point at them
    assert Path(result["data"]).parent == installed_data
    assert result["checkpoint"] == str(installed_data / "unet_toycells.pt")
    assert result["data_dir"] == str(installed_data)
    assert sorted(result["files"]) == SHIPPED
    for name, found in result["files"].items():
        assert found["sha256"] == _sha(ROOT / "data" / name), name
    for name in ("unet_toycells.pt", "unet_nuclei.pt"):
        assert result["files"][name]["loaded"] == repr(load_checkpoint(ROOT / "data" / name).model.config)
    assert result["files"]["dsb2018_img2d.npz"]["loaded"] == {"image": [512, 512]}
    assert result["nuclei"] == [[512, 512], 125]
    assert result["missing"].startswith(f"the course has no file 'unet_cells.pt' (looked in {installed_data})")

    # unet-predict, the installed console script, segments the nuclei
    assert predict.returncode == 0, predicted[-3000:]
    labels = tifffile.imread(outside / "labels" / "nuclei.tif")
    _, instances = load_real_nuclei()
    truth = instances[:128, :128]
    assert labels.shape == (128, 128)
    assert dice(labels > 0, truth > 0) > 0.8
    assert 0.5 * len(np.unique(truth)) <= len(np.unique(labels)) <= 1.5 * len(np.unique(truth))
