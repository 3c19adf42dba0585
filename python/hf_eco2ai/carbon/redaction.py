"""Masking configured secrets in text that came from a remote answer.

A server may echo the API token (in an error message, or in a field such as ``zone``); whatever is
kept from an answer (results, history, reports, the store, snapshots, log lines) passes through
``redact`` first, so the token is never written anywhere.
"""

from __future__ import annotations

from typing import Iterable, Optional

MASK = "***"


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """``text`` with every non-empty secret in ``secrets`` replaced by ``***``. Pure; never raises."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
