"""Driving a JupyterLab notebook page the way a person does: open, wait for the kernel, Run All."""

from __future__ import annotations

import re
from typing import Any

#: The status bar reads this once the kernel exists and is idle. Before that the notebook's
#: execution indicator already says "idle", and a Run All clicked then is silently dropped.
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"

#: True once every code cell has an execution count, or as soon as a cell shows a traceback
#: (Run All stops there: the cells after it would never get a count).
_ALL_EXECUTED = """() => {
    const prompts = Array.from(
        document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'));
    const errors = Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .some(e => /Traceback \\(most recent call last\\)/.test(e.textContent));
    return errors || (prompts.length > 0
        && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim())));
}"""

_ERRORS = """() => Array.from(document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
        + '.jp-OutputArea-output.jp-mod-error, '
        + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
    .map(e => e.textContent)
    .filter(t => /Traceback|Error|Exception/.test(t))"""


def open_notebook(page: Any, lab: Any, name: str, *, timeout_ms: float = 60_000) -> None:
    """Open ``name`` in JupyterLab and wait until its kernel has started and is idle."""
    page.goto(lab.notebook_url(name))
    page.locator(".jp-Notebook").first.wait_for(timeout=timeout_ms)
    current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
    current.filter(has_text=re.compile(f"^{re.escape(name)}$")).wait_for(timeout=timeout_ms)
    assert page.locator(".jp-NotebookPanel").count() == 1, "another notebook is open too"
    kernel_idle(page).wait_for(timeout=timeout_ms)


def kernel_idle(page: Any) -> Any:
    """The status bar item that reads ``Python 3 (ipykernel) | Idle``."""
    return page.locator(".jp-StatusBar-Widget").get_by_text(KERNEL_IDLE, exact=True)


def run_all(page: Any) -> None:
    """Run > Run All Cells, through the menu bar."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def wait_all_executed(page: Any, *, timeout_ms: float = 90_000) -> None:
    """Wait until every code cell shows an execution count (or one shows a traceback) and the
    kernel is idle again."""
    page.wait_for_function(_ALL_EXECUTED, timeout=timeout_ms, polling=200)
    kernel_idle(page).wait_for(timeout=timeout_ms)


def error_outputs(page: Any) -> list[str]:
    """Texts of stderr and error outputs that carry a traceback or an error name."""
    return list(page.evaluate(_ERRORS))


def notebook_text(page: Any) -> str:
    """The visible text of the notebook panel."""
    return str(page.locator(".jp-NotebookPanel").first.inner_text())


def screenshot(page: Any, path: Any, *, height: int = 1500) -> None:
    """Save a screenshot with a tall viewport, notebook scrolled to the top, so it fits."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").first.evaluate(
            "e => { e.scrollTop = 0; }"
        )
        page.wait_for_timeout(300)  # let the notebook re-lay out its cells
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)
