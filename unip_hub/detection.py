"""torchvision detection backbones from UNIP (see :mod:`unip_hub.integrations.detection`)."""

from unip_hub.integrations.detection import (
    IMAGE_MEAN,
    IMAGE_STD,
    UnipDetectionBackbone,
    build_backbone,
    instances_from_label,
)

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "UnipDetectionBackbone", "build_backbone", "instances_from_label"]
