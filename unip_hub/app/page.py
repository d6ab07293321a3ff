"""The page: a Gradio ``Blocks`` app over :mod:`unip_hub.app.actions` (``pip install 'unip[app]'``).

Left: the file, the model, the input scaling and calibration (filled with the file's own values when a file is
dropped) and the hotspot threshold. Right: the overlay (temperature colour bar and class legend for radiometric
inputs), the per-class / per-region temperature table, the hotspots, and the downloads (mask PNG, JSON, CSV).
Both functions are also Gradio API endpoints: ``/segment`` and ``/file_values`` (``gradio_client``). Errors
reach the page as one readable line (a ``gr.Error``), never as a stack trace, and the server keeps serving.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unip_hub.app.actions import TABLE_COLUMNS, AppOptions, analyse, file_values
from unip_hub.app.model_choice import model_choices

__all__ = ["build_app", "launch", "segment_endpoint"]

FILE_TYPES = [".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy", ".bmp", ".mp4", ".avi", ".mkv", ".mov", ".webm"]
SCALING_HINT = "model's (e.g. percentile 0.5/99.5, window 10..40 degC, 8-bit)"
_USER_ERRORS = (ValueError, OSError, RuntimeError)
KEEP_RESULTS_S = 3600.0


def _number(value: Any) -> float | None:
    """A form number: blank (``None`` / empty) means "the file's / the model's own value"."""
    return None if value is None or value == "" else float(value)


def _fail(error: BaseException) -> Exception:
    """The one-line message a person sees (and an API client gets) for a bad file or setting."""
    import gradio as gr

    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return gr.Error(message, print_exception=False)


def _results_root(keep_s: float = KEEP_RESULTS_S) -> Path:
    """The ``out_root`` of :func:`~unip_hub.app.actions.analyse` (the temporary folder: analyses go to its
    ``unip-app/``), with analyses older than ``keep_s`` removed first, so a long-running app or Space does not fill
    its disk (the page's downloads are Gradio's copies, which ``delete_cache`` removes)."""
    import shutil
    import tempfile
    import time

    root = Path(tempfile.gettempdir()) / "unip-app"
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir() and time.time() - folder.stat().st_mtime > keep_s:
                shutil.rmtree(folder, ignore_errors=True)
    return root.parent


def segment_endpoint(file: str | None, model: str | None, scaling: str | None, unit: str, emissivity: Any,
                     reflected_temperature: Any, object_distance: Any, counts_gain: Any, counts_offset: Any,
                     hot_above: Any, min_area: Any, mode: str) -> tuple:
    """The ``/segment`` endpoint: the form's values -> (overlay, table, hotspots markdown, downloads, video); a
    detector checkpoint gives boxes and a per-box table."""
    gain, offset = _number(counts_gain), _number(counts_offset)
    try:
        if (gain is None) != (offset is None):
            raise ValueError("give both the counts gain and offset (degC = gain * count + offset), or neither")
        options = AppOptions(scaling=(scaling or "").strip() or None, unit=unit or "auto",
                             emissivity=_number(emissivity), reflected_temperature=_number(reflected_temperature),
                             object_distance=_number(object_distance),
                             counts_to_celsius=(gain, offset) if gain is not None else None,
                             hot_above=_number(hot_above), min_area=int(_number(min_area) or 1), mode=mode or "whole")
        result = analyse(file, model, options, _results_root())
    except _USER_ERRORS as error:
        raise _fail(error) from None
    import pandas as pd  # a Gradio dependency; the frame carries the columns (a detector's differ)

    is_video = result.picture.suffix == ".mp4"
    table = pd.DataFrame(result.table, columns=list(result.columns))
    return (None if is_video else str(result.picture), table, result.summary,
            [str(p) for p in result.downloads], str(result.picture) if is_video else None)


def values_endpoint(file: str | None, model: str | None) -> tuple:
    """The ``/file_values`` endpoint: the file's own values -> (markdown, emissivity, reflected temperature,
    distance, counts gain, counts offset) for the form."""
    if not file:
        return ("", None, None, None, None, None)
    try:
        values = file_values(file, model or None)
    except _USER_ERRORS as error:
        raise _fail(error) from None
    gain, offset = values["counts_to_celsius"] or (None, None)
    shown = {k: v for k, v in values.items() if v is not None}
    text = "**This file:** " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
    return (text, values["emissivity"], values["reflected_temperature"], values["object_distance"], gain, offset)


def build_app(model: str | None = None, title: str = "UNIP thermal segmentation") -> Any:
    """The Gradio ``Blocks`` of the app; ``model`` is the pre-selected model choice.

    Raises:
        RuntimeError: Gradio is not installed.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as error:
        raise RuntimeError("the app needs Gradio: pip install 'unip[app]'") from error

    choices = model_choices(model)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(int(KEEP_RESULTS_S), int(KEEP_RESULTS_S))
                   ) as demo:
        gr.Markdown(f"# {title}\nDrop a thermal image (FLIR R-JPEG, 16-bit or float TIFF, PNG, NPY) or a short "
                    "video, choose a model and press **Segment**. Temperatures need a radiometric file or a counts "
                    "calibration.")
        with gr.Row():
            with gr.Column(scale=1):
                file = gr.File(label="thermal image or video", file_types=FILE_TYPES, elem_id="unip-file")
                model_box = gr.Dropdown(choices=choices, value=choices[0] if choices else None,
                                        allow_custom_value=True, label="model (checkpoint path)",
                                        elem_id="unip-model")
                file_info = gr.Markdown(elem_id="unip-file-values")
                with gr.Accordion("input scaling and calibration (blank: the file's / model's own)", open=False):
                    scaling = gr.Textbox(label="input scaling", placeholder=SCALING_HINT)
                    unit = gr.Radio(["auto", "celsius", "kelvin"], value="auto", label="unit of float frames")
                    emissivity = gr.Number(label="emissivity (FLIR R-JPEG)", value=None)
                    reflected = gr.Number(label="reflected temperature, °C (FLIR R-JPEG)", value=None)
                    distance = gr.Number(label="object distance, m (FLIR R-JPEG)", value=None)
                    gain = gr.Number(label="counts → °C gain", value=None)
                    offset = gr.Number(label="counts → °C offset", value=None)
                hot_above = gr.Number(label="hotspot threshold, °C", value=None, elem_id="unip-hot-above")
                min_area = gr.Number(label="smallest region, px", value=1, precision=0)
                mode = gr.Radio(["whole", "slide"], value="whole", label="inference")
                run = gr.Button("Segment", variant="primary", elem_id="unip-run")
            with gr.Column(scale=2):
                with gr.Tab("image"):
                    picture = gr.Image(label="overlay", type="filepath", interactive=False, elem_id="unip-overlay")
                with gr.Tab("video"):
                    video = gr.Video(label="overlay video", interactive=False, elem_id="unip-video")
                summary = gr.Markdown(elem_id="unip-summary")
                table = gr.Dataframe(headers=list(TABLE_COLUMNS), interactive=False, elem_id="unip-table",
                                     label="temperatures per class and region, or per box (°C)")
                downloads = gr.File(label="downloads: mask PNG, JSON, CSV (a detector: CSV, COCO JSON)",
                                    file_count="multiple", interactive=False, elem_id="unip-downloads")
        form = [file, model_box, scaling, unit, emissivity, reflected, distance, gain, offset, hot_above, min_area,
                mode]
        run.click(segment_endpoint, form, [picture, table, summary, downloads, video], api_name="segment")
        file.change(values_endpoint, [file, model_box], [file_info, emissivity, reflected, distance, gain, offset],
                    api_name="file_values")
    return demo


def launch(model: str | None = None, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any) -> Any:
    """Builds and serves the app (no share link, no analytics); blocks unless ``prevent_thread_lock=True``."""
    demo = build_app(model)
    demo.queue(default_concurrency_limit=1)  # one model: analyses run one at a time
    demo.launch(server_name=host, server_port=port, share=False, **kwargs)
    return demo
