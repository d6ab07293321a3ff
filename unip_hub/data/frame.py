"""The thermal frame types shared by the readers: :class:`Frame`, :class:`Calibration`, :class:`RadiometricError`.

Kept apart from the readers (:mod:`unip_hub.data.radiometric`, :mod:`unip_hub.data.seq`) so that each reader
imports these types and not the other reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["Calibration", "Frame", "RadiometricError"]


class RadiometricError(ValueError):
    """A radiometric file that cannot be turned into temperatures (the message names the file and the fix)."""


@dataclass(frozen=True)
class Calibration:
    """How raw data becomes temperatures.

    Attributes:
        unit: Unit of float data: ``"auto"``, ``"celsius"`` or ``"kelvin"``.
        counts_to_celsius: ``(gain, offset)`` of integer counts: ``celsius = gain * count + offset``; ``None``
            leaves counts without temperatures.
        emissivity: FLIR R-JPEG object emissivity (``None``: the file's).
        reflected_temperature: FLIR R-JPEG reflected apparent temperature in degC (``None``: the file's).
        object_distance: FLIR R-JPEG object distance in metres (``None``: the file's).
    """

    unit: str = "auto"
    counts_to_celsius: tuple[float, float] | None = None
    emissivity: float | None = None
    reflected_temperature: float | None = None
    object_distance: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("auto", "celsius", "kelvin"):
            raise ValueError(f"unit must be 'auto', 'celsius' or 'kelvin', got {self.unit!r}")
        if self.emissivity is not None and not 0.0 < self.emissivity <= 1.0:
            raise ValueError(f"emissivity must be in (0, 1], got {self.emissivity}")


@dataclass
class Frame:
    """One thermal frame: the data as stored and, when known, its temperatures.

    Attributes:
        values: ``(H, W)``: uint8 for 8-bit data, else the raw counts or floats.
        celsius: float32 ``(H, W)`` temperatures in degC, or ``None`` when the data holds none.
        source: What was read (a path or a description).
        kind: ``"8-bit"``, ``"counts"``, ``"celsius"``, ``"kelvin"``, ``"flir-rjpeg"`` or ``"flir-fff"`` (FFF
            frames, also those of SEQ files).
        params: Calibration used (FLIR: emissivity, reflected temperature, distance; counts: gain, offset).
        counts_table: The temperature of every count value (``celsius == counts_table[values]``, non-decreasing)
            when the reader made the temperatures that way (a linear calibration of 8/16-bit counts); ``None``:
            :meth:`celsius_per_count` derives and checks it from the pixels.
    """

    values: np.ndarray
    celsius: np.ndarray | None
    source: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    counts_table: np.ndarray | None = field(default=None, repr=False, compare=False)

    def celsius_per_count(self) -> np.ndarray | None:
        """(max count + 1,) float64: the temperature of each count value, when the temperatures are one
        non-decreasing function of 8/16-bit counts (a calibration: linear, Planck); else ``None``.

        Percentiles and colormap levels of the temperatures can then be computed on the counts (their histogram,
        a lookup table) with the same result. Computed once per frame; checked against every pixel.
        """
        return self.counts_table if self.counts_table is not None else self._counts_table

    @cached_property
    def _counts_table(self) -> np.ndarray | None:
        values, celsius = self.values, self.celsius
        if celsius is None or values.dtype not in (np.uint8, np.uint16) or not values.size:
            return None
        table = np.zeros(int(values.max()) + 1, np.float64)
        table[values.ravel()] = celsius.ravel()  # (max + 1,) the temperature of a pixel of each count
        present = table[np.flatnonzero(np.bincount(values.ravel()))]
        ok = np.array_equal(table[values], celsius) and np.all(np.diff(present) >= 0)
        return table if ok else None

    @property
    def is_8bit(self) -> bool:
        return self.values.dtype == np.uint8

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]
