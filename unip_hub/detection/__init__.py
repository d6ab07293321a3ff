"""UNIP detectors on thermal images: models, data, evaluation, training and prediction.

>>> from unip_hub.detection import create_detector
>>> det = create_detector("unip_vit_small", head="faster_rcnn", num_classes=3, weights="mae_large")

The names are imported on first use (PEP 562): ``import unip_hub.detection`` loads neither torch nor torchvision.
The torchvision backbone adapter (:mod:`unip_hub.integrations.torchvision`: ``build_backbone``, ``IMAGE_MEAN``,
``IMAGE_STD``, ``UnipDetectionBackbone``, ``instances_from_label``) is re-exported here, as before this package.
Each module names what it gives this package in a ``# exports:`` comment at its top.
"""

from __future__ import annotations

from unip_hub.utils.lazy import exported_names, lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.integrations.torchvision": (
        "IMAGE_MEAN", "IMAGE_STD", "UnipDetectionBackbone", "build_backbone", "instances_from_label",
    ),
    "unip_hub.detection.models": ("BOX_HEADS", "HEADS", "UnipDetector", "create_detector"),
    "unip_hub.detection.checkpoint": ("detector_param_groups", "load_detector", "save_detector"),
    "unip_hub.detection.runtime": ("OnnxDetector", "export_detector_onnx", "quantize_detector_onnx"),
    "unip_hub.detection.formats": (
        "DetectionIndex", "DetectionRecord", "FLIR_CLASSES", "parse_coco", "parse_voc_folder", "parse_yolo_folder",
    ),
    "unip_hub.detection.datasets": (
        "DetectionDataset", "coco_dataset", "dataset_from_arrays", "detection_collate", "flir_adas", "llvip",
        "yolo_dataset",
    ),
    "unip_hub.detection.transforms": ("DetectionTransform", "LargeScaleJitter", "eval_transforms", "train_transforms"),
    "unip_hub.detection.evaluate": (
        "COCO_STATS", "DetectionEvaluator", "coco_evaluate", "log_average_miss_rate", "miss_rate_curve", "results_json",
    ),
    "unip_hub.detection.train": (
        "DetectionLoss", "DetectionResult", "evaluate_detector", "evaluate_detector_checkpoint", "train_detector",
    ),
    "unip_hub.detection.train_config": (
        "DETECTION_DATA", "DetectionConfig", "DetectionDataConfig", "detection_dataset", "synthetic_detection_dataset",
    ),
    "unip_hub.detection.predict": ("DetectionPredictor", "detect"),
    "unip_hub.detection.demo": ("DetectionDemoResult", "run_detection_demo"),
    "unip_hub.detection.outputs": (
        "DetectSettings", "box_temperatures", "detect_files", "detection_rows", "draw_detections", "render_detections",
    ),
    "unip_hub.detection.paths": ("detect_paths",),
}
"""Defining module -> the names it gives this package (``# exports:`` at the top of each module)."""

__all__ = exported_names(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
