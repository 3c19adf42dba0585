"""``hf-eco2ai devices``: which energy sources work here, their channels, and why others do not."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from hf_eco2ai.errors import CarbonTrackingError
from hf_eco2ai.meter.energy_meter import EnergyMeter

PROBED_SOURCES = ("nvml", "rapl", "cpu-estimate")


def probe_sources() -> List[Dict[str, Any]]:
    """Opens each real source on its own; returns its channels, or the reason it is unavailable."""
    found = []
    for name in PROBED_SOURCES:
        try:
            meter = EnergyMeter(sources=name)
        except CarbonTrackingError as error:
            found.append({"source": name, "available": False, "reason": str(error), "channels": []})
            continue
        info = meter.info()
        found.append(
            {
                "source": name,
                "available": True,
                "facts": info["sources"][0],
                "channels": [{k: c[k] for k in ("name", "kind", "provenance", "parent")} for c in info["channels"]],
            }
        )
    return found


def print_devices(as_json: bool = False) -> int:
    found = probe_sources()
    if as_json:
        print(json.dumps(found, indent=2))
        return 0
    for entry in found:
        if not entry["available"]:
            print(f"{entry['source']:<13} unavailable: {entry['reason']}")
            continue
        print(f"{entry['source']:<13} available")
        for channel in entry["channels"]:
            parent = f", part of {channel['parent']}" if channel["parent"] else ""
            print(f"  {channel['name']:<18} {channel['kind']:<8} {channel['provenance']}{parent}")
        for key, value in entry["facts"].items():
            if key != "name":
                print(f"  {key}: {value}")
    return 0
