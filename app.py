"""The UNIP app as a Hugging Face Space (``sdk: gradio``): ``python app.py`` serves it on port 7860.

The model is ``UNIP_APP_MODEL`` (a checkpoint path in the Space's files), else the ``unip demo`` checkpoint when
one is found; ``unip app`` runs the same page from the command line.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from unip_hub.app import build_app

demo = build_app(os.environ.get("UNIP_APP_MODEL"))

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                                                   server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
