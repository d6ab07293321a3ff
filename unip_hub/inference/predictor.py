"""The predictor: any infrared file or array in, class map out (SAM's ``SamPredictor`` split, for UNIP).

:class:`~unip_hub.models.segmenter.Segmenter` takes and returns tensors; this class does everything around it:
reading the input (path, PIL image, numpy array or tensor in any format of :func:`unip_hub.data.read_thermal`,
plus radiometric files: :func:`unip_hub.data.radiometric.read_radiometric`), scaling it to 8-bit gray with the
input-scaling spec the model was trained with (:class:`unip_hub.data.scaling.InputScaling`), normalising it with
the segmenter's mean/std, and running whole-image or sliding-window inference
(:func:`unip_hub.models.slide.infer_logits`) through :meth:`Predictor.forward`, the one place the model is
called (a compiled model or another runtime plugs in there).

>>> from unip_hub.inference import Predictor
>>> mask = Predictor(seg).predict("frame_16bit.tiff", mode="slide")  # (H, W) int64 class indices
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from unip_hub.data.radiometric import Calibration, Frame, read_radiometric
from unip_hub.data.scaling import InputScaling, model_reading
from unip_hub.data.transforms import normalize
from unip_hub.models.slide import InferenceOptions, infer_logits

__all__ = ["ImageLike", "Predictor", "predict"]

ImageLike = str | os.PathLike | np.ndarray | torch.Tensor | Any  # Any: PIL.Image.Image (not imported here)


class Predictor:
    """Runs a segmenter on raw infrared inputs.

    Args:
        segmenter: A :class:`~unip_hub.models.segmenter.Segmenter` (put in eval mode for each call, restored after).
        device: Where inputs go; the segmenter's own device by default.
        scaling: How frames become 8-bit gray; by default the segmenter's own ``input_scaling`` (what it was
            trained with, from its checkpoint), else ``"percentile 0.5/99.5"``.
        calibration: How raw data becomes temperatures (units, counts calibration, FLIR object parameters).
        runtime: What :meth:`forward` calls instead of the segmenter, e.g. ONNX Runtime int8 from
            :func:`unip_hub.runtime.load_runtime`.
    """

    def __init__(self, segmenter: Any, device: str | torch.device | None = None,
                 scaling: InputScaling | str | None = None, calibration: Calibration | None = None,
                 runtime: Any = None) -> None:
        self.segmenter = segmenter
        self.runtime = runtime
        self.device = torch.device(device) if device is not None else next(segmenter.parameters()).device
        self.scaling, self.calibration = model_reading(segmenter, scaling, calibration)

    @property
    def num_classes(self) -> int:
        return self.segmenter.num_classes

    def read_frame(self, image: ImageLike) -> Frame:
        """Any supported input -> the :class:`~unip_hub.data.radiometric.Frame` (values, temperatures if any)."""
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        return read_radiometric(image, self.calibration)

    def read(self, image: ImageLike) -> np.ndarray:
        """Any supported input -> the 8-bit gray frame (H, W) the model sees, with :attr:`scaling`."""
        return self.scaling.to_gray(self.read_frame(image))

    def prepare(self, image: ImageLike) -> torch.Tensor:
        """Any supported input -> normalised model input (B, C_in, H, W) on the device.

        A floating tensor (C_in, H, W) or (B, C_in, H, W) is taken as already normalised; anything else is read
        (:meth:`read`) and normalised with the segmenter's ``mean``/``std``.
        """
        c_in = self.segmenter.backbone.in_chans
        if isinstance(image, torch.Tensor) and image.is_floating_point() and image.ndim in (3, 4) \
                and image.shape[-3] == c_in:
            x = image if image.ndim == 4 else image[None]
            return x.to(device=self.device, dtype=torch.float32)
        return self.normalize(self.read(image))

    def normalize(self, gray: np.ndarray) -> torch.Tensor:
        """8-bit gray (H, W) -> normalised (1, C_in, H, W) on the device."""
        seg = self.segmenter
        return normalize(gray, seg.mean, seg.std, seg.backbone.in_chans)[None].to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model call: normalised (n, C_in, h, w) -> logits (n, K, h, w), through ``runtime`` when given."""
        return self.segmenter(x) if self.runtime is None else self.runtime(x)

    @torch.no_grad()
    def predict_logits(self, image: ImageLike, options: InferenceOptions | None = None, **kwargs: Any
                       ) -> torch.Tensor:
        """Eval-mode logits (B, K, H, W) at the image's own size.

        Args:
            image: Path, PIL image, numpy array or tensor (see :meth:`prepare`).
            options: Mode, windows and rescaling (:class:`~unip_hub.models.slide.InferenceOptions`), or its fields
                as keywords: ``mode="whole" | "slide"``, ``crop_size=512``, ``stride=341``, ``batch_windows=4``,
                ``scale=None`` (UNIP's test pipeline: ``(2048, 512)``).
        """
        options = options if options is not None else InferenceOptions(**kwargs)
        return self.logits_of(self.prepare(image), options)

    def logits_of(self, x: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
        """Eval-mode logits of a prepared batch (B, C_in, H, W) -> (B, K, H, W)."""
        seg = self.segmenter
        was_training = seg.training
        seg.eval()
        try:
            with torch.no_grad():
                return infer_logits(self.forward, x, seg.num_classes, options, seg.align_corners)
        finally:
            seg.train(was_training)

    def predict(self, image: ImageLike, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """Class-index map: (H, W) int64 on the CPU ((B, H, W) for a batched tensor); see :meth:`predict_logits`."""
        labels = self.predict_logits(image, options, **kwargs).argmax(dim=1).cpu()
        return labels if isinstance(image, torch.Tensor) and image.ndim == 4 else labels[0]


def predict(segmenter: Any, image: ImageLike, **options: Any) -> torch.Tensor:
    """``Predictor(segmenter).predict(image, **options)``: the class map of one image."""
    return Predictor(segmenter).predict(image, **options)
