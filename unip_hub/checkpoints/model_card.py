"""The model card (``README.md``) of a UNIP Hugging Face folder, as ``save_pretrained`` / ``unip convert`` write it.

Filled from the model's constructor arguments and, when the weights come from the registry, from its entry
(teacher, distilled layer, normalisation, licence, paper numbers); for other files from the distillation the
checkpoint recorded (:mod:`unip_hub.checkpoints.provenance`). ``huggingface_hub`` is imported when a card is made.
"""

from __future__ import annotations

from typing import Any

from unip_hub.constants import PATCH_SIZE, PRETRAIN_MEAN, PRETRAIN_STD, SEG_MEAN, SEG_STD

DEFAULT_ARCH = "unip_vit_base"
"""Architecture named in the snippets of a card whose width matches no UNIP size."""

_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

UNIP Vision Transformer from *UNIP: Rethinking Pre-trained Attention Patterns for Infrared Semantic
Segmentation* (ICLR 2025, [arXiv 2502.02257](https://arxiv.org/abs/2502.02257)), packaged by
[`unip`](https://pypi.org/project/unip/) (`pip install unip`).

## Architecture

| width | depth | heads | last-block heads | patch | input channels | position grid |
|---|---|---|---|---|---|---|
| {{ embed_dim }} | {{ depth }} | {{ num_heads }} | {{ last_heads }} | {{ patch_size }} | {{ in_chans }} | {{ grid }} |

Pre-norm ViT (LayerNorm eps 1e-6, GELU MLP x4, qkv bias, class token, absolute position embedding resized
bicubically for other input sizes; any multiple of 16 works, e.g. 512x512 or 480x640).

## Provenance

{{ provenance }}

**Untrained last block.** NMI-HAD distils only the query/key path of the student's last block. Its `attn.proj`,
`mlp`, `norm2` and the final `norm` never receive a gradient (they stay at initialisation) and the value slice of
its `qkv` only sees weight decay. Use intermediate blocks, or fine-tune, rather than the raw last-block output.
The released files store the last block with {{ distilled }} heads; the official fine-tuning re-reads it with the
standard head count, which is `unip`'s default (`last_heads=None`); `last_heads="distilled"` restores it.

## Input normalisation

Gray (ITU-R 601 luma) copied to 3 channels, scaled to 0-1, normalised with mean {{ mean }} and std {{ std }}
(pre-training). Segmentation fine-tuning uses mean {{ seg_mean }} / std {{ seg_std }} on 0-255.

## Results (paper)

{{ results }}

## Usage

```python
import unip_hub                                              # pip install unip
model = unip_hub.{{ arch }}(weights="{{ weights_hint }}")
feats = model.get_intermediate_layers(x, n=[3, 5, 7, 11], reshape=True, norm=False)   # 4 x (B, C, H/16, W/16)
seg = unip_hub.create_segmenter("{{ arch }}", num_classes=9, head="upernet", weights="{{ weights_hint }}")

import timm                                                  # timm: registered by `import unip_hub`
m = timm.create_model("{{ arch }}_patch16_224.{{ tag }}", pretrained=True, features_only=True)   # LL-FPN, strides 4-32
cfg = timm.data.resolve_data_config({}, model=m)             # infrared mean/std

from transformers import UperNetForSemanticSegmentation      # transformers 5.x: pip install "unip[transformers]"
from unip_hub.integrations.transformers import UnipModel, upernet_config
upernet = UperNetForSemanticSegmentation(upernet_config("{{ arch }}", num_labels=9))
vit = UnipModel.from_unip(unip_hub.{{ arch }}(weights="{{ weights_hint }}"))

import segmentation_models_pytorch as smp                    # SMP: pip install "unip[smp]"
import unip_hub.integrations.smp                             # registers the encoders
net = smp.UPerNet(encoder_name="{{ smp_name }}", encoder_weights=None, classes=9)

from torchvision.models.detection import FasterRCNN          # torchvision detection
from unip_hub.detection import IMAGE_MEAN, IMAGE_STD, build_backbone
det = FasterRCNN(build_backbone("{{ arch }}", weights="{{ weights_hint }}", fpn=True), num_classes=3,
                 image_mean=IMAGE_MEAN, image_std=IMAGE_STD)
```

Licence: {{ license }}.
"""


def _provenance(entry: dict[str, Any] | None, pretrained_cfg: dict[str, Any] | None, class_name: str) -> str:
    if entry:
        return (f"Distilled with NMI-HAD from the {entry['teacher']} teacher's layer {entry['teacher_layer']} "
                f"of {entry['teacher_depth']} on InfMix; released as `{entry['filename']}` in the Hugging "
                f"Face repo `{entry['hf_repo']}` (revision `{entry['revision']}`).")
    text = f"Weights of a `{class_name}` saved with `unip` (not one of the registry's released files)."
    record = (pretrained_cfg or {}).get("distillation")
    if record:
        teacher = record.get("teacher") or "an unrecorded teacher"
        layer = f" layer {record['teacher_layer']}" if record.get("teacher_layer") else ""
        text += (f" Distilled with NMI-HAD from {teacher}{layer}, last block with {record['last_heads']} heads "
                 f"(read from the {record.get('source', 'checkpoint')}).")
    return text


def render_model_card(card_data: Any, config: dict[str, Any], pretrained_cfg: dict[str, Any] | None,
                      class_name: str, arch: str | None = None) -> Any:
    """Builds the card (a ``huggingface_hub.ModelCard``) of a model from its config and provenance.

    Args:
        card_data: ``huggingface_hub.ModelCardData`` (library, licence, tags).
        config: The constructor arguments written to ``config.json``.
        pretrained_cfg: The registry entry (``to_dict()``), or ``{"file": ..., "distillation": ...}``, or ``None``.
        class_name: The model class, for the provenance line.
        arch: Architecture name of the snippets (:func:`unip_hub.models.vit.arch_from_shape`); the registry
            entry's wins, :data:`DEFAULT_ARCH` when neither is known.
    """
    from huggingface_hub import ModelCard

    entry = pretrained_cfg if pretrained_cfg and "teacher" in pretrained_cfg else None
    arch = entry["arch"] if entry else arch or DEFAULT_ARCH
    img = config.get("img_size", 224)
    hw = (img, img) if isinstance(img, int) else tuple(img)
    patch = int(config.get("patch_size", PATCH_SIZE))
    provenance = _provenance(entry, pretrained_cfg, class_name)
    if entry:
        results = ("| fine-tuning mIoU | linear-probe mIoU |\n|---|---|\n"
                   f"| {entry['paper_miou_finetune']} | {entry['paper_miou_linear_probe']} |\n\n"
                   "Averages over SODA, MFNet-T and SCUT-Seg, read off the paper's summary figure (+-0.3).")
        mean, std, tag, lic = entry["mean"], entry["std"], entry["tag"], entry["license"]
    else:
        results = "Not evaluated by the package."
        mean, std, tag, lic = [PRETRAIN_MEAN] * 3, [PRETRAIN_STD] * 3, "mae_large", "apache-2.0"
    values = dict(
        title=f"{arch}" + (f".{tag}" if entry else ""), arch=arch, tag=tag,
        weights_hint=tag if entry else "/path/to/folder", smp_name=f"{arch}.{tag}" if entry else arch,
        embed_dim=config.get("embed_dim"),
        depth=config.get("depth"), num_heads=config.get("num_heads"),
        last_heads=config.get("last_heads") or config.get("num_heads"), patch_size=patch,
        in_chans=config.get("in_chans", 3), grid=f"{hw[0] // patch}x{hw[1] // patch}",
        distilled=config.get("distilled_last_heads") or (entry or {}).get("last_heads", "the distilled number of"),
        seg_mean=SEG_MEAN, seg_std=SEG_STD, provenance=provenance, results=results, mean=list(mean), std=list(std),
        license=lic,
    )
    return ModelCard.from_template(card_data, template_str=_TEMPLATE, **values)
