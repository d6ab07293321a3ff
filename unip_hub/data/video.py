"""Video files, FLIR SEQ recordings and folders of frames as radiometric :class:`~unip_hub.data.frame.Frame` s.

Video files are decoded by PyAV (``av`` on PyPI; ``thermal`` extra), 16-bit gray streams as counts; SEQ files by
:mod:`unip_hub.data.seq`; folders of frame files by the radiometric reader, sorted by name. Truncated, empty or
unreadable videos raise one-line errors naming the file. The pipeline that runs a model over the frames is
:func:`unip_hub.inference.video.process_video`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from unip_hub.constants import INPUT_EXTENSIONS
from unip_hub.data.radiometric import Frame, read_radiometric
from unip_hub.utils.files import list_files

__all__ = ["VIDEO_EXTENSIONS", "is_video", "read_video_frames", "require_av", "video_error", "video_fps"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".seq")



def is_video(path: str | os.PathLike) -> bool:
    """A video file by its extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_error(path: Path, error: BaseException) -> ValueError:
    """The one-line error of a video PyAV cannot read."""
    return ValueError(f"{path}: not a readable video ({type(error).__name__}: {error}); re-encode or re-copy it "
                      "(a truncated download or an unfinished recording)")


def require_av() -> Any:
    """The ``av`` module (PyAV), or ``RuntimeError`` with the install line."""
    try:
        import av
    except ImportError as error:
        raise RuntimeError("video needs PyAV: pip install 'unip[thermal]'") from error
    return av


def _decode(path: Path, calibration: Any) -> Iterator[Frame]:
    av = require_av()

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise video_error(path, error) from error
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: not a readable video (no video stream found); re-copy or re-encode it")
        stream = container.streams.video[0]
        pix = stream.codec_context.pix_fmt or ""
        fmt = "gray16le" if pix.startswith(("gray16", "gray12", "gray10")) else "gray"
        declared, count, end = int(stream.frames or 0), 0, 0.0
        step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        try:
            for count, picture in enumerate(container.decode(stream), start=1):
                frame = read_radiometric(picture.to_ndarray(format=fmt), calibration)
                frame.source = f"{path} frame {count - 1}"
                end = (picture.time or 0.0) + step
                yield frame
        except av.error.FFmpegError as error:
            raise video_error(path, error) from error
        length = container.duration / 1e6 if container.duration else 0.0  # what the header says, in seconds
    if count == 0:
        raise ValueError(f"{path}: no video frames (an empty or unfinished recording)")
    if (declared and count < declared) or (step and length and end < length - 1.5 * step):
        raise ValueError(f"{path}: truncated, the frames end at {end:.2f} s of {length:.2f} s ({count} decoded); "
                         "re-copy the complete file")


def read_video_frames(source: str | os.PathLike, calibration: Any = None) -> Iterator[Frame]:
    """The frames of a video file or of a folder of frame files (sorted by name), as radiometric frames.

    Raises:
        ValueError: unreadable, truncated or empty video, or a folder without frames (one line, naming the file).
    """
    path = Path(source)
    if path.is_dir():
        files = list_files(path, INPUT_EXTENSIONS, recursive=False)
        if not files:
            raise ValueError(f"{path}: no frames ({', '.join(INPUT_EXTENSIONS)}) in the folder")
        return (read_radiometric(f, calibration) for f in files)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.suffix.lower() == ".seq":  # FLIR SEQ: FFF frames through flirpy (pip install 'unip[seq]')
        from unip_hub.data.seq import iter_seq_frames

        return iter_seq_frames(path, calibration)
    return _decode(path, calibration)


def video_fps(path: Path, frames: Iterable[Frame], default: float) -> float:
    """Frame rate of a video file or SEQ (``default`` for a folder of frames or a file that does not say)."""
    if path.is_dir():
        return default
    if path.suffix.lower() == ".seq":
        return getattr(frames, "fps", None) or default  # the SEQ's own record (the file is read once)
    av = require_av()

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate if container.streams.video else None
    except (av.error.FFmpegError, OSError) as error:
        raise video_error(path, error) from error
    return float(rate) if rate else default
