"""Headless Chromium for tests that look at a page as a person would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1280,2400",
)


def chromium_or_skip() -> tuple[str, str]:
    """Paths of chromium and chromedriver; skip locally without them, fail in CI."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "headless Chromium not installed (make test installs Debian's chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def render(page: Path, screenshot: Path, tmp: Path) -> dict[str, Any]:
    """Open ``page`` in headless Chromium; return console errors, plot stats, screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(page.resolve().as_uri())
        driver.set_script_timeout(30)
        # Wait until plotly has drawn every figure (each gets an SVG with its traces).
        stats = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const started = Date.now();
            (function poll() {
              const plots = [...document.querySelectorAll('.js-plotly-plot')];
              const marks = '.main-svg .scatterlayer .trace, .main-svg .parcoords';
              const drawn = plots.filter(p => p.querySelector(marks));
              if ((plots.length && drawn.length === plots.length) || Date.now() - started > 20000) {
                done({plots: plots.length, drawn: drawn.length,
                      traces: drawn.map(p => p.querySelectorAll('.trace').length),
                      parcoords: document.querySelectorAll('.main-svg .parcoords').length,
                      tables: document.querySelectorAll('table').length,
                      title: document.title});
              } else { setTimeout(poll, 100); }
            })();
            """
        )
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 100, 6000))
        stats["rects"] = driver.execute_script(
            """return [...document.querySelectorAll('.js-plotly-plot')].map(p => {
                 const r = p.getBoundingClientRect();
                 return [r.left, r.top + window.scrollY, r.width, r.height]; });"""
        )
        driver.save_screenshot(str(screenshot))
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    errors = [entry for entry in logs if entry.get("level") == "SEVERE"]
    return {"errors": errors, **stats}


def non_blank_fraction(png: Path, rect: list[float] | None = None) -> float:
    """Fraction of the pixels of a screenshot (or of ``rect``: x, y, w, h) that are not white."""
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(str(png))[..., :3]
    if rect is not None:
        x, y, w, h = (int(v) for v in rect)
        pixels = pixels[y : y + h, x : x + w]
    if pixels.size == 0:
        return 0.0
    return float(np.mean(pixels.min(axis=-1) < 0.9))


def colored_fraction(png: Path) -> float:
    """Fraction of the pixels of a screenshot in colour (not white, grey or black): the plots'
    lines and markers, which a page whose figures failed to draw lacks."""
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(str(png))[..., :3]
    return float(np.mean(pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3))
