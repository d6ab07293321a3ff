"""The segmentation predictor: any infrared file or array in, class map out (SAM's ``SamPredictor`` split, for UNIP).

:class:`~unip_hub.models.segmenter.Segmenter` takes and returns tensors; this class does everything around it on top
of the shared predictor core (:class:`unip_hub.engine.predictor.BasePredictor`: each input read once, scaled once
with the model's stored input scaling, normalised once) and runs whole-image or sliding-window inference
(:func:`unip_hub.models.slide.infer_logits`) through :meth:`~unip_hub.engine.predictor.BasePredictor.forward`, the one
place the model is called (a compiled model or another runtime plugs in there).

Two doors:

* raw inputs -- :meth:`Predictor.predict` / :meth:`Predictor.predict_logits` (path, PIL image, numpy array, (H, W)
  tensor of raw values, :class:`~unip_hub.data.frame.Frame`); a float array is raw data (degC, K, ...);
* prepared tensors -- :meth:`Predictor.predict_torch` / :meth:`Predictor.logits_torch` (normalised
  ``(B, C_in, H, W)``, as :meth:`Predictor.to_tensor` makes them).

>>> from unip_hub.inference import Predictor
>>> mask = Predictor(seg).predict("frame_16bit.tiff", mode="slide")  # (H, W) int64 class indices
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unip_hub.data.frame import Calibration
from unip_hub.data.scaling import InputScaling
from unip_hub.data.transforms import normalize
from unip_hub.engine.predictor import BasePredictor, ImageLike, Prepared
from unip_hub.models.slide import InferenceOptions, infer_logits

__all__ = ["ImageLike", "Predictor", "Prepared", "predict"]


class Predictor(BasePredictor):
    """Runs a segmenter on raw infrared inputs or on prepared tensors.

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
        super().__init__(segmenter, device, scaling, calibration, runtime)

    @property
    def segmenter(self) -> Any:
        return self.model

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def to_tensor(self, gray: np.ndarray) -> torch.Tensor:
        """8-bit gray (H, W) -> normalised (1, C_in, H, W) on the device (the segmenter's ``mean``/``std``)."""
        seg = self.model
        return normalize(gray, seg.mean, seg.std, seg.backbone.in_chans)[None].to(self.device)

    normalize = to_tensor  # the name the video pipeline and older code use

    def logits_torch(self, x: torch.Tensor, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """The prepared door: eval-mode logits of a normalised batch (B, C_in, H, W) -> (B, K, H, W).

        Args:
            x: Normalised input, as :meth:`to_tensor` makes it.
            options: Mode, windows and rescaling (:class:`~unip_hub.models.slide.InferenceOptions`), or its fields
                as keywords: ``mode="whole" | "slide"``, ``crop_size=512``, ``stride=341``, ``batch_windows=4``,
                ``scale=None`` (UNIP's test pipeline: ``(2048, 512)``).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{type(self).__name__}.logits_torch takes a normalised float (B, C, H, W) tensor, got "
                            f"{shape}; raw frames (paths, arrays, PIL images) go through predict / predict_logits")
        options = options if options is not None else InferenceOptions(**kwargs)
        seg = self.model
        was_training = seg.training
        seg.eval()
        try:
            with torch.no_grad():
                return infer_logits(self.forward, x.to(self.device, torch.float32), seg.num_classes, options,
                                    seg.align_corners)
        finally:
            seg.train(was_training)

    logits_of = logits_torch  # the earlier name

    def predict_torch(self, x: torch.Tensor, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """The prepared door: class maps (B, H, W) int64 on the CPU of a normalised batch (B, C_in, H, W)."""
        return self.logits_torch(x, options, **kwargs).argmax(dim=1).cpu()

    def predict_logits(self, image: ImageLike, options: InferenceOptions | None = None, **kwargs: Any
                       ) -> torch.Tensor:
        """The raw door: eval-mode logits (1, K, H, W) of one raw input at its own size (see :meth:`logits_torch`
        for the options)."""
        return self.logits_torch(self.set_image(image).tensor, options, **kwargs)

    def predict(self, image: ImageLike, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """The raw door: class-index map (H, W) int64 on the CPU of one raw input (see :meth:`logits_torch`)."""
        return self.predict_logits(image, options, **kwargs).argmax(dim=1).cpu()[0]


def predict(segmenter: Any, image: ImageLike, **options: Any) -> torch.Tensor:
    """``Predictor(segmenter).predict(image, **options)``: the class map of one raw image."""
    return Predictor(segmenter).predict(image, **options)
