"""The website's sources (site/build.py), the CI definitions and the README's commands without make.

Cheap checks that run in ``make test``: what ``site/build.py`` stages for Jupyter Book (no build
here: ``make site`` builds, and tests/site_pages.py opens every built page in Chromium); that
``.github/workflows/ci.yml`` runs what ``.ci/run`` runs; that the README's plain commands are the
ones ``make lab`` and ``make test`` run (``make -n`` is the oracle).
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from unet_lib import launch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(launch.NOTEBOOK_GLOB))


def _load_builder():
    spec = importlib.util.spec_from_file_location("site_build", ROOT / "site" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_builder()
SOURCE = launch.read_source(ROOT / "pyproject.toml")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """The book's sources staged from copies of the notebooks that carry their launch cells."""
    tmp = tmp_path_factory.mktemp("site")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    for path in NOTEBOOKS:
        nb = launch.with_launch_cells(nbformat.read(path, as_version=4), SOURCE, f"notebooks/{path.name}")
        nbformat.write(nb, notebooks / path.name)
    static = tmp / "static"
    for asset in (build.MATHJAX_JS, build.REQUIRE_JS, build.WIDGETS_JS):
        (static / asset).parent.mkdir(parents=True, exist_ok=True)
        (static / asset).write_text("// stands for the npm package's file\n")
    (static / "assets.json").write_text("[]")
    out = tmp / "src"
    names = build.stage(out, static, notebooks_dir=notebooks)
    return out, names


def test_stage_lists_the_notebooks_in_course_order(staged):
    out, names = staged
    assert names == [p.stem for p in NOTEBOOKS] and len(names) == 12
    toc = yaml.safe_load((out / "_toc.yml").read_text())
    assert toc == {"format": "jb-book", "root": "intro", "chapters": [{"file": f"notebooks/{n}"} for n in names]}


def test_staged_notebooks_keep_outputs_and_widget_state_but_not_the_generated_cells(staged):
    out, _ = staged
    for path in NOTEBOOKS:
        original = nbformat.read(path, as_version=4)
        page = nbformat.read(out / "notebooks" / path.name, as_version=4)
        assert all(launch.GENERATED_TAG not in c.metadata.get("tags", []) for c in page.cells)
        kept = [c for c in original.cells if launch.GENERATED_TAG not in c.metadata.get("tags", [])]
        assert page.cells == kept, path.name                      # outputs included
        assert page.metadata.get("widgets") == original.metadata.get("widgets"), path.name


def test_landing_page_is_the_readme_overview_with_each_notebook_linked(staged):
    out, names = staged
    intro = (out / "intro.md").read_text(encoding="utf8")
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    title, overview, table = build.readme_sections(readme)
    assert intro.startswith(f"# {title}\n\n{build.repository_links(overview, SOURCE)}\n")
    # the README's link to the Chinese README leads to the repository's file, not to a missing page
    assert f"]({SOURCE.repository}/blob/{SOURCE.tag}/README.zh-CN.md)" in intro
    assert "](README" not in intro
    for name in names:
        assert f"| [`{name}`](notebooks/{name}.ipynb) |" in intro
    assert f"({launch.colab_url(SOURCE, 'notebooks/' + names[0] + '.ipynb')})" in intro
    assert f"({launch.binder_url(SOURCE, 'notebooks/' + names[0] + '.ipynb')})" in intro


def test_landing_page_refuses_a_readme_without_the_table():
    with pytest.raises(build.SiteError, match="README.md has no '## The notebooks' section"):
        build.landing_page("# x\n\ntext\n\n## Other\n", ["01_a"], SOURCE)
    with pytest.raises(build.SiteError, match="README.md's notebook table does not name 02_b"):
        build.landing_page("# x\n\n## The notebooks\n\n| `01_a` | a |\n", ["01_a", "02_b"], SOURCE)


ZH = build.Edition("zh_CN", "zh/notebooks", "README.zh-CN.md", "zh", "标题", "中文", table_heading="## 笔记本",
                   run_heading="## 运行", run_text="[Colab]({colab}) [Binder]({binder}) [README]({readme})")


def test_a_second_edition_gets_its_own_folder_launch_paths_and_a_language_switch():
    english = build.EDITIONS[0]
    assert build.language_switch(english, [english]) == ""
    assert build.language_switch(english, [english, ZH]) == '<p class="language-switch"><a href="zh/intro.html">中文</a></p>'
    assert build.language_switch(ZH, [english, ZH]) == '<p class="language-switch"><a href="../intro.html">English</a></p>'
    assert build.config(SOURCE, ZH)["sphinx"]["config"]["html_theme_options"]["path_to_docs"] == "zh"
    assert build.config(SOURCE, english)["sphinx"]["config"]["html_theme_options"]["path_to_docs"] == ""
    page = build.landing_page("# 课程\n\n概述。\n\n## 笔记本\n\n| `01_a` | a |\n", ["01_a"], SOURCE, ZH, "<p>switch</p>")
    assert page.startswith("# 课程\n\n<p>switch</p>\n\n概述。\n\n## 运行\n\n")
    assert f"[Colab]({launch.colab_url(SOURCE, 'zh/notebooks/01_a.ipynb')})" in page
    assert f"[README]({SOURCE.repository}/blob/{SOURCE.tag}/README.zh-CN.md)" in page
    assert "| [`01_a`](notebooks/01_a.ipynb) |" in page


def test_relative_links_of_the_readme_lead_to_the_repository_at_the_tag():
    text = "[a](INSTRUCTORS.md), [b](README.md#licence), [c](https://x.org), [d](#here), [e](notebooks/01_a.ipynb)"
    blob = f"{SOURCE.repository}/blob/{SOURCE.tag}"
    assert build.repository_links(text, SOURCE) == (f"[a]({blob}/INSTRUCTORS.md), [b]({blob}/README.md#licence), "
                                                    "[c](https://x.org), [d](#here), [e](notebooks/01_a.ipynb)")


# -- the Chinese edition (issue #23) ---------------------------------------------------------------

CHINESE = next(e for e in build.EDITIONS if e.language == "zh_CN")
ZH_NOTEBOOKS = sorted((ROOT / CHINESE.notebooks).glob(launch.NOTEBOOK_GLOB))


def test_the_site_has_both_editions_the_chinese_one_in_zh():
    assert [(e.language, e.notebooks, e.readme, e.folder) for e in build.EDITIONS] == [
        ("en", "notebooks", "README.md", ""), ("zh_CN", "zh/notebooks", "README.zh-CN.md", "zh")]
    assert build.language_switch(build.EDITIONS[0], list(build.EDITIONS)) == \
        '<p class="language-switch"><a href="zh/intro.html">中文</a></p>'
    assert build.language_switch(CHINESE, list(build.EDITIONS)) == \
        '<p class="language-switch"><a href="../intro.html">English</a></p>'


@pytest.fixture(scope="module")
def staged_zh(tmp_path_factory):
    if not ZH_NOTEBOOKS:
        pytest.skip("no Chinese notebooks in zh/notebooks yet")
    tmp = tmp_path_factory.mktemp("site-zh")
    static = tmp / "static"
    for asset in (build.MATHJAX_JS, build.REQUIRE_JS, build.WIDGETS_JS):
        (static / asset).parent.mkdir(parents=True, exist_ok=True)
        (static / asset).write_text("// stands for the npm package's file\n")
    out = tmp / "src"
    names = build.stage(out, static, CHINESE, switch=build.language_switch(CHINESE, list(build.EDITIONS)))
    return out, names


def test_the_chinese_edition_stages_its_notebooks_with_a_chinese_landing_page(staged_zh):
    out, names = staged_zh
    assert names == [p.stem for p in ZH_NOTEBOOKS]
    assert all((ROOT / "notebooks" / f"{n}.ipynb").is_file() for n in names)   # the English ones' names
    intro = (out / "intro.md").read_text(encoding="utf8")
    title, overview, _ = build.readme_sections((ROOT / CHINESE.readme).read_text(encoding="utf8"),
                                               CHINESE.table_heading)
    assert intro.startswith(f"# {title}\n\n" + '<p class="language-switch"><a href="../intro.html">English</a></p>'
                            f"\n\n{build.repository_links(overview, SOURCE)}\n\n## 运行笔记本\n\n")
    for name in names:
        assert f"| [`{name}`](notebooks/{name}.ipynb) |" in intro
    first = f"zh/notebooks/{names[0]}.ipynb"
    assert f"[Colab]({launch.colab_url(SOURCE, first)})" in intro
    assert f"[Binder]({launch.binder_url(SOURCE, first)})" in intro
    assert f"[中文README]({SOURCE.repository}/blob/{SOURCE.tag}/README.zh-CN.md)" in intro
    config = yaml.safe_load((out / "_config.yml").read_text(encoding="utf8"))
    assert config["sphinx"]["config"]["language"] == "zh_CN"
    assert config["sphinx"]["config"]["html_theme_options"]["path_to_docs"] == "zh"   # launch buttons: zh/notebooks/
    page = nbformat.read(out / "notebooks" / f"{names[0]}.ipynb", as_version=4)
    assert "set_language(\"zh\")" in "".join(c.source for c in page.cells if c.cell_type == "code")


def test_the_chinese_readme_names_every_notebook_and_keeps_the_english_commands():
    readme = (ROOT / "README.zh-CN.md").read_text(encoding="utf8")
    _, _, table = build.readme_sections(readme, CHINESE.table_heading)
    assert [p.stem for p in NOTEBOOKS] == re.findall(r"(?m)^\| `(\w+)` \|", table)
    for language in ("bash", "powershell"):   # the commands without make: the English README's, kept equal to the Makefile
        assert _readme_block(language, "README.zh-CN.md", "不用make") == _readme_block(language)
    first = "zh/notebooks/01_intuition.ipynb"
    assert f"]({launch.colab_url(SOURCE, first)})" in readme and f"]({launch.binder_url(SOURCE, first)})" in readme
    assert f'pip install "{SOURCE.requirement}"' in readme
    for command in ("make lab LAB_DIR=zh/notebooks", "make lab LAB_DIR=zh/exercises", 'set_language("zh")'):
        assert command in readme
    english = (ROOT / "README.md").read_text(encoding="utf8")
    assert "[README.zh-CN.md](README.zh-CN.md)" in english.split("\n## ", 1)[0]   # pointed to from the top


def test_config_serves_everything_from_the_site_and_launches_at_the_tag(staged):
    out, _ = staged
    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    sphinx = config["sphinx"]["config"]
    assert sphinx["html_static_path"] == ["_assets"] and not (out / "_static").exists()
    for path in [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]:
        assert not re.match(r"[a-z]+:|//", path), path              # relative: no host
        assert (out / "_assets" / path).is_file(), path
    assert list(sphinx["nb_ipywidgets_js"]) == [build.REQUIRE_JS, build.WIDGETS_CONFIG_JS, build.WIDGETS_JS]
    assert "sphinx_thebe" not in sphinx["extensions"] and "myst_nb" in sphinx["extensions"]
    theme = sphinx["html_theme_options"]
    assert (theme["repository_url"], theme["repository_branch"]) == (SOURCE.repository, SOURCE.tag)
    assert theme["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert theme["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert theme["launch_buttons"]["notebook_interface"] == "jupyterlab"
    # every address in the configuration is a link for the reader, none a file the page loads
    addresses = set(re.findall(r"https?://[^\"' ]+", json.dumps(config)))
    assert addresses == {SOURCE.repository, "https://mybinder.org", "https://colab.research.google.com"}


def test_every_asset_the_pages_load_is_in_a_pinned_package():
    folders = {a.folder: a for a in build.ASSETS}
    for path in (build.MATHJAX_JS, build.REQUIRE_JS, build.WIDGETS_JS):
        folder, _, inner = path.partition("/")
        asset = folders[folder]
        assert inner.startswith(asset.keep) and not inner.startswith(asset.drop), path
    for asset in build.ASSETS:
        assert re.fullmatch(r"\d+\.\d+\.\d+", asset.version), asset
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", asset.integrity), asset


def test_a_tarball_that_is_not_the_published_one_is_refused(tmp_path):
    npm = tmp_path / "npm"   # stands for npm: "packs" a tarball with other content
    npm.write_text("#!/bin/sh\n"
                   "for last; do :; done\n"
                   "printf 'not mathjax' > \"$last/mathjax-3.2.2.tgz\"\n")
    npm.chmod(0o755)
    with pytest.raises(build.SiteError, match=r"mathjax-3.2.2.tgz has sha512-.*, but the registry published "
                                              r"sha512-Bt\+SSVU8"):
        build.fetch_assets(tmp_path / "cache", str(npm))
    assert not (tmp_path / "cache" / "static" / "assets.json").exists()


def test_a_missing_npm_is_named(tmp_path):
    with pytest.raises(build.SiteError, match=r"npm could not fetch mathjax@3.2.2 .*apt-get install npm"):
        build.fetch_assets(tmp_path / "cache", str(tmp_path / "no-npm"))


# -- CI: the workflow runs what .ci/run runs -------------------------------------------------------

def _ci_run() -> tuple[list[str], dict[str, str]]:
    text = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in text.splitlines() if re.match(r"\s*make\b", line)]
    env = dict(re.findall(r"(?m)^export (\w+)=(\S+)", text))
    return commands, env


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())


def test_workflow_runs_the_same_make_targets_as_ci_run_with_the_same_environment():
    commands, env = _ci_run()
    assert commands == ["make test", "make wheel", "make site", "make site-test"]
    assert env == {"UNET_REQUIRE_BROWSER": "1", "OMP_NUM_THREADS": "1"}
    job = _workflow()["jobs"]["test"]
    assert {k: str(v) for k, v in job["env"].items()} == env
    steps = [s["run"].strip() for s in job["steps"] if "run" in s and s.get("name") != "browser"]
    assert steps == commands
    assert all("env" not in s for s in job["steps"])   # no step changes the environment


def test_only_the_browser_installation_differs():
    browser = next(s for s in _workflow()["jobs"]["test"]["steps"] if s.get("name") == "browser")["run"]
    assert "playwright install --with-deps chromium" in browser and "/usr/bin/chromium" in browser
    assert "apt-get install -y --no-install-recommends chromium" in (ROOT / ".ci" / "run").read_text()
    uploads = [s["with"]["path"] for s in _workflow()["jobs"]["test"]["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "_build/site" in uploads and "dist/*.whl" in uploads


def test_site_pages_is_run_by_make_site_test_and_not_collected_by_make_test():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"(?m)^site-test:.*\n\t\$\(BIN\)/python -m pytest tests/site_pages\.py$", makefile)
    assert not Path("site_pages.py").match("test_*.py")   # pytest's default python_files


# -- the README's commands without make ------------------------------------------------------------

def _make_commands(*targets: str) -> list[str]:
    """What ``make`` runs for ``targets`` in a fresh checkout (``-n -B``: print, run nothing)."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine: the README's commands are checked against the Makefile where it is")
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", *targets, "ROOT_FLAG=", "PYTHON=python3"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commands = []
    for line in out.splitlines():
        line = re.sub(r"^test -x \S+ \|\| ", "", line.strip())          # "create it if missing": just create it
        line = line.replace("${OMP_NUM_THREADS:-1}", "1")
        if line and not line.startswith("touch ") and line not in commands:
            commands.append(line)
    return commands


def _readme_block(language: str, readme_name: str = "README.md", heading: str = "Without make") -> list[str]:
    readme = (ROOT / readme_name).read_text(encoding="utf8")
    section = re.search(rf"(?ms)^### {heading}\n(.*?)(?=^##)", readme)
    assert section, f"{readme_name} has no '### {heading}' section"
    block = re.search(rf"(?ms)^```{language}\n(.*?)^```", section[1])
    assert block, f"no ```{language} block in {readme_name}'s '{heading}'"
    return [line for line in block[1].splitlines() if line and not line.startswith("#")]


def test_readme_commands_without_make_are_the_makefiles():
    expected = _make_commands("lab", "test")
    assert _readme_block("bash") == expected
    # Windows: the same commands with Scripts\ for bin/ and PowerShell's way to set a variable
    windows = [re.sub(r"^OMP_NUM_THREADS=1 (.*)$", r"$env:OMP_NUM_THREADS = 1; \1", c)
               .replace("python3 -m venv", "python -m venv").replace(".venv/bin/", ".venv\\Scripts\\")
               for c in expected]
    assert _readme_block("powershell") == windows
