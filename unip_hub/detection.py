"""Alias of :mod:`unip_hub.integrations.detection` (torchvision detection backbones): the very same module object.

``import unip_hub; unip_hub.detection.build_backbone(...)`` and ``from unip_hub.detection import build_backbone``
both reach the one adapter module; there is no second copy of its code.
"""

import sys

from unip_hub.integrations import detection as _detection

sys.modules[__name__] = _detection
