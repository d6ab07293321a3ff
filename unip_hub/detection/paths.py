# exports: detect_paths
"""``unip detect``: a detector file loaded once and run over what the command names: images
(:func:`unip_hub.detection.outputs.detect_files`), videos and folders of frames
(:func:`unip_hub.detection.outputs.detect_video`) and georeferenced rasters (:func:`unip_hub.geo.detect_raster`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unip_hub.detection.outputs import DetectSettings, detect_files, detect_video

__all__ = ["detect_paths"]


def _onnx_runtime(model: Any, model_path: Path, cache_dir: str | os.PathLike | None) -> Any:
    """The detector as an ONNX Runtime session, exported once per checkpoint and post-processing settings (the
    thresholds are fixed in the graph) into ``cache_dir`` (default: the checkpoint's folder)."""
    from unip_hub.detection.runtime import OnnxDetector, export_detector_onnx

    tag = f"s{model.score_thresh:g}-n{model.nms_thresh:g}-d{model.detections_per_img}"
    path = Path(cache_dir or model_path.parent) / f"{model_path.stem}.{tag}.onnx"
    if not path.is_file() or path.stat().st_mtime < model_path.stat().st_mtime:
        path.parent.mkdir(parents=True, exist_ok=True)
        export_detector_onnx(model, path)
    return OnnxDetector(path)


def detect_paths(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                 device: str = "cpu", settings: DetectSettings | None = None,
                 predictor_options: dict[str, Any] | None = None, video: Any = None, runtime: str = "torch",
                 cache_dir: str | os.PathLike | None = None, folders_as_video: bool = False, geo: Any = None
                 ) -> tuple[Any, list[dict[str, Any]]]:
    """``unip detect``: loads a detector and runs it over images (:func:`detect_files`) and videos / folders of
    frames (:func:`detect_video`).

    Args:
        model_path: A detector file (``best.pth`` of a detection run, or what ``save_detector`` wrote).
        inputs: Image files, folders, video files.
        out_dir: Output folder.
        device: Torch device.
        settings: See :func:`detect_files`.
        predictor_options: Keywords of :class:`~unip_hub.detection.predict.DetectionPredictor` (``scaling``,
            ``calibration``, ``score_thresh``, ``nms_thresh``, ``max_detections``).
        video: :class:`~unip_hub.inference.video.VideoSettings` of videos.
        runtime: ``torch`` or ``onnxruntime`` (the detector exported to ONNX once, cached beside the checkpoint or
            in ``cache_dir``).
        cache_dir: Folder of the exported ONNX files.
        folders_as_video: Read folders as frame sequences.
        geo: :class:`~unip_hub.geo.GeoSettings` of georeferenced rasters (with ``unip[geo]`` installed, GeoTIFFs
            with a CRS or geotransform go through :func:`unip_hub.geo.detect_raster`); default: its defaults and
            ``settings.hot_above``.

    Returns:
        The loaded detector (eval mode) and one record per image or video.
    """
    import torch

    from unip_hub.detection.checkpoint import load_detector
    from unip_hub.detection.predict import DetectionPredictor
    from unip_hub.engine.outputs import list_inputs
    from unip_hub.geo.raster import is_georeferenced
    from unip_hub.inference.video import is_video

    if runtime not in ("torch", "onnxruntime"):
        raise ValueError(f"runtime must be 'torch' or 'onnxruntime', got {runtime!r}")
    settings = settings or DetectSettings()
    model = load_detector(model_path, torch.device(device))
    options = dict(predictor_options or {})
    predictor = DetectionPredictor(model, **options)  # sets the thresholds on the model (baked into an export)
    if runtime == "onnxruntime":
        predictor.runtime = _onnx_runtime(model, Path(model_path), cache_dir)
    videos = [p for p in inputs if is_video(p) or (folders_as_video and Path(p).is_dir())]
    images = [p for p in inputs if p not in videos]
    records: list[dict[str, Any]] = []
    if images:
        files, names = list_inputs(images)  # folders searched here, so GeoTIFFs inside them are found too
        rasters = {f for f in files if is_georeferenced(f)}
        plain = [(f, n) for f, n in zip(files, names) if f not in rasters]
        if plain:
            records = detect_files(predictor, [f for f, _ in plain], out_dir, settings, [n for _, n in plain])
        if rasters:
            from unip_hub.geo.detect import detect_raster_files
            from unip_hub.geo.segment import GeoSettings

            records += detect_raster_files(predictor, [f for f in files if f in rasters], out_dir,
                                           geo or GeoSettings(hot_above=settings.hot_above))
    for source in videos:
        try:
            records.append(detect_video(predictor, source, out_dir, video, settings.hot_above))
        except (ValueError, OSError) as error:
            records.append({"input": str(source), "error": str(error)})
    return model, records
