"""Generalisation: a value made coarser, so a partner learns the pattern, not the detail.

Each function takes the decoded Avro value of a field (``datetime`` for a
timestamp, ``date`` for a date, a dict for a location) and returns the
coarser value of the same type, so the derived report is still a valid
report. The targets per kind of value are declared in
``broker.domain.agreements.GENERALISATIONS`` and checked when agreements load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

METRES_PER_DEGREE = 111_320  # along a meridian; the precision we claim is an upper bound


def generaliser(kind: str, target: str) -> Callable[[Any], Any]:
    """The function that generalises a value of ``kind`` to ``target``."""
    if kind == "timestamp":
        return lambda value: _truncate_time(value, target)
    if kind == "date":
        return lambda value: _truncate_date(value, target)
    if kind == "location":
        if target == "border_sector":
            return _to_border_sector
        if target == "country":
            return _to_country
        if target.endswith("deg"):
            step = float(target.removesuffix("deg"))
            return lambda value: _to_grid(value, step)
    raise ValueError(f"no generalisation of a {kind} to {target!r}")


def _truncate_time(value: dt.datetime, target: str) -> dt.datetime:
    if target == "minute":
        return value.replace(second=0, microsecond=0)
    if target == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    if target == "day":
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"no generalisation of a timestamp to {target!r}")


def _truncate_date(value: dt.date, target: str) -> dt.date:
    if target == "month":
        return value.replace(day=1)
    if target == "year":
        return value.replace(month=1, day=1)
    raise ValueError(f"no generalisation of a date to {target!r}")


def _to_grid(location: dict[str, Any], step: float) -> dict[str, Any]:
    """Coordinates snapped to a grid of ``step`` degrees; the crossing point is dropped.

    The claimed precision becomes at least the grid's size, so a recipient
    never reads more precision into the coordinates than they keep.
    """
    digits = max(0, -int(f"{step:e}".split("e")[1]))
    out = dict(location, crossing_point=None)
    for axis in ("latitude", "longitude"):
        if location.get(axis) is not None:
            out[axis] = round(round(location[axis] / step) * step, digits)
    if location.get("latitude") is not None or location.get("longitude") is not None:
        grid_m = int(step * METRES_PER_DEGREE)
        out["precision_m"] = max(location.get("precision_m") or 0, grid_m)
    return out


def _to_border_sector(location: dict[str, Any]) -> dict[str, Any]:
    """Only the country and the border sector remain."""
    return {
        key: (location.get(key) if key in ("country", "border_sector") else None)
        for key in location
    }


def _to_country(location: dict[str, Any]) -> dict[str, Any]:
    return {key: (location.get(key) if key == "country" else None) for key in location}
