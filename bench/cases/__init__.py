"""The benchmark's cases, one module each, in the order they run (see each module's docstring for what it
compares and its target)."""
from __future__ import annotations

from . import (
    builder_cpu,
    cold_start,
    image,
    link,
    link_prefetch,
    lock,
    many_layers,
    nix_build,
    pin,
    pin_tag,
    rebuild,
    rss,
    signed,
    small_layer,
    throughput,
)
from .base import CaseUnit

CASES: list[CaseUnit] = [*link.UNITS, *link_prefetch.UNITS, image.UNIT, throughput.UNIT, pin.UNIT, nix_build.UNIT,
                         rebuild.UNIT, rss.UNIT,
                         cold_start.UNIT, lock.UNIT, many_layers.UNIT, small_layer.UNIT,
                         pin_tag.UNIT, builder_cpu.UNIT, signed.UNIT]
