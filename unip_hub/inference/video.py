"""Video and frame sequences: ``unip segment INPUT.mp4|FOLDER_OF_FRAMES --video --out OUT/``.

A background thread decodes frames (PyAV for video files, the radiometric readers for a folder of frames), scales
them to gray with running percentile bounds (:class:`~unip_hub.data.scaling.RunningBounds`, so the video does
not flicker) and normalises them, while the main thread runs the model on batches of frames; the writer renders
the overlays, computes per-frame temperature statistics and encodes the overlay video (H.264 through PyAV,
``av`` on PyPI; ``thermal`` extra), in a second thread when the model runs on a GPU and between batches on the
CPU (:attr:`VideoSettings.writer_thread`).

Outputs, in ``OUT/<video name>/``, filled under a temporary name and renamed into place (an error leaves nothing):
``overlay.mp4``, ``frames.csv`` (per frame: class and region temperatures when the input is radiometric, class
areas otherwise) and, on request, ``masks/<frame>.png``. Ctrl-C (SIGINT) stops reading, finalises the video of
the frames done (a playable file) and still moves the folder into place; the record says ``interrupted``.
Other tasks (``unip detect``) run the same pipeline, :func:`process_video`, with their own model call and sink.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unip_hub.data.radiometric import Frame
from unip_hub.data.readers import celsius_bounds, celsius_levels
from unip_hub.data.scaling import DEFAULT_SCALING, RunningBounds
from unip_hub.data.video import VIDEO_EXTENSIONS, is_video, read_video_frames, require_av, video_fps
from unip_hub.inference.stats import CSV_FIELDS
from unip_hub.utils.atomic import atomic_dir
from unip_hub.utils.threads import Background, Worker

__all__ = ["VIDEO_EXTENSIONS", "VideoSettings", "VideoSink", "is_video", "process_video", "read_video_frames",
           "segment_video"]


@dataclasses.dataclass
class VideoSettings:
    """How :func:`segment_video` runs and what it writes.

    Attributes:
        batch_size: Frames per model call.
        momentum: Weight of the past in the running percentile bounds (0: every frame scaled on its own).
        masks: Also write every frame's class-index PNG.
        fps: Frame rate of the output for a folder of frames (a video keeps its own).
        min_area: Smallest region in the statistics, in pixels.
        hot_above: Regions hotter than this (degC) are flagged.
        alpha: Opacity of the class colours in the overlay.
        codec: PyAV encoder (H.264 by default; ``mpeg4`` where libx264 is missing).
        progress: Progress bar with frames/s.
        writer_thread: Render, tabulate and encode in a second thread (``True``) or between model batches
            (``False``); ``None``: a thread when the model runs on a GPU (the CPU is free meanwhile), inline on
            the CPU, where the model's threads hold every core (measured on 2 cores: 0.85x of model-only with the
            thread, 0.86-0.97x inline).
        max_frames: Segment only the first ``max_frames`` frames (``None``: all).
    """

    batch_size: int = 4
    momentum: float = 0.9
    masks: bool = False
    fps: float = 10.0
    min_area: int = 1
    hot_above: float | None = None
    alpha: float = 0.4
    codec: str = "libx264"
    progress: bool = True
    writer_thread: bool | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise ValueError(f"batch_size and max_frames must be >= 1, got {self.batch_size}, {self.max_frames}")


def _scaled_frames(frames: Iterable[Frame], running: RunningBounds, normalize: Callable[[np.ndarray], torch.Tensor]
                   ) -> Callable[[Callable[[Any], None]], None]:
    def produce(put: Callable[[Any], None]) -> None:
        for frame in frames:
            gray = running(frame)  # (H, W) uint8 with the running bounds
            put((frame, gray, normalize(gray)))  # the model input (1, C_in, H, W) too: off the model's thread
    return produce


# ----------------------------------------------------------------------------------------------- writing
class _Encoder:
    """An H.264 (or ``codec``) stream of RGB frames; the size is fixed by the first frame (padded to even)."""

    def __init__(self, path: Path, fps: float, codec: str) -> None:
        av = require_av()
        self.av, self.fps, self.codec = av, fps, codec
        self.container = av.open(str(path), "w")
        self.stream: Any = None

    def _open_stream(self, height: int, width: int) -> None:
        from fractions import Fraction

        codec = self.codec
        try:
            self.av.codec.Codec(codec, "w")
        except Exception:  # FFmpeg builds without libx264
            codec = "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.thread_count = 1  # the cores belong to the model; one encoder thread keeps up
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast"}  # measured: half the CPU of x264's default, smaller files

    def write(self, rgb: np.ndarray) -> None:
        if self.stream is None:
            self._open_stream(*rgb.shape[:2])
        h, w = self.stream.height, self.stream.width
        canvas = np.zeros((h, w, 3), np.uint8)
        canvas[: min(h, rgb.shape[0]), : min(w, rgb.shape[1])] = rgb[:h, :w]
        for packet in self.stream.encode(self.av.VideoFrame.from_ndarray(canvas, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            if self.stream is not None:
                for packet in self.stream.encode(None):  # flush: a finalised, playable file
                    self.container.mux(packet)
        finally:
            self.container.close()


class VideoSink:
    """What a task's video writer shares (runs in the pipeline's writer): the overlay video, the streamed
    ``frames.csv`` (``frame``, ``time_s`` and the task's ``fields``) and colour-bar ends that move smoothly from
    frame to frame. A task's sink draws each frame and calls :meth:`write`."""

    def __init__(self, folder: Path, fps: float, settings: VideoSettings, fields: Sequence[str]) -> None:
        self.folder, self.fps, self.settings = folder, fps, settings
        self.encoder = _Encoder(folder / "overlay.mp4", fps, settings.codec)
        self.colour_bar = RunningBounds(DEFAULT_SCALING, settings.momentum)  # steady colour-bar ends
        self.table = open(folder / "frames.csv", "w", newline="")  # streamed: rows are not kept in memory
        self.rows = csv.DictWriter(self.table, fieldnames=("frame", "time_s", *fields), lineterminator="\n")
        self.rows.writeheader()
        self.count = 0

    def bounds(self, frame: Frame) -> tuple[float, float] | None:
        """The colour-bar ends (degC) of a radiometric frame, smoothed over time; None without temperatures."""
        if frame.celsius is None:
            return None
        bounds = celsius_bounds(frame)
        return self.colour_bar.smooth(bounds) if bounds is not None else (0.0, 1.0)

    def write(self, picture: np.ndarray, rows: Iterable[dict[str, Any]]) -> None:
        """Encodes this frame's picture and appends its table rows; the next frame's number follows."""
        self.encoder.write(picture)
        time_s = round(self.count / self.fps, 4)
        self.rows.writerows({"frame": self.count, "time_s": time_s, **row} for row in rows)
        self.count += 1

    def close(self) -> None:
        """Finalises the video and ``frames.csv``."""
        try:
            self.encoder.close()
        finally:
            self.table.close()


class _Sink(VideoSink):
    """Renders, encodes and tabulates segmented frames."""

    def __init__(self, folder: Path, fps: float, settings: VideoSettings, model: Any) -> None:
        from unip_hub.inference.render import palette_array

        super().__init__(folder, fps, settings, CSV_FIELDS)
        self.names, self.num_classes = model.class_names, model.num_classes
        self.colours = palette_array(model.num_classes, model.palette)

    def __call__(self, item: tuple[Frame, np.ndarray, np.ndarray]) -> None:
        from unip_hub.inference.images import index_image, write_png_atomic
        from unip_hub.inference.render import overlay, thermal_overlay
        from unip_hub.inference.stats import csv_rows, temperature_stats

        frame, gray, mask = item
        bounds = self.bounds(frame)
        if bounds is not None:
            picture = thermal_overlay(frame.celsius, mask, self.colours, self.names, bounds, self.settings.alpha,
                                      all_classes=True, levels=celsius_levels(frame, *bounds))
            stats = temperature_stats(frame.celsius, mask, self.names, self.settings.min_area,
                                      self.settings.hot_above)
        else:
            picture = overlay(gray, mask, self.colours, self.settings.alpha)
            stats = class_areas(mask, self.names)
        if self.settings.masks:
            write_png_atomic(index_image(mask, self.num_classes), self.folder / "masks" / f"{self.count:06d}.png")
        self.write(picture, csv_rows(stats))


def class_areas(mask: np.ndarray, class_names: Any = None) -> dict[str, Any]:
    """The per-class part of a statistics table without temperatures: class, name and area."""
    names = list(class_names or [])
    counts = np.bincount(np.asarray(mask).ravel())  # (K,) pixels per class: one pass, no sort
    present = np.flatnonzero(counts).tolist()
    classes = [{"class": c, "name": names[c] if c < len(names) else f"class_{c}", "area": int(counts[c])}
               for c in present]
    return {"classes": classes, "regions": [], "hotspots": 0}


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(reader: Background, worker: Worker, infer: Callable[[torch.Tensor], Sequence[Any]], size: int, bar: Any
         ) -> tuple[int, bool]:
    """The model loop: batches from the reader, ``infer``'s per-frame results to the writer. Returns (frames done,
    interrupted)."""
    done = 0
    try:
        for batch in _batches(reader.items(), size):
            x = torch.cat([x for _, _, x in batch])  # (B, C_in, H, W)
            for (frame, gray, _), result in zip(batch, infer(x)):
                worker.submit((frame, gray, result))
            done += len(batch)
            bar.update(len(batch))
    except KeyboardInterrupt:
        return done, True
    return done, False


def process_video(predictor: Any, source: str | os.PathLike, out_dir: str | os.PathLike, settings: VideoSettings,
                  infer: Callable[[torch.Tensor], Sequence[Any]], make_sink: Callable[[Path, float], Any],
                  desc: str = "segment") -> dict[str, Any]:
    """The video pipeline any task runs: decode + scale + ``predictor.to_tensor`` in a reader thread, ``infer`` on
    batches in this thread, the task's sink (render, tabulate, encode) in the writer; ``OUT/<name>/`` filled under
    a temporary name and moved into place (Ctrl-C: the frames done, finalised).

    Args:
        predictor: A :class:`~unip_hub.engine.predictor.BasePredictor` (its scaling, calibration, ``to_tensor``,
            device).
        source: Video file or folder of frame files.
        out_dir: Parent of the output folder.
        settings: Batch size, smoothing, frame limit, writer thread, progress.
        infer: A batch (B, C_in, H, W) -> B per-frame results (segmentation: class maps).
        make_sink: ``(folder, fps) -> sink``: ``sink((frame, gray, result))`` per frame, ``sink.close()`` at the end;
            it writes ``overlay.mp4`` and ``frames.csv`` into ``folder``.
        desc: Progress-bar label.

    Returns:
        ``{"input", "frames", "video", "stats", "interrupted"}``.
    """
    from tqdm.auto import tqdm

    path = Path(source)
    frames = read_video_frames(path, predictor.calibration)
    fps = video_fps(path, frames, settings.fps)
    frames = itertools.islice(frames, settings.max_frames)  # None: all
    target = Path(out_dir) / (path.stem if path.is_file() else path.name)
    with atomic_dir(target, overwrite=True) as tmp:
        threaded = settings.writer_thread if settings.writer_thread is not None else predictor.device.type == "cuda"
        worker = Worker(make_sink(tmp, fps), size=2 * settings.batch_size, background=threaded)
        running = RunningBounds(predictor.scaling, settings.momentum)
        reader = Background(_scaled_frames(frames, running, predictor.to_tensor), size=2 * settings.batch_size)
        with tqdm(desc=f"{desc} {path.name}", unit="frame", disable=not settings.progress) as bar:
            try:
                done, interrupted = _run(reader, worker, infer, settings.batch_size, bar)
            finally:
                reader.close()
                try:
                    worker.close()
                finally:
                    worker.handle.close()  # finalises the video of the frames done, also when interrupted
    return {"input": str(path), "frames": done, "video": str(target / "overlay.mp4"),
            "stats": str(target / "frames.csv"), "interrupted": interrupted}


def segment_video(predictor: Any, source: str | os.PathLike, out_dir: str | os.PathLike, options: Any = None,
                  settings: VideoSettings | None = None) -> dict[str, Any]:
    """Segments a video file or a folder of frames and writes ``OUT/<name>/`` (see the module docstring).

    Args:
        predictor: A :class:`~unip_hub.inference.Predictor` (its scaling and calibration are used).
        source: Video file (``.mp4``, ``.avi``, ``.mkv``, ...) or folder of frame files.
        out_dir: Parent of the output folder.
        options: :class:`~unip_hub.models.slide.InferenceOptions` (whole image by default).
        settings: Batch size, smoothing, outputs.

    Returns:
        ``{"input", "frames", "video", "stats", "interrupted"}``.

    Raises:
        ValueError: unreadable, truncated or empty input (one line naming the file; nothing is left behind).
    """
    from unip_hub.inference.images import index_image
    from unip_hub.models.slide import InferenceOptions

    settings, options = settings or VideoSettings(), options or InferenceOptions()

    def infer(x: torch.Tensor) -> np.ndarray:
        masks = predictor.predict_torch(x, options).numpy()  # (B, H, W)
        return index_image(masks, predictor.num_classes)  # uint8 (<= 256 classes): cheaper to render and count

    return process_video(predictor, source, out_dir, settings, infer,
                         lambda folder, fps: _Sink(folder, fps, settings, predictor.segmenter))
