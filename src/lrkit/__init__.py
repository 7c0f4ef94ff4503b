"""lrkit: the learning-rate toolkit for PyTorch.

>>> import lrkit
>>> res = lrkit.find_lr(model, optimizer, loader, criterion)  # doctest: +SKIP
>>> res.suggestion                                           # doctest: +SKIP
"""

from lrkit import suggest
from lrkit.finder import FinderResult, find_lr

__all__ = ["FinderResult", "find_lr", "suggest"]
__version__ = "0.1.0"
