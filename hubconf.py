"""torch.hub entry points: ``torch.hub.load("casiatao/UNIP", "unip_s")`` (pretrained, MAE-L teacher, by default).

Per backbone size: ``unip_vit_<size>`` (no weights by default), ``unip_<letter>`` (released weights by default),
``unip_<letter>_upernet`` (segmenter); then the detectors (``unip_s_faster_rcnn``, ...). ``torch.hub.list`` shows
them all; :mod:`unip_hub.hub.entrypoints` makes them from :data:`unip_hub.constants.VIT_SIZES`.
"""

from unip_hub.hub.entrypoints import *  # noqa: F403  backbones, segmenters, detectors (its __all__)

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]
