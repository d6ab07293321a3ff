# exports: DetectionPredictor, detect
"""The detection predictor: any infrared file or array in, boxes / scores / labels out, on the shared predictor core
(:class:`unip_hub.engine.predictor.BasePredictor`: each input read once, scaled once with the detector's stored
input scaling and counts calibration).

Two doors, as for segmentation:

* raw inputs -- :meth:`DetectionPredictor.predict` (path, PIL image, numpy array, (H, W) tensor of raw values,
  :class:`~unip_hub.data.frame.Frame`); a float array is raw data (degC, K, ...);
* prepared tensors -- :meth:`DetectionPredictor.predict_torch` (float (B, 3, H, W) in 0..1, the 8-bit gray of the
  input scaling / 255 copied to 3 channels, as :meth:`DetectionPredictor.to_tensor` makes them; the detector
  resizes and normalises them itself).

The model call goes through :meth:`~unip_hub.engine.predictor.BasePredictor.forward`, where an ONNX Runtime
detector (:class:`unip_hub.detection.runtime.OnnxDetector`) plugs in.

>>> from unip_hub.detection import DetectionPredictor, load_detector
>>> found = DetectionPredictor(load_detector("best.pth"), score_thresh=0.5).predict("frame.tiff")
>>> found["boxes"], found["scores"], found["labels"]  # (N, 4) XYXY pixels, (N,), (N,) 0..K-1
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unip_hub.data.frame import Calibration
from unip_hub.data.scaling import InputScaling
from unip_hub.engine.predictor import BasePredictor, ImageLike

__all__ = ["DetectionPredictor", "detect"]

MASK_THRESHOLD = 0.5
"""Mask R-CNN: pixels whose mask probability reaches this belong to the instance."""


class DetectionPredictor(BasePredictor):
    """Runs a detector on raw infrared inputs or on prepared tensors.

    Args:
        detector: A :class:`~unip_hub.detection.models.UnipDetector` (put in eval mode for each call, restored
            after).
        device: Where inputs go; the detector's own device by default.
        scaling: How frames become 8-bit gray; by default the detector's stored ``input_scaling``.
        calibration: How raw data becomes temperatures (units, counts calibration, FLIR object parameters).
        runtime: What runs instead of the detector (an :class:`~unip_hub.detection.runtime.OnnxDetector`).
        score_thresh: Detections scoring below this are dropped (sets the detector's; None: keep its own).
        nms_thresh: IoU of the per-class non-maximum suppression (None: the detector's own).
        max_detections: At most this many detections per image (None: the detector's own).
    """

    def __init__(self, detector: Any, device: str | torch.device | None = None,
                 scaling: InputScaling | str | None = None, calibration: Calibration | None = None,
                 runtime: Any = None, score_thresh: float | None = None, nms_thresh: float | None = None,
                 max_detections: int | None = None) -> None:
        super().__init__(detector, device, scaling, calibration, runtime)
        if score_thresh is not None and not 0.0 <= score_thresh <= 1.0:
            raise ValueError(f"score_thresh must be in [0, 1], got {score_thresh}")
        if nms_thresh is not None and not 0.0 < nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in (0, 1], got {nms_thresh}")
        if max_detections is not None and max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        for name, value in (("score_thresh", score_thresh), ("nms_thresh", nms_thresh),
                            ("detections_per_img", max_detections)):
            if value is not None:
                setattr(detector, name, value)
        if runtime is not None and score_thresh is not None and hasattr(runtime, "score_thresh"):
            runtime.score_thresh = max(float(runtime.score_thresh), float(score_thresh))

    @property
    def detector(self) -> Any:
        return self.model

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def class_names(self) -> list[str]:
        """The detector's class names (``class_<i>`` where it has none)."""
        names = list(getattr(self.model, "class_names", None) or [])
        return [names[i] if i < len(names) else f"class_{i}" for i in range(self.num_classes)]

    def to_tensor(self, gray: np.ndarray) -> torch.Tensor:
        """8-bit gray (H, W) -> float (1, 3, H, W) in 0..1 on the device (the detector normalises it itself)."""
        gray = np.asarray(gray)
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"to_tensor takes the 8-bit gray (H, W) of the input scaling, got {gray.dtype} "
                             f"{gray.shape}")
        x = torch.from_numpy(np.ascontiguousarray(gray)).to(self.device, torch.float32).div_(255)  # (H, W)
        return x.expand(1, 3, *gray.shape)  # (1, 3, H, W): the same gray in the 3 channels

    def forward(self, x: Any) -> Any:
        """The one model call: a list of (3, H, W) images -> one dict per image."""
        return self.model(x) if self.runtime is None else self.runtime(x)

    def predict_torch(self, x: torch.Tensor | list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The prepared door: detections of a float (B, 3, H, W) batch in 0..1 (or a list of (3, H, W) images).

        Returns:
            One dict per image, on the CPU: ``boxes`` (N, 4) float XYXY input pixels, ``scores`` (N,), ``labels``
            (N,) int64 0..K-1 and, for Mask R-CNN, ``masks`` (N, H, W) bool.
        """
        images = list(x) if isinstance(x, (list, tuple)) or (isinstance(x, torch.Tensor) and x.ndim == 4) else None
        if not images or any(not isinstance(im, torch.Tensor) or im.ndim != 3 or im.shape[0] != 3
                             or not im.is_floating_point() for im in images):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{type(self).__name__}.predict_torch takes a float (B, 3, H, W) batch in 0..1 (or a list "
                            f"of (3, H, W) images), got {shape}; raw frames (paths, arrays, PIL images) go through "
                            "predict")
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                found = self.forward([im.to(self.device, torch.float32) for im in images])
        finally:
            model.train(was_training)
        return [_to_cpu(out) for out in found]

    def predict(self, image: ImageLike) -> dict[str, torch.Tensor]:
        """The raw door: the detections of one raw input (see :meth:`predict_torch` for the keys)."""
        return self.predict_torch(self.set_image(image).tensor)[0]


def _to_cpu(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    res = {"boxes": out["boxes"].detach().float().cpu(), "scores": out["scores"].detach().float().cpu(),
           "labels": out["labels"].detach().to(torch.int64).cpu()}
    if "masks" in out:
        res["masks"] = out["masks"].detach().cpu()[:, 0] >= MASK_THRESHOLD  # (N, 1, H, W) probabilities -> (N, H, W)
    return res


def detect(detector: Any, image: ImageLike, **options: Any) -> dict[str, torch.Tensor]:
    """``DetectionPredictor(detector, **options).predict(image)``: the detections of one raw image."""
    return DetectionPredictor(detector, **options).predict(image)
