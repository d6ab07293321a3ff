"""Running a segmenter over image files and writing index masks, colour masks and overlays atomically.

Layout under the output folder, one PNG per input, named after the input's path relative to the input folder:
``masks/`` raw class indices (8-bit gray, 16-bit for more than 256 classes), ``color/`` the palette rendering,
``overlay/`` the rendering blended over the thermal image; for radiometric inputs also ``thermal/`` (temperatures in
a colormap with class outlines, a colour bar and a legend) and ``stats/`` (per-class and per-region temperatures,
JSON and CSV). Every file goes through
:func:`unip_hub.utils.atomic_path`, so an interrupted run never leaves a half-written PNG, and an input that
cannot be read (or segmented) leaves no file at all: its record carries the one-line ``error`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unip_hub.constants import OUTPUT_KINDS as KINDS
from unip_hub.engine.outputs import Plan, list_inputs, run_files, write_all_or_none
from unip_hub.inference.images import index_image, write_png_atomic
from unip_hub.inference.render import colorize, overlay, palette_array

__all__ = ["KINDS", "SegmentSettings", "list_inputs", "output_plan", "render", "segment_files", "segment_inputs",
           "segment_paths", "write_all_or_none"]


def render(kind: str, gray: np.ndarray, mask: np.ndarray, colours: np.ndarray, num_classes: int,
           alpha: float = 0.5) -> np.ndarray:
    """The picture of one output ``kind`` (see :data:`KINDS`) for a gray frame and its class map."""
    if kind == "masks":
        return index_image(mask, num_classes)  # (H, W) class indices
    if kind == "color":
        return colorize(mask, colours)  # (H, W, 3)
    return overlay(gray, mask, colours, alpha)  # (H, W, 3)


@dataclass
class SegmentSettings:
    """What :func:`segment_files` writes, besides how it infers (:class:`~unip_hub.models.slide.InferenceOptions`).

    Attributes:
        kinds: Outputs to write, a subset of :data:`KINDS`.
        alpha: Overlay opacity of the colour mask.
        progress: Show a progress bar.
        min_area: Smallest connected region in the temperature statistics, in pixels.
        hot_above: Regions hotter than this (max, degC) are flagged as hotspots; ``None`` flags none.
        thermal: For radiometric inputs, also write ``thermal/<name>.png`` (temperatures, class outlines, colour
            bar, legend) and ``stats/<name>.json`` / ``.csv``.
    """

    kinds: Sequence[str] = field(default_factory=lambda: KINDS)
    alpha: float = 0.5
    progress: bool = True
    min_area: int = 1
    hot_above: float | None = None
    thermal: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown output kinds {sorted(unknown)}; choose from {KINDS}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")


def output_plan(model: Any, frame: Any, gray: np.ndarray, mask: np.ndarray, out_dir: Path, name: str,
                settings: SegmentSettings, colours: np.ndarray) -> tuple[Plan, dict]:
    """What to write for one segmented frame: (kind -> (path, writer)), and the temperature statistics (or {})."""
    plan: Plan = {}
    for kind in settings.kinds:
        picture = render(kind, gray, mask, colours, model.num_classes, settings.alpha)
        plan[kind] = (out_dir / kind / f"{name}.png", lambda p, picture=picture: write_png_atomic(picture, p))
    stats: dict[str, Any] = {}
    if settings.thermal and frame.celsius is not None:
        from unip_hub.inference.render import thermal_overlay
        from unip_hub.inference.stats import stats_writers, temperature_stats

        stats = temperature_stats(frame.celsius, mask, model.class_names, settings.min_area, settings.hot_above)
        figure = thermal_overlay(frame.celsius, mask, colours, model.class_names)
        plan["thermal"] = (out_dir / "thermal" / f"{name}.png", lambda p: write_png_atomic(figure, p))
        plan.update(stats_writers(stats, out_dir / "stats" / name))
    return plan, stats


def segment_files(
    model: Any,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: SegmentSettings | None = None,
    predictor: Any = None,
    names: Sequence[str] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Segments every image under ``inputs`` with ``model`` (a :class:`~unip_hub.models.segmenter.Segmenter`).

    Args:
        model: The segmenter (its ``num_classes``, ``palette`` and ``class_names`` choose colours and names).
        inputs: Files and folders (searched recursively).
        out_dir: Output folder (``masks/``, ``color/``, ``overlay/``; ``thermal/`` and ``stats/`` for radiometric
            inputs).
        settings: Outputs, overlay opacity, progress bar, statistics settings.
        predictor: A :class:`~unip_hub.inference.Predictor` to use (another runtime, scaling or calibration);
            ``Predictor(model)`` if None.
        names: Output names of ``inputs`` when the caller listed them already
            (:func:`~unip_hub.engine.outputs.list_inputs`); ``inputs`` are then files.
        **options: :class:`~unip_hub.models.slide.InferenceOptions` fields (``mode``, ``crop_size``, ``stride``,
            ``batch_windows``, ``scale``).

    Returns:
        One record per input: ``input``, ``size`` (H, W), the written path of each kind and, for radiometric
        inputs, ``hotspots``; or ``error`` (a one-line message naming the file) when the input could not be read
        or scaled, and then nothing is written for it.
    """
    from unip_hub.inference.predictor import Predictor
    from unip_hub.models.slide import InferenceOptions

    settings = settings or SegmentSettings()
    inference = InferenceOptions(**options)
    predictor = predictor or Predictor(model)
    colours = palette_array(model.num_classes, model.palette)

    def plan_for(prepared: Any, name: str) -> tuple[Plan, dict[str, Any]]:
        mask = predictor.predict_torch(prepared.tensor, inference)[0].numpy()  # (H, W) int64
        plan, stats = output_plan(model, prepared.frame, prepared.gray, mask, Path(out_dir), name, settings, colours)
        return plan, ({"hotspots": stats["hotspots"]} if stats else {})

    return run_files(predictor, inputs, plan_for, progress=settings.progress, desc="segment", names=names)


def segment_inputs(model: Any, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   settings: SegmentSettings | None = None, predictor: Any = None, video: Any = None,
                   folders_as_video: bool | None = None, geo: Any = None, **options: Any) -> list[dict[str, Any]]:
    """Images through :func:`segment_files`, video files (and, with ``folders_as_video``, folders as frame
    sequences) through :func:`unip_hub.inference.video.segment_video` with the ``video`` settings, georeferenced
    rasters (with ``unip[geo]`` installed) through :func:`unip_hub.geo.segment_raster_files` with the ``geo``
    settings; one record per image, video or raster. ``folders_as_video`` defaults to whether ``video`` settings
    are given."""
    from unip_hub.geo.raster import is_georeferenced
    from unip_hub.inference.predictor import Predictor
    from unip_hub.inference.video import VideoSettings, is_video, segment_video
    from unip_hub.models.slide import InferenceOptions

    inference = InferenceOptions(**options)
    predictor = predictor or Predictor(model)
    settings = settings or SegmentSettings()
    default_video = VideoSettings(min_area=settings.min_area, hot_above=settings.hot_above, progress=settings.progress)
    sequences = video is not None if folders_as_video is None else folders_as_video
    videos = [p for p in inputs if is_video(p) or (sequences and Path(p).is_dir())]
    images = [p for p in inputs if p not in videos]
    records: list[dict[str, Any]] = []
    if images:
        files, names = list_inputs(images)  # folders searched here, so GeoTIFFs inside them are found too
        rasters = {f for f in files if is_georeferenced(f)}
        plain = [(f, n) for f, n in zip(files, names) if f not in rasters]
        if plain:
            records = segment_files(model, [f for f, _ in plain], out_dir, settings, predictor,
                                    names=[n for _, n in plain], **options)
        if rasters:
            from unip_hub.geo.segment import segment_raster_files

            records += segment_raster_files(predictor, [f for f in files if f in rasters], out_dir, geo)
    for source in videos:
        try:
            records.append(segment_video(predictor, source, out_dir, inference, video or default_video))
        except (ValueError, OSError) as error:
            records.append({"input": str(source), "error": str(error)})
    return records


def segment_paths(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                  load: dict[str, Any] | None = None, device: str = "cpu", settings: SegmentSettings | None = None,
                  predictor_options: dict[str, Any] | None = None, video: Any = None,
                  runtime_options: dict[str, Any] | None = None, folders_as_video: bool | None = None,
                  geo: Any = None, **options: Any) -> tuple[Any, list[dict[str, Any]]]:
    """``unip segment``: loads a segmenter checkpoint and runs :func:`segment_inputs`.

    Args:
        model_path: Our checkpoint (``.pth`` / ``.safetensors`` / HF folder) or an mmseg one.
        inputs: Image files, folders, video files.
        out_dir: Output folder.
        load: Keywords of :func:`unip_hub.load_segmenter` (``arch``, ``num_classes``, ``head``, ``neck``) for files
            that do not say them.
        device: Torch device.
        settings: See :func:`segment_files`.
        predictor_options: Keywords of :class:`~unip_hub.inference.Predictor` (``scaling``, ``calibration``).
        video: :class:`~unip_hub.inference.video.VideoSettings` of video files (and of folders read as videos).
        runtime_options: Keywords of :func:`unip_hub.runtime.load_runtime` (``runtime``, ``precision``,
            ``cache_dir``, ``calibration``, ``min_agreement``, ``static_shape``); the cache defaults to the
            checkpoint's folder; ONNX Runtime fp32 defaults to ``static_shape="auto"`` (a static-shape graph for
            every input shape that repeats: slide windows, video frames).
        folders_as_video: Read folders as frame sequences (default: when ``video`` settings are given).
        geo: :class:`~unip_hub.geo.GeoSettings` of georeferenced rasters (tiles, bands, nodata, polygons).
        **options: :class:`~unip_hub.models.slide.InferenceOptions` fields.

    Returns:
        The loaded model (eval mode) and the records.
    """
    import torch

    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.inference.predictor import Predictor

    model = load_segmenter(model_path, **{**(load or {}), "aux": False}).to(torch.device(device)).eval()
    runtime = None
    pair = (runtime_options or {}).get("runtime"), (runtime_options or {}).get("precision")
    if runtime_options and pair != ("torch", "fp32"):
        from unip_hub.runtime import load_runtime

        static = "auto" if pair == ("onnxruntime", "fp32") else None  # slide windows / video frames: fixed shapes
        runtime = load_runtime(model, **{"static_shape": static, **runtime_options}, checkpoint=model_path,
                               progress=True)
    predictor = Predictor(model, **(predictor_options or {}), runtime=runtime)
    return model, segment_inputs(model, inputs, out_dir, settings, predictor, video, folders_as_video, geo, **options)
