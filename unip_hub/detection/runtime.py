"""Detectors in ONNX Runtime: export (torchvision's detectors through the legacy tracer) and a runner.

>>> export_detector_onnx(det, "det.onnx", size=(512, 640))     # verified against the eager model
>>> run = OnnxDetector("det.onnx")                              # same outputs as UnipDetector in eval mode
>>> run([image])[0]["boxes"]
>>> OnnxDetector(quantize_detector_onnx("det.onnx", "det-int8.onnx"))   # int8 MatMuls (dynamic quantisation)

All four heads (Faster R-CNN, Mask R-CNN, RetinaNet, FCOS) export with ``torch.onnx.export(dynamo=False)`` at opset
17: the whole detector -- resize, normalisation, padding to 32, ViT, pyramid, anchors, box decoding, NMS -- is one
graph of one (3, H, W) image with dynamic H and W, so boxes come back in input pixels. (The dynamo exporter does
not take torchvision's data-dependent post-processing.) ``score_thresh``, ``nms_thresh`` and
``detections_per_img`` are fixed in the graph at export time; the runner's ``score_thresh`` can only raise the
first. The detector's config travels in the file's metadata (``unip_detector``), so the runner knows the head,
the labels and the model's input reading (``input_scaling``, ``counts_to_celsius``) from the file alone.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from unip_hub.detection.checkpoint import detector_meta
from unip_hub.detection.models import UnipDetector
from unip_hub.export.exporters import ExportError
from unip_hub.layers.pos_embed import resample_with_matrices
from unip_hub.utils.atomic import atomic_path

__all__ = ["DEFAULT_OPSET", "ExportError", "OnnxDetector", "detection_difference", "export_detector_onnx",
           "quantize_detector_onnx"]

DEFAULT_OPSET = 17
META_KEY = "unip_detector"


def _eager_cpu(model: UnipDetector) -> UnipDetector:
    """``model`` in eval mode as float32 on the CPU (a copy when it is elsewhere; the caller's model stays put)."""
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).float().cpu()
    return model.eval()


def detection_difference(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor], floor: float = 0.0) -> float:
    """Largest difference between two detection sets of one image, matched one to one.

    Every detection scoring at least ``floor`` in either set is paired with the closest detection of the same label
    in the other set (max over box coordinates and score); detections near ``floor`` may be missing from the other
    set (a rounding difference decides them). Returns ``inf`` when a detection has no partner.
    """
    worst = 0.0
    for a, b in ((ref, got), (got, ref)):
        for box, score, label in zip(a["boxes"], a["scores"], a["labels"], strict=True):
            if score < floor:
                continue
            same = b["labels"] == label
            if not same.any():
                return float("inf")
            d = torch.maximum((b["boxes"][same] - box).abs().amax(dim=1), (b["scores"][same] - score).abs())
            worst = max(worst, float(d.min()))
    return worst


def export_detector_onnx(model: UnipDetector, path: str | os.PathLike, size: tuple[int, int] = (512, 640), *,
                         opset: int = DEFAULT_OPSET, check: bool = True, atol: float = 1e-3) -> Path:
    """Exports a detector in eval mode to ONNX (one image (3, H, W) in 0..1 -> its detections), atomically.

    Args:
        model: The detector (any device / dtype: a float32 CPU copy is exported).
        path: The ``.onnx`` file to write.
        size: (H, W) of the example image; any other size runs too (H and W are dynamic).
        opset: ONNX opset (>= 11 for torchvision's detectors).
        check: Run the file in onnxruntime on the example image and compare with the eager model before keeping it.
        atol: Largest accepted difference of boxes (pixels) and scores.

    Raises:
        ExportError: the exporter failed or the graph disagrees with the eager model (nothing is written).
    """
    import onnx

    eager = _eager_cpu(model)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, int(size[0]), int(size[1]), generator=gen)
    with torch.no_grad():
        keys = list(eager.detector([x])[0])  # torchvision's output order: boxes, labels, scores / boxes, scores, ...
    meta = {**detector_meta(eager), "label_offset": eager.label_offset, "score_thresh": eager.score_thresh,
            "nms_thresh": eager.nms_thresh, "detections_per_img": eager.detections_per_img,
            "export_size": [int(size[0]), int(size[1])]}
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with torch.no_grad(), warnings.catch_warnings(), resample_with_matrices():
                warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic: verified below
                torch.onnx.export(eager.detector, ([x],), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=["image"], output_names=keys, dynamic_axes={"image": [1, 2]})
        except Exception as e:
            raise ExportError(f"torch.onnx.export of the {eager.head_type} detector failed: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from e
        graph = onnx.load(str(tmp))
        onnx.helper.set_model_props(graph, {META_KEY: json.dumps(meta)})
        onnx.save(graph, str(tmp))
        if check:
            with torch.no_grad():
                ref = eager([x])[0]
            err = detection_difference(ref, OnnxDetector(tmp)([x])[0], floor=eager.score_thresh + 0.01)
            if err > atol:
                raise ExportError(f"the exported detector's detections differ from the eager model's by {err:.3g} "
                                  f"(> atol {atol}) on the example image")
    return path


def quantize_detector_onnx(src: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The int8 variant of an exported detector: onnxruntime's dynamic quantisation of the MatMuls (the ViT's
    linear layers and attention products, int8 weights, activations quantised per call), written atomically.

    The convolutions (pyramid, FPN, heads) stay float; the metadata (config, labels, thresholds) is kept, so
    :class:`OnnxDetector` runs the result as it runs ``src``. Measured on UNIP-S Faster R-CNN at 640 x 512 on a
    2-thread Xeon: 1.3x the speed of the fp32 graph (docs/detection.md).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    with atomic_path(path) as tmp:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    return path


class OnnxDetector:
    """An exported detector in ONNX Runtime: ``(images) -> list of dict(boxes, scores, labels[, masks])`` as
    :class:`~unip_hub.detection.models.UnipDetector` gives in eval mode (labels 0..K-1, input pixels).

    Args:
        path: A file written by :func:`export_detector_onnx`.
        threads: Intra-op threads (default: torch's).
        providers: onnxruntime execution providers (default: CPU).

    Attributes:
        num_classes, class_names, input_scaling, counts_to_celsius, config: as the exported detector's.
        score_thresh: Detections scoring below it are dropped (at least the threshold fixed in the graph).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("running an ONNX detector needs onnxruntime: pip install 'unip[export]'") from e
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX detector {path} does not exist; write it with export_detector_onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        self.session = ort.InferenceSession(str(path), opts, providers=list(providers or ["CPUExecutionProvider"]))
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if not raw:
            raise ValueError(f"{path} has no {META_KEY!r} metadata: it was not written by export_detector_onnx")
        meta = json.loads(raw)
        self.path = path
        self.config: dict[str, Any] = meta
        self.num_classes = int(meta["num_classes"])
        self.class_names = meta.get("class_names")
        self.input_scaling = meta.get("input_scaling")
        self.counts_to_celsius = meta.get("counts_to_celsius")
        self.label_offset = int(meta["label_offset"])
        self.score_thresh = float(meta["score_thresh"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _one(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a float (3, H, W) image in 0..1, got shape {tuple(image.shape)}")
        arrays = self.session.run(None, {self.input_name: image.detach().float().cpu().contiguous().numpy()})
        out = {k: torch.from_numpy(v) for k, v in zip(self.output_names, arrays, strict=True)}
        keep = out["scores"] >= self.score_thresh
        res = {"boxes": out["boxes"][keep], "scores": out["scores"][keep],
               "labels": out["labels"][keep].to(torch.int64) - self.label_offset}
        if "masks" in out:
            res["masks"] = out["masks"][keep]  # (N, 1, H, W) float probabilities
        return res

    def __call__(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """B images (3, H, W) float in 0..1 (a list, or one (B, 3, H, W) tensor) -> one dict per image."""
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            images = [images]
        return [self._one(im) for im in images]
