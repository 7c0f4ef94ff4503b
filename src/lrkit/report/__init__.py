"""Reports people look at: self-contained HTML pages with interactive plotly figures.

plotly is the optional ``report`` extra, imported only when a page is written.
"""

from lrkit.report.html import Page

__all__ = ["Page"]
