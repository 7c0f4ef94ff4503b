"""One range test's bookkeeping, shared by every engine: :class:`CurveTracker`.

It smooths the loss (bias-corrected EMA), keeps the best smoothed loss, applies the stop
rule (a NaN/inf loss, or the smoothed loss above ``diverge_threshold`` × its best) and
writes the stop messages. The engines only train and report losses to it.
"""

from __future__ import annotations

import math

from lrkit.finder.result import Curve
from lrkit.suggest import Ema

__all__ = ["CurveTracker"]


class CurveTracker:
    """Records one range test into :attr:`curve`; :attr:`running` is False once it stopped."""

    def __init__(self, smooth: float, diverge_threshold: float, with_val: bool = False) -> None:
        self.curve = Curve([], [], [], [] if with_val else None)
        self.ema = Ema(smooth)
        self.best = math.inf
        self.diverge_threshold = diverge_threshold
        self.running = True

    def stop(self, step: int, reason: str) -> None:
        self.curve.stop_reason = reason
        self.curve.stop_step = step
        self.running = False

    def finite(self, step: int, lr: float, loss: float) -> bool:
        """Whether ``loss`` is finite; a NaN/inf loss stops the test here, unrecorded."""
        if not math.isfinite(loss):
            self.stop(step, f"non-finite loss ({loss}) at step {step} (lr={lr:.3g})")
        return self.running

    def record(self, step: int, lr: float, loss: float, val_loss: float | None = None) -> float:
        """Add a point (a finite ``loss``); stop when the smoothed loss diverged. Returns the
        smoothed loss."""
        smoothed = self.ema.update(loss)
        self.curve.lrs.append(lr)
        self.curve.losses.append(loss)
        self.curve.smoothed.append(smoothed)
        if self.curve.val_losses is not None and val_loss is not None:
            self.curve.val_losses.append(val_loss)
        self.best = min(self.best, smoothed)
        if smoothed > self.diverge_threshold * self.best:
            self.stop(
                step,
                f"diverged at step {step} (lr={lr:.3g}): smoothed loss {smoothed:.4g} > "
                f"{self.diverge_threshold:g} × best {self.best:.4g}",
            )
        return smoothed

    def scaler_gave_up(self, step: int, skipped: int) -> bool:
        """Whether AMP's GradScaler skipped too many steps in a row (then the test stops)."""
        if skipped > 50:
            self.stop(step, f"GradScaler skipped 50 steps in a row at step {step}")
        return not self.running
