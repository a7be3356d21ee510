"""Notebooks 00-05 as a student runs them: JupyterLab in Chromium (Playwright), default parameters, Run All.

Fails on any error output, a traceback on stderr, a widget that does not render ("Error displaying widget"), a
table cut off at the page's right edge, a panel value cut off in its box; clicks the configuration panel (02) and
the chat sandbox (03). On failure a screenshot and the executed notebook are kept in runs/browser-test/.
`make browser-test` installs Chromium (Debian) and Playwright and runs this; not part of `make test` (see README).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[2]
ALL = ("00_setup", "01_data_exploration", "02_lora_training", "03_generation", "04_judging", "05_analysis")
# BROWSER_NOTEBOOKS=00_setup,01_data_exploration runs a prefix while working on the test; the default is all six
NOTEBOOKS = tuple(n for n in os.environ.get("BROWSER_NOTEBOOKS", ",".join(ALL)).split(",") if n)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
KEPT = REPO / "runs" / "browser-test"  # screenshots and executed notebooks of a failed run
NOTEBOOK_TIMEOUT_S = int(os.environ.get("BROWSER_NOTEBOOK_TIMEOUT_S", "1800"))
WIDGET_ERRORS = ("Error displaying widget", "model not found")
# BROWSER_SET='{"max_steps": 2}' overrides parameters (a line after the parameters cell, as papermill injects them)
# where a notebook declares them; the default, {}, is what a student runs: every notebook at its own defaults
OVERRIDES = json.loads(os.environ.get("BROWSER_SET", "{}"))


def with_overrides(path: Path) -> None:
    """Append `name = value` for each override the notebook's parameters cell declares (papermill's rule)."""
    if not OVERRIDES:
        return
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    declared = {ln.split("=")[0].strip() for ln in cell.source.splitlines() if "=" in ln.split("#")[0]}
    lines = [f"{k} = {v!r}" for k, v in OVERRIDES.items() if k in declared]
    if lines:
        cell.source += "\n# BROWSER_SET overrides\n" + "\n".join(lines)
        nbformat.write(nb, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebooks, its runs in a temporary folder, fresh settings; yields its URL."""
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", work)
        with_overrides(work / f"{name}.ipynb")
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell stays in the page (JupyterLab otherwise drops cells out of sight, and their widgets, from the DOM)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "EM_RUNS_DIR": str(root / "runs"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "EM_KIT_CACHE": os.environ.get("EM_KIT_CACHE", str(REPO / ".cache" / "em-kit")),
           "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces")}
    env.pop("OPENAI_API_KEY", None)  # the offline course: no key, as a new student has none
    log = open(root / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", "--ServerApp.allow_root=True",
                               f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={work}", "--LabApp.news_url=",
                               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        if server.poll() is not None:
            break
        try:
            if requests.get(f"{url}/api/status", params={"token": token}, timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
    yield {"url": url, "token": token, "work": work, "root": root}
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def page(lab, tmp_path_factory):
    """One Chromium tab (headless, fresh profile), logged in to the server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                       executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                       viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)  # a loaded 2-core machine draws JupyterLab slowly
        tab.goto(f"{lab['url']}/lab?token={lab['token']}", timeout=180_000)
        tab.wait_for_selector(".jp-LauncherBody, .jp-DirListing", timeout=120_000)
        yield tab
        context.close()


def test_notebooks_run_in_jupyterlab_as_a_student_runs_them(lab, page):
    """00-05 in order on their defaults, each with Run All; then the panel (02) and the sandbox (03) are clicked."""
    times = {}
    start = time.monotonic()
    for name in NOTEBOOKS:
        began = time.monotonic()
        try:
            open_notebook(page, lab, name)
            run_all(page)
            saved = save_and_read(page, lab, name)
            assert_no_errors(page, saved, name)
            if name == "01_data_exploration":
                browse_the_examples(page)
            if name == "02_lora_training":
                edit_the_panel_and_train_again(page)
            if name == "03_generation":
                ask_the_sandbox(page)
        except BaseException:
            keep_evidence(page, lab, name)
            raise
        finally:
            close_all_tabs(page)
            shut_down_kernels(lab)
        times[name] = time.monotonic() - began
        print(f"{name}: {times[name]:.0f} s", flush=True)
    print(f"all six notebooks in JupyterLab: {(time.monotonic() - start) / 60:.1f} min", flush=True)


# ---------------------------------------------------------------- driving JupyterLab

IDLE_JS = "() => /ipykernel\\) \\| Idle\\b/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')"

def open_notebook(page, lab, name: str) -> None:
    """Open it; pick the kernel when asked (committed notebooks name none); wait until the kernel is idle."""
    page.goto(f"{lab['url']}/lab/tree/{name}.ipynb?token={lab['token']}", timeout=180_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for button in (page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True),
                       page.get_by_role("button", name="No", exact=True)):  # "get notified about Jupyter news?"
            if button.count():
                button.first.click()
        if page.evaluate(IDLE_JS):
            return
        page.wait_for_timeout(1000)
    pytest.fail(f"{name}: the kernel did not start within 5 minutes")


def run_all(page) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_timeout(2000)
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-InputArea-prompt')].map(e => e.textContent);"
        f" return !p.some(t => t.includes('*')) && ({IDLE_JS})(); }}",
        timeout=NOTEBOOK_TIMEOUT_S * 1000, polling=1000)
    page.wait_for_timeout(1500)  # the last outputs and widget views settle


def save_and_read(page, lab, name: str):
    page.locator(".jp-Notebook:visible").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    page.wait_for_timeout(2000)
    return nbformat.read(lab["work"] / f"{name}.ipynb", as_version=4)


def assert_no_errors(page, nb, name: str) -> None:
    """No error output, no traceback on stderr, every cell ran, no widget failed to render or rendered empty, no table
    or value cut off."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code, 1):
        for out in cell.outputs:
            if out.output_type == "error":
                pytest.fail(f"{name}, code cell {i}: {out.ename}: {out.evalue}")
            if out.output_type == "stream" and "Traceback (most recent call last)" in out.text:
                pytest.fail(f"{name}, code cell {i}: a traceback on {out.name}:\n{out.text[-1500:]}")
    not_run = [i for i, c in enumerate(code, 1) if c.execution_count is None and c.source.strip()]
    assert not not_run, f"{name}: code cells {not_run} did not run"
    text = "\n".join(page.locator(".jp-Notebook:visible .jp-OutputArea-output").all_inner_texts())
    for bad in WIDGET_ERRORS:
        assert bad not in text, f"{name}: {bad!r} shown in the notebook"
    empty = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output > .jupyter-widgets')]"
                          ".filter(e => e.getBoundingClientRect().height < 1).length")
    assert not empty, f"{name}: {empty} widget(s) rendered empty"
    cut = page.evaluate(CUT_OFF_JS)
    assert not cut, f"{name}: cut off at the right, no scrolling: {cut}"


# A table wider than its output area with no scrolling box around it, or a text box whose value does not fit.
CUT_OFF_JS = """() => {
  const out = [];
  for (const t of document.querySelectorAll('.jp-OutputArea-output table')) {
    const area = t.closest('.jp-OutputArea-output');
    if (t.getBoundingClientRect().right <= area.getBoundingClientRect().right + 1) continue;
    let e = t.parentElement, scrolls = false;
    while (e && e !== area.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if ((o === 'auto' || o === 'scroll') && e.clientWidth < e.scrollWidth + 1) { scrolls = true; break; }
      e = e.parentElement;
    }
    if (!scrolls) out.push('table: ' + (t.innerText || '').slice(0, 60).replace(/\\s+/g, ' '));
  }
  for (const i of document.querySelectorAll('.jp-OutputArea-output input[type=text]')) {
    if (i.scrollWidth > i.clientWidth + 1) out.push('text box: ' + i.value.slice(0, 60));
  }
  return out;
}"""


def browse_the_examples(page) -> None:
    """Pick another domain in the example browser: the example shown changes."""
    browser = page.locator(".widget-vbox", has=page.locator(".widget-dropdown")).last
    before = browser.locator(".widget-html").inner_text()
    browser.locator(".widget-dropdown select").select_option(index=1)
    page.wait_for_function("([e, t]) => e.innerText !== t", arg=[browser.locator(".widget-html").element_handle(), before],
                           timeout=30_000)


def edit_the_panel_and_train_again(page) -> None:
    """Edit epochs in the panel: the confirmation shows in sight; training again ends in one line with the fix."""
    row = page.locator(".widget-hbox", has=page.locator(".widget-label", has_text=re.compile(r"^epochs$"))).first
    box = row.locator("input").first
    old = int(box.input_value())
    box.fill(str(old + 1))
    box.press("Enter")
    status = page.locator(".widget-html", has_text=f"epochs = {old + 1}").first
    status.wait_for(timeout=30_000)
    row.scroll_into_view_if_needed()
    assert status.is_visible() and _in_view(page, status), "the panel's confirmation line is out of sight"
    train_cell = page.locator(".jp-CodeCell", has_text="result = train(cfg").first
    train_cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    output = train_cell.locator(".jp-OutputArea")
    page.wait_for_function("(e) => e.innerText.includes('RunFinishedError')", arg=output.element_handle(),
                           timeout=120_000)
    text = output.inner_text()
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 2, text
    assert "overwrite" in text and "run_name" in text, text


def ask_the_sandbox(page) -> None:
    """Press Ask both: both answer boxes fill, no error in the panel."""
    page.get_by_role("button", name="Ask both").click()
    page.wait_for_function(
        "() => !document.body.innerText.includes('no answer yet') && !document.body.innerText.includes('generating...')",
        timeout=300_000, polling=1000)
    panel = page.locator(".widget-vbox", has=page.get_by_role("button", name="Ask both")).last.inner_text()
    assert "error:" not in panel, panel
    assert "(empty answer)" not in panel, panel


def _in_view(page, locator) -> bool:
    box, height = locator.bounding_box(), page.viewport_size["height"]
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height


def close_all_tabs(page) -> None:
    """File > Close All Tabs (discarding the panel edit of 02), so the next notebook is the only one in the page."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Close All Tabs$")).click()
    for _ in range(3):
        discard = page.locator(".jp-Dialog").get_by_role("button", name=re.compile(r"^(Discard|Don't Save)$"))
        try:
            discard.first.click(timeout=3000)
        except PlaywrightTimeout:
            break


def shut_down_kernels(lab) -> None:
    """Each notebook's kernel holds its models: shut it down before the next opens."""
    params = {"token": lab["token"]}
    for kernel in requests.get(f"{lab['url']}/api/kernels", params=params, timeout=10).json():
        requests.delete(f"{lab['url']}/api/kernels/{kernel['id']}", params=params, timeout=30)


def keep_evidence(page, lab, name: str) -> None:
    """A full-page screenshot and the notebook as it stood, in runs/browser-test/."""
    KEPT.mkdir(parents=True, exist_ok=True)
    shot = KEPT / f"{name}.png"
    try:
        error = page.locator(".jp-Notebook:visible .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        if error.count():
            error.first.scroll_into_view_if_needed()  # the first error in sight (JupyterLab scrolls inside itself)
        page.screenshot(path=str(shot), full_page=True)
        page.keyboard.press("Control+s")
        page.wait_for_timeout(1500)
        shutil.copy(lab["work"] / f"{name}.ipynb", KEPT / f"{name}.ipynb")
    except Exception as e:  # noqa: BLE001 - evidence is best effort; the failure itself is raised by the caller
        print(f"could not keep all evidence: {e}")
    print(f"screenshot: {shot.relative_to(REPO)}", flush=True)
