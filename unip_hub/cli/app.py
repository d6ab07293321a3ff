"""``unip app``: the Gradio web app (drop a thermal file, see the overlay and the temperature table)."""

from __future__ import annotations

import argparse


def _cmd_app(args: argparse.Namespace) -> int:
    from unip_hub.app.page import launch

    launch(args.model, host=args.host, port=args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``unip app``."""
    p = sub.add_parser("app", help="web app: segment thermal images in the browser (pip install 'unip[app]')",
                       description="Serves the UNIP app (Gradio) on HOST:PORT: drop a thermal image, FLIR R-JPEG, "
                                   "16-bit TIFF or short video, choose a model and get the overlay, the "
                                   "temperature table, hotspots and downloads. No share link, no analytics; the "
                                   "functions are also a Gradio API (gradio_client).")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: the LAN)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--model", default=None, help="pre-selected segmenter checkpoint (default: the unip demo "
                   "checkpoint ./unip-demo/run/best.pth when found)")
    p.set_defaults(func=_cmd_app)
