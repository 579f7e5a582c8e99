"""End-to-end: notebook 09's feature-map explorer in JupyterLab, in a real (headless) browser.

The test starts everything itself and stops it again, also when it fails: a JupyterLab server
on 127.0.0.1 with a random token, whose files, settings and runtime state all live in a
temporary directory (the notebook is copied there, so the checkout is never written), and
Debian's Chromium driven by the Python ``playwright`` package (``executable_path``: a browser
download is impossible here, and Playwright's own browsers are not needed). It runs all cells,
waits until the kernel is idle and the explorer is drawn, moves the channel slider with the
keyboard and picks another layer, and checks that the feature-map picture really changed
(screenshots, not labels).

Where Chromium or playwright cannot be had, the test is skipped with the reason; with
``UNET_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead, so CI cannot skip it silently.
Each wait is bounded; the whole test takes about 20-40 s.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "09_feature_map_explorer.ipynb"
CHROMIUM = "/usr/bin/chromium"   # Debian's package; `apt-get install chromium`
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SERVER_START_S = 60      # JupyterLab answers /api/status
RUN_ALL_S = 90           # all cells of notebook 09 have run (it loads a checkpoint; no training)
STEP_S = 20              # one interaction is reflected in the page


def browser_unavailable(reason: str):
    if os.environ.get("UNET_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; UNET_REQUIRE_BROWSER=1 says this machine must run the browser test")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of notebook 09: yields (base_url, token)."""
    root, settings = tmp_path / "root", tmp_path / "app-settings"
    root.mkdir()
    settings.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    # windowingMode none: every cell is rendered, also those below the fold of the headless window;
    # no news or update checks: the server and browser need nothing from the internet
    (settings / "overrides.json").write_text(json.dumps({
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    }))
    token, port = secrets.token_hex(24), free_port()
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), IPYTHONDIR=str(tmp_path / "ipython"))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}", f"--LabApp.app_settings_dir={settings}",
               "--LabApp.expose_app_in_browser=True"]   # window.jupyterapp: run commands, read the model
    if os.geteuid() == 0:
        command.append("--allow-root")   # JupyterLab refuses to run as root without it (CI, containers)
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)   # its own process group: the kernel goes with it
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log_tail(tmp_path)}")
            try:
                with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log_tail(tmp_path)}")
            time.sleep(0.25)
        yield base_url, token
    finally:
        stop(server)
        log.close()


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (JupyterLab shuts its kernels down), then SIGKILL the whole group if needed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    try:
        os.killpg(process.pid, signal.SIGKILL)   # the group this test created: a kernel left behind
    except ProcessLookupError:
        pass


def log_tail(tmp_path: Path, n: int = 4000) -> str:
    return (tmp_path / "jupyterlab.log").read_text(errors="replace")[-n:]


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the Python package playwright is not installed (pip install -r requirements.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        browser_unavailable(f"no Chromium at {CHROMIUM}; install Debian's package: apt-get install chromium "
                            f"(.ci/run does)")
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                                  timeout=30_000)
        except Exception as error:   # missing shared libraries, a broken install: no browser to test with
            browser_unavailable(f"Chromium at {CHROMIUM} does not start: {str(error).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


NOTEBOOK_JS = "window.jupyterapp.shell.currentWidget"

KERNEL_IDLE_JS = f"""() => {{
    const panel = window.jupyterapp && {NOTEBOOK_JS};   // undefined until JupyterLab has started
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
                   && panel.sessionContext.session.kernel;
    return !!kernel && kernel.status === 'idle';
}}"""

ERRORS_JS = f"""() => {{
    const errors = [];
    for (const cell of {NOTEBOOK_JS}.content.widgets) {{
        if (cell.model.type !== 'code') continue;
        for (const output of cell.model.outputs.toJSON()) {{
            if (output.output_type === 'error') errors.push(output.ename + ': ' + output.evalue);
        }}
    }}
    return errors;
}}"""

IMAGE_SHOWN_JS = """([selector, old]) => {
    const img = document.querySelector(selector);
    return !!img && img.src !== old && img.complete && img.naturalWidth > 0;
}"""


def test_explorer_runs_and_responds_in_jupyterlab(browser, jupyterlab, tmp_path):   # no server without a browser
    base_url, token = jupyterlab
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(STEP_S * 1000)
    try:
        explore(page, base_url, token)
    except BaseException:
        # what the page looked like, kept in pytest's temporary directory next to jupyterlab.log
        try:
            page.screenshot(path=tmp_path / "failure.png", full_page=True, timeout=10_000)
            print(f"screenshot of the page: {tmp_path / 'failure.png'}")
        except Exception as error:   # a crashed page: keep the original failure
            print(f"no screenshot: {error}")
        print(f"server log: {tmp_path / 'jupyterlab.log'}")
        raise


def explore(page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/lab/tree/{NOTEBOOK.name}?reset&token={token}", wait_until="domcontentloaded",
              timeout=SERVER_START_S * 1000)
    page.wait_for_function(KERNEL_IDLE_JS, timeout=SERVER_START_S * 1000)

    # Run > Run All Cells; the command's promise resolves when the last cell has run
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(KERNEL_IDLE_JS, timeout=RUN_ALL_S * 1000)
    assert page.evaluate(ERRORS_JS) == []

    fmap = "img.unet-explorer-fmap"
    page.wait_for_function(IMAGE_SHOWN_JS, arg=[fmap, ""])
    explorer = page.locator(".unet-explorer")
    assert explorer.count() == 1 and explorer.is_visible()
    for part in ("input", "pred", "grid"):
        assert page.locator(f"img.unet-explorer-{part}").evaluate("img => img.naturalWidth > 0")

    def change(action) -> bytes:
        """Do ``action``, wait until the feature map is redrawn, return its new screenshot."""
        old = page.locator(fmap).get_attribute("src")
        action()
        page.wait_for_function(IMAGE_SHOWN_JS, arg=[fmap, old])
        return page.locator(fmap).screenshot()

    channel = page.locator(".unet-explorer-channel")
    readout = channel.locator(".widget-readout")
    stats = page.locator(".unet-explorer-stats")
    first, first_stats = page.locator(fmap).screenshot(), stats.inner_text()
    start = int(readout.inner_text())

    # the channel slider, moved with the keyboard as a learner would
    channel.locator(".noUi-handle").focus()
    moved = change(lambda: page.keyboard.press("ArrowRight"))
    assert int(readout.inner_text()) == start + 1
    assert moved != first                                   # the picture really changed
    assert stats.inner_text() != first_stats

    # another layer: the bottleneck, in the middle of the U's 2 * depth + 2 blocks (by position,
    # not by label), has more channels and a coarser map
    layer = page.locator(".unet-explorer-layer select")
    bottleneck = (layer.locator("option").count() - 2) // 2
    before_stats = stats.inner_text()
    other = change(lambda: layer.select_option(index=bottleneck))
    assert other != moved
    assert stats.inner_text() != before_stats
    assert page.evaluate(ERRORS_JS) == []
