"""Class colours: the PASCAL VOC bit-interleaved palette, used by the dataset classes (their ``PALETTE``) and by
every renderer (:func:`unip_hub.inference.render.palette_array`) when a model or dataset brings none."""

from __future__ import annotations

__all__ = ["make_palette"]


def make_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct RGB colours, index 0 black: the bit-interleaved scheme of PASCAL VOC (unique up to 256)."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        for bit in range(8):
            r |= ((index >> (3 * bit)) & 1) << (7 - bit)
            g |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
            b |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
        palette.append((r, g, b))
    return tuple(palette)
