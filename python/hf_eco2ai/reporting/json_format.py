"""The JSON report: the prepared ``tracking_data`` itself."""

from __future__ import annotations

import json
from typing import Any, Mapping


def render_json(prepared: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN) of data already passed through ``schema.prepare_for_output``."""
    return json.dumps(prepared, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
