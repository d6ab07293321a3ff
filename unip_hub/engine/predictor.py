"""The predictor core every task shares: a raw input is read once, scaled once and made a model input once.

A task's predictor (segmentation: :class:`unip_hub.inference.Predictor`; detection:
``unip_hub.detection.DetectionPredictor``) subclasses :class:`BasePredictor` and adds two doors, as SAM's predictor
does (``set_image`` / ``set_torch_image``):

* the **raw door** takes what a person has: a path, a PIL image, a numpy array (a float array is raw data, e.g.
  degC, never a normalised input), a 2-D tensor of raw values or a :class:`~unip_hub.data.frame.Frame`; it goes
  :meth:`BasePredictor.read_frame` -> :meth:`BasePredictor.to_gray` (the model's stored input scaling and counts
  calibration) -> :meth:`BasePredictor.to_tensor` (the task's tensor form) exactly once (:meth:`set_image`);
* the **prepared door** (``predict_torch``) takes that tensor form and only runs the model: no guessing from dtype
  or shape whether an input was already prepared.

:meth:`BasePredictor.forward` is the one model call; a compiled model or another runtime (ONNX Runtime, int8)
plugs in there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unip_hub.data.frame import Calibration, Frame
from unip_hub.data.scaling import InputScaling, model_reading

__all__ = ["BasePredictor", "ImageLike", "Prepared"]

ImageLike = str | os.PathLike | np.ndarray | torch.Tensor | Frame | Any  # Any: PIL.Image.Image (not imported here)


@dataclass
class Prepared:
    """One raw input after the single pass: what was read, what the model sees, and its tensor.

    Attributes:
        frame: The frame as read (stored values; temperatures where the data holds them).
        gray: uint8 (H, W): the frame in the model's input scaling.
        tensor: (1, C, H, W) on the predictor's device: the task's model input.
    """

    frame: Frame
    gray: np.ndarray
    tensor: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input."""
        return tuple(self.gray.shape[:2])  # type: ignore[return-value]


class BasePredictor:
    """Reads raw infrared inputs for a model, once each (see the module docstring).

    Args:
        model: The model (``input_scaling`` / ``counts_to_celsius`` attributes, as its checkpoint stored them).
        device: Where inputs go; the model's own device by default.
        scaling: How frames become 8-bit gray; by default the model's stored ``input_scaling``, else
            ``"percentile 0.5/99.5"``.
        calibration: How raw data becomes temperatures (units, counts calibration, FLIR object parameters); the
            model's stored counts calibration fills in where this gives none.
        runtime: What :meth:`forward` calls instead of the model (e.g. ONNX Runtime from
            :func:`unip_hub.runtime.load_runtime`).
    """

    def __init__(self, model: Any, device: str | torch.device | None = None,
                 scaling: InputScaling | str | None = None, calibration: Calibration | None = None,
                 runtime: Any = None) -> None:
        self.model = model
        self.runtime = runtime
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.scaling, self.calibration = model_reading(model, scaling, calibration)

    def read_frame(self, image: ImageLike) -> Frame:
        """Any raw input -> its :class:`~unip_hub.data.frame.Frame` (stored values, temperatures if any).

        Raises:
            TypeError: A tensor with more than two dimensions (a prepared batch belongs in ``predict_torch``).
        """
        from unip_hub.data.radiometric import read_radiometric

        if isinstance(image, Frame):
            return image
        if isinstance(image, torch.Tensor):
            if image.ndim != 2:
                raise TypeError(f"a {tuple(image.shape)} tensor is not a raw frame: pass a (H, W) tensor of raw "
                                f"values, or a prepared (B, C, H, W) batch to {type(self).__name__}.predict_torch")
            image = image.detach().cpu().numpy()
        return read_radiometric(image, self.calibration)

    def to_gray(self, frame: Frame, bounds: tuple[float, float] | None = None) -> np.ndarray:
        """``frame`` -> uint8 (H, W) in the model's input scaling; ``bounds`` overrides the frame's own
        percentile bounds (bounds smoothed over a video, or computed once for a whole raster)."""
        return self.scaling.to_gray(frame, bounds)

    def to_tensor(self, gray: np.ndarray) -> torch.Tensor:
        """uint8 gray (H, W) -> the task's model input (1, C, H, W) on the device."""
        raise NotImplementedError(f"{type(self).__name__} must define to_tensor")

    def set_image(self, image: ImageLike) -> Prepared:
        """The raw door: read, scale and convert ``image`` once."""
        frame = self.read_frame(image)
        gray = self.to_gray(frame)  # (H, W) uint8
        return Prepared(frame, gray, self.to_tensor(gray))

    def prepare(self, image: ImageLike) -> torch.Tensor:
        """Any raw input -> the model input (1, C, H, W) (:meth:`set_image`'s tensor)."""
        return self.set_image(image).tensor

    def read(self, image: ImageLike) -> np.ndarray:
        """Any raw input -> the uint8 gray (H, W) the model sees."""
        return self.to_gray(self.read_frame(image))

    def forward(self, x: Any) -> Any:
        """The one model call, through ``runtime`` when given."""
        return self.model(x) if self.runtime is None else self.runtime(x)
