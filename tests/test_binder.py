"""binder/: the repo2docker configuration behind the "Launch Binder" badges.

mybinder.org cannot be reached from here, so its files are checked: the Python version is one
the package supports, torch is the CPU build of requirements.txt's version (a Binder session has no
GPU and about 2 GB of memory), everything else comes from requirements.txt, the package is
installed as ``make`` installs it, and the session starts with one torch thread.
"""

import os
import re
import subprocess
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _lines(path: Path) -> list[str]:
    return [line.split("  #")[0].strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_binder_holds_the_files_repo2docker_reads():
    assert sorted(p.name for p in BINDER.iterdir()) == ["postBuild", "requirements.txt", "runtime.txt", "start"]
    for script in ("postBuild", "start"):   # repo2docker runs them: executable, in git too
        assert os.access(BINDER / script, os.X_OK), script
        mode = subprocess.run(["git", "ls-files", "-s", f"binder/{script}"], cwd=ROOT, capture_output=True,
                              text=True).stdout.split()
        assert not mode or mode[0] == "100755", f"binder/{script} is not executable in git ({mode[0]})"


def test_runtime_is_a_python_the_package_supports():
    version = re.fullmatch(r"python-(\d+\.\d+)", (BINDER / "runtime.txt").read_text().strip())
    assert version, "runtime.txt must say python-X.Y"
    pyproject = (ROOT / "pyproject.toml").read_text()
    requires = re.search(r'(?m)^requires-python = "(.*)"$', pyproject)[1]
    assert SpecifierSet(requires).contains(version[1] + ".0")


def test_torch_is_the_cpu_build_of_requirements_version_and_the_rest_is_requirements_txt():
    lines = _lines(BINDER / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch = [Requirement(line) for line in lines if line.startswith("torch")]
    assert len(torch) == 1
    pinned = next(Requirement(line) for line in _lines(ROOT / "requirements.txt") if line.startswith("torch"))
    (spec,) = torch[0].specifier
    (course,) = pinned.specifier
    assert spec.operator == course.operator == "=="
    assert spec.version == f"{course.version}+cpu"                       # the CPU wheel of the same version
    assert pinned.specifier.contains(spec.version)                       # so requirements.txt's pin agrees
    assert "-r ../requirements.txt" in lines                             # relative to binder/, as pip reads it
    assert (BINDER / "../requirements.txt").resolve() == ROOT / "requirements.txt"
    assert len(lines) == 3


def test_post_build_installs_the_package_as_make_does():
    commands = _lines(BINDER / "postBuild")
    makefile = (ROOT / "Makefile").read_text()
    make_install = re.search(r"(?m)^\t\$\(BIN\)/python (-m pip install --no-deps -e \.)$", makefile)[1]
    assert commands == ["set -euo pipefail", f"python {make_install}"]


def test_start_sets_one_thread_and_runs_the_server():
    text = (BINDER / "start").read_text()
    assert text.startswith("#!/bin/bash\n")
    out = subprocess.run(["bash", str(BINDER / "start"), "bash", "-c", "echo $OMP_NUM_THREADS"],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                              if k != "OMP_NUM_THREADS"}, check=True).stdout
    assert out.strip() == "1"
    out = subprocess.run(["bash", str(BINDER / "start"), "bash", "-c", "echo $OMP_NUM_THREADS"],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="3"), check=True)
    assert out.stdout.strip() == "3"                                     # a setting of the session wins
