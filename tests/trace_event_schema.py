"""A strict JSON Schema of the Chrome Trace Event Format (JSON object form), as the tests check it.

It covers the event phases that hf-eco2ai writes and that torch.profiler traces hold, following
the format's specification ("Trace Event Format", the document chrome://tracing and Perfetto's
JSON importer implement): every event has a one-letter ``ph``; ``ts`` and ``dur`` are numbers of
microseconds; a complete event (``X``) has a ``dur`` >= 0; a counter event (``C``) has ``args``
whose values are all numbers; a metadata event (``M``) names a process or thread. hf-eco2ai's own
events are held to a closed shape (no unknown keys, integer pid/tid), torch's keep their extras.
"""

from __future__ import annotations

from typing import Any, Dict

_NUMBER = {"type": "number"}
_ID = {"type": ["integer", "string"]}

_COMMON = {
    "name": {"type": "string"},
    "cat": {"type": "string"},
    "ph": {"type": "string", "minLength": 1, "maxLength": 1},
    "ts": _NUMBER,
    "pid": _ID,
    "tid": _ID,
    "args": {"type": "object"},
}

COMPLETE_EVENT = {
    "type": "object",
    "required": ["ph", "name", "ts", "dur", "pid", "tid"],
    "properties": {**_COMMON, "ph": {"const": "X"}, "dur": {"type": "number", "minimum": 0}},
}

COUNTER_EVENT = {
    "type": "object",
    "required": ["ph", "name", "ts", "pid", "args"],
    "properties": {
        **_COMMON,
        "ph": {"const": "C"},
        "args": {"type": "object", "minProperties": 1, "additionalProperties": _NUMBER},
    },
}

METADATA_EVENT = {
    "type": "object",
    "required": ["ph", "name", "pid", "args"],
    "properties": {
        **_COMMON,
        "ph": {"const": "M"},
        "name": {"enum": ["process_name", "process_labels", "process_sort_index", "thread_name", "thread_sort_index"]},
    },
}

# Phases torch.profiler writes besides X, C and M: instant (i/I), flow (s/t/f), async (b/e/n).
OTHER_EVENT = {
    "type": "object",
    "required": ["ph"],
    "properties": {**_COMMON, "ph": {"enum": ["i", "I", "s", "t", "f", "b", "e", "n", "B", "E"]}},
}

TRACE_SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {
            "type": "array",
            "items": {"oneOf": [COMPLETE_EVENT, COUNTER_EVENT, METADATA_EVENT, OTHER_EVENT]},
        },
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "baseTimeNanoseconds": {"type": "integer", "minimum": 0},
        "otherData": {"type": "object"},
    },
}


def _closed(schema: Dict[str, Any], extra_required: tuple = ()) -> Dict[str, Any]:
    properties = dict(schema["properties"])
    properties["pid"] = properties["tid"] = {"type": "integer"}
    return {
        **schema,
        "properties": properties,
        "additionalProperties": False,
        "required": sorted(set(schema["required"]) | {"tid", *extra_required}),
    }


# hf-eco2ai's events: exactly these keys, integer ids, and slices with joules as arguments.
OWN_EVENT_SCHEMA: Dict[str, Any] = {
    "oneOf": [
        {
            **_closed(COMPLETE_EVENT, ("cat", "args")),
            "properties": {
                **_closed(COMPLETE_EVENT)["properties"],
                "args": {
                    "type": "object",
                    "required": ["joules", "mean_watts", "joules_by_channel", "flags"],
                    "properties": {
                        "joules": _NUMBER,
                        "mean_watts": {"type": ["number", "null"]},
                        "joules_by_channel": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                        "flags": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        {
            **_closed(COUNTER_EVENT),
            "properties": {
                **_closed(COUNTER_EVENT)["properties"],
                "name": {"type": "string", "pattern": r"^power .+ \(W\)$"},
                "args": {
                    "type": "object",
                    "required": ["watts"],
                    "additionalProperties": False,
                    "properties": {"watts": _NUMBER},
                },
            },
        },
        _closed(METADATA_EVENT),
    ],
}
