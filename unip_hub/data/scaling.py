"""The input-scaling spec: how a thermal frame becomes the 8-bit gray a model was trained on, as one named object.

Three specs, written as short strings that travel in segmenter checkpoints (meta ``input_scaling``):

* ``"percentile 0.5/99.5"`` (the default, UNIP's and every older checkpoint's): 8-bit frames as they are; any
  other frame has the 0.5th / 99.5th percentiles of its stored values mapped to 0 / 255
  (:func:`unip_hub.data.read_thermal`'s scaling).
* ``"window 20..120 degC"``: temperatures from ``LOW`` to ``HIGH`` degC mapped linearly to 0..255, clipped; the
  same temperature always gets the same gray, so a model trained this way sees absolute temperature. Needs
  radiometric input.
* ``"8-bit"``: 8-bit frames as they are (camera AGC output); anything else is refused.

:class:`RunningBounds` smooths the percentile bounds over the frames of a video, so the gray levels do not
flicker as the scene's range changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from unip_hub.constants import HIGH_PERCENTILE, LOW_PERCENTILE
from unip_hub.data.radiometric import Calibration, Frame, RadiometricError
from unip_hub.data.readers import percentile_bounds, scale_to_uint8

__all__ = ["DEFAULT_SCALING", "InputScaling", "RunningBounds", "model_reading", "scaling_from_meta"]

KINDS = ("percentile", "window", "8-bit")
_NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_PATTERNS = {
    "percentile": re.compile(rf"percentile\s+{_NUMBER}\s*/\s*{_NUMBER}"),
    "window": re.compile(rf"window\s+{_NUMBER}\s*\.\.\s*{_NUMBER}(?:\s*(?:degc|°c|c))?"),
    "8-bit": re.compile(r"8-?bit(?:\s+as\s+is)?"),
}


@dataclass(frozen=True)
class InputScaling:
    """One input-scaling spec (see the module docstring); ``str()`` gives its canonical text.

    Attributes:
        kind: ``"percentile"``, ``"window"`` or ``"8-bit"``.
        low: Lower percentile (0..100) or window temperature (degC).
        high: Upper percentile or window temperature.
    """

    kind: str = "percentile"
    low: float = LOW_PERCENTILE
    high: float = HIGH_PERCENTILE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"input scaling must be one of {KINDS}, got {self.kind!r}")
        if self.kind != "8-bit" and not self.low < self.high:
            raise ValueError(f"input scaling {self.kind}: low {self.low} must be below high {self.high}")
        if self.kind == "percentile" and not 0 <= self.low < self.high <= 100:
            raise ValueError(f"percentiles must be in 0..100, got {self.low}/{self.high}")

    @classmethod
    def parse(cls, text: str | InputScaling) -> InputScaling:
        """``"percentile 0.5/99.5"``, ``"window 20..120 degC"`` or ``"8-bit"`` (case-insensitive)."""
        if isinstance(text, InputScaling):
            return text
        spec = " ".join(str(text).strip().lower().split())
        for kind, pattern in _PATTERNS.items():
            match = pattern.fullmatch(spec)
            if match:
                return cls("8-bit", 0.0, 0.0) if kind == "8-bit" else cls(kind, *map(float, match.groups()))
        raise ValueError(f"unknown input scaling {text!r}; write 'percentile 0.5/99.5', 'window 20..120 degC' or "
                         "'8-bit'")

    def __str__(self) -> str:
        if self.kind == "percentile":
            return f"percentile {self.low:g}/{self.high:g}"
        if self.kind == "window":
            return f"window {self.low:g}..{self.high:g} degC"
        return "8-bit"

    @property
    def needs_temperatures(self) -> bool:
        return self.kind == "window"

    def bounds(self, frame: Frame) -> tuple[float, float] | None:
        """The values mapped to 0 and 255 for ``frame`` (``None`` for 8-bit data and all-NaN frames)."""
        if frame.is_8bit and self.kind != "window":
            return None
        if self.kind == "percentile":
            return percentile_bounds(self.data(frame), self.low, self.high)
        if self.kind == "window":
            _require_temperatures(frame, self)
            return self.low, self.high
        raise RadiometricError(f"{frame.source}: the model takes 8-bit frames as they are ('8-bit' input scaling), "
                               f"but this is a {frame.kind} frame; pass the camera's 8-bit output")

    def to_gray(self, frame: Frame, bounds: tuple[float, float] | None = None) -> np.ndarray:
        """``frame`` -> uint8 (H, W) gray; ``bounds`` overrides this frame's own (video smoothing)."""
        if frame.is_8bit and self.kind != "window":
            return frame.values
        bounds = bounds if bounds is not None else self.bounds(frame)
        if bounds is None:
            return np.zeros(frame.shape, np.uint8)
        return scale_to_uint8(self.data(frame), *bounds)

    def data(self, frame: Frame) -> np.ndarray:
        """What is scaled: the temperatures for a window, the stored values for percentiles (the same gray as
        scaling the temperatures, up to rounding: every calibration is monotonic, and linear ones exactly)."""
        return frame.celsius if self.kind == "window" and frame.celsius is not None else frame.values


def _require_temperatures(frame: Frame, scaling: InputScaling) -> None:
    if frame.celsius is None:
        raise RadiometricError(
            f"{frame.source}: the model scales temperatures ('{scaling}') but this {frame.kind} frame has none; "
            "pass a radiometric file (R-JPEG, float TIFF/NPY in degC or K) or --counts-to-celsius GAIN OFFSET")


DEFAULT_SCALING = InputScaling()
"""``percentile 0.5/99.5``: what UNIP and every checkpoint without an ``input_scaling`` entry use."""


def scaling_from_meta(value: object) -> InputScaling:
    """The spec stored in a checkpoint's meta (text), or :data:`DEFAULT_SCALING` when absent (older files)."""
    return DEFAULT_SCALING if value in (None, "") else InputScaling.parse(str(value))


def model_reading(model: Any, scaling: InputScaling | str | None = None, calibration: Calibration | None = None
                  ) -> tuple[InputScaling, Calibration]:
    """How ``model`` reads raw frames: ``scaling`` when given, else the ``input_scaling`` it was trained with (the
    default spec when it has none, e.g. a backbone); ``calibration``, with the model's stored counts calibration
    where that gives none. The one rule of the predictor, ``unip eval`` and the int8 calibration frames."""
    scaling = InputScaling.parse(str(scaling)) if scaling is not None else \
        scaling_from_meta(getattr(model, "input_scaling", None))
    calibration = calibration or Calibration()
    stored = getattr(model, "counts_to_celsius", None)  # the checkpoint's counts calibration, unless given
    if calibration.counts_to_celsius is None and stored:
        calibration = replace(calibration, counts_to_celsius=tuple(float(v) for v in stored))
    return scaling, calibration


class RunningBounds:
    """Percentile bounds smoothed over a sequence: ``b_t = m * b_(t-1) + (1 - m) * bounds(frame_t)``.

    Args:
        scaling: The spec; only ``percentile`` bounds are smoothed (a window is fixed, 8-bit needs none).
        momentum: Weight of the past, in [0, 1); 0 = no smoothing.
    """

    def __init__(self, scaling: InputScaling, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.scaling, self.momentum = scaling, momentum
        self.state: tuple[float, float] | None = None

    def smooth(self, bounds: tuple[float, float]) -> tuple[float, float]:
        """Folds this frame's ``bounds`` into the running ones and returns them."""
        if self.state is not None:
            m = self.momentum
            bounds = (m * self.state[0] + (1 - m) * bounds[0], m * self.state[1] + (1 - m) * bounds[1])
        self.state = bounds
        return bounds

    def __call__(self, frame: Frame) -> np.ndarray:
        """The gray frame with the smoothed bounds."""
        bounds = self.scaling.bounds(frame)
        if bounds is None or self.scaling.kind != "percentile":
            return self.scaling.to_gray(frame, bounds)
        return self.scaling.to_gray(frame, self.smooth(bounds))
