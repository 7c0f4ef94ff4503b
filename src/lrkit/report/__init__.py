"""Reports people look at: self-contained HTML pages with interactive plotly figures.

:mod:`lrkit.report.analysis` turns a sweep's records into rankings and a verdict (pure data,
no plotting library); :mod:`lrkit.report.sweep`, :mod:`~lrkit.report.figures` and
:mod:`~lrkit.report.html` render them. plotly is the optional ``report`` extra, imported
only when a page is written; importing this package imports no rendering module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrkit.report.html import Page

__all__ = ["Page"]


def __getattr__(name: str) -> Any:
    if name == "Page":
        from lrkit.report.html import Page

        return Page
    raise AttributeError(f"module 'lrkit.report' has no attribute {name!r}")
