"""The documentation site: it builds with ``--strict``, covers the API and every schedule, its
getting-started example runs, and its pages show their content in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser import CHROMIUM_FLAGS, chromium_or_skip, colored_fraction, non_blank_fraction

import lrkit
from lrkit import schedules as S

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GALLERY_BLOCK = re.compile(r"^```schedule[^\n]*\n(.*?)\n```", re.M | re.S)


def gallery_specs() -> list[str]:
    return [m[1].strip() for m in GALLERY_BLOCK.finditer((DOCS / "schedules.md").read_text())]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once per session exactly as ``make docs`` builds it (the build takes
    the sweeps page's report screenshot with headless Chromium, so it needs one)."""
    chromium_or_skip()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert not warnings, "\n".join(warnings)
    return out


def test_site_builds_strict_with_a_figure_per_gallery_entry(site: Path) -> None:
    figures = sorted((site / "img" / "gallery").glob("*.png"))
    assert len(figures) == len(gallery_specs())
    assert all(f.stat().st_size > 5_000 for f in figures)  # a plotted figure, not an empty one
    assert (site / "reference" / "finder" / "index.html").exists()


def test_sweeps_page_shows_a_screenshot_of_a_real_report(site: Path) -> None:
    """The build ran a sweep, rendered its report and photographed it: the page links both,
    the live report is lrkit's (its verdict and figures), and the picture is not blank."""
    shot, live = site / "img" / "report" / "report.png", site / "img" / "report" / "report.html"
    page = (site / "sweeps" / "index.html").read_text()
    assert "../img/report/report.png" in page and "../img/report/report.html" in page
    html = live.read_text()
    assert "digits-mlp" in html and "Verdict" in html and "LR sensitivity" in html
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert non_blank_fraction(shot) > 0.02  # text and figures, not an empty page
    assert colored_fraction(shot) > 0.003  # plotly drew its coloured lines (text is grey)


def test_gallery_plots_every_schedule_name() -> None:
    plotted = {re.match(r"\w+", spec)[0] for spec in gallery_specs()}  # type: ignore[index]
    missing = sorted(set(S.names()) - plotted)
    assert not missing, f"docs/schedules.md has no ```schedule block for {missing}"


def test_api_reference_documents_every_public_name() -> None:
    text = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: lrkit\.(\w+)", text, re.M))
    missing = sorted(set(lrkit.__all__) - documented)
    assert not missing, f"add '::: lrkit.NAME' to a page of docs/reference/ for {missing}"


def test_frameworks_page_carries_the_readme_sections() -> None:
    """docs/frameworks.md is README's "In your framework" (and its framework schedules), so a
    page that fell back to a placeholder or lost a section fails here."""
    page = (DOCS / "frameworks.md").read_text()
    headings = set(re.findall(r"^## (.+)$", page, re.M))
    wanted = {"Lightning", "Hugging Face", "accelerate", "Logging", "timm"}
    missing = sorted((wanted | {"Schedules from your framework"}) - headings)
    assert not missing, f"docs/frameworks.md lacks the sections {missing}"
    readme = (ROOT / "README.md").read_text()
    for name in sorted(wanted):  # each section's first code block is the README's
        block = re.search(rf"^### {name}\n.*?```python\n(.*?)```", readme, re.M | re.S)
        assert block is not None and block[1] in page, f"{name}: README's example not on the page"
    assert "placeholder" not in page


def test_getting_started_example_runs() -> None:
    index = (DOCS / "index.md").read_text()
    code = re.search(r"```python\n(.*?)\n```", index, re.S)[1]  # type: ignore[index]
    assert "find_lr" in code and "fit(" in code
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/index.md", "exec"), namespace)
    assert namespace["res"].suggestion is not None
    assert namespace["history"].epochs[-1]["accuracy"] > 0.9  # the page says about 99%


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    """The built site over HTTP, as it is published (search and directory URLs need it)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    browser_path, driver_path = chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_window_size(1280, 1600)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, url: str, screenshot: Path) -> dict[str, Any]:
    """Load ``url``, wait for its images, screenshot it; return what a reader would see."""
    driver.get(url)
    driver.set_script_timeout(30)
    info: dict[str, Any] = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const started = Date.now();
        (function poll() {
          const imgs = [...document.querySelectorAll('.md-content img')];
          if (imgs.every(i => i.complete) || Date.now() - started > 20000) {
            done({title: document.title,
                  h1: (document.querySelector('.md-content h1') || {}).textContent || '',
                  text: document.querySelector('.md-content').innerText,
                  images: imgs.map(i => [i.getAttribute('src'), i.naturalWidth]),
                  navLinks: document.querySelectorAll('.md-nav__link').length});
          } else { setTimeout(poll, 100); }
        })();
        """
    )
    driver.save_screenshot(str(screenshot))
    info["errors"] = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return info


def test_index_shows_the_two_commands_and_the_quick_start(
    server: str, browser: Any, tmp_path: Path
) -> None:
    page = open_page(browser, server, tmp_path / "index.png")
    assert page["errors"] == []
    assert page["title"].startswith("lrkit")
    assert "make demo" in page["text"] and "make test" in page["text"]
    assert "lrkit.find_lr(" in page["text"] and "lrkit.fit(" in page["text"]
    assert page["navLinks"] >= 10  # the nav lists the job pages and the reference
    assert non_blank_fraction(tmp_path / "index.png") > 0.05


def test_gallery_shows_every_schedule_plotted(server: str, browser: Any, tmp_path: Path) -> None:
    page = open_page(browser, server + "schedules/", tmp_path / "gallery.png")
    assert page["errors"] == []
    gallery = [(src, w) for src, w in page["images"] if "img/gallery/" in src]
    assert len(gallery) == len(gallery_specs())
    not_loaded = [src for src, width in gallery if width == 0]
    assert not not_loaded, f"images that did not load: {not_loaded}"
    for name in S.names():
        assert f"sched = S.{name}(" in page["text"]


def test_api_page_shows_find_lr_signature_and_docstring(
    server: str, browser: Any, tmp_path: Path
) -> None:
    page = open_page(browser, server + "reference/finder/", tmp_path / "api.png")
    assert page["errors"] == []
    text = page["text"]
    assert "find_lr(" in text
    for part in ("model: Module", "num_steps: int = 100", "end_lr: float = 10.0", "FinderResult"):
        assert part in text, part
    assert "Run the LR range test" in text  # the docstring, rendered
    assert ":func:" not in text and ":data:" not in text  # reST roles became code spans
    assert ">>> >>>" not in text
