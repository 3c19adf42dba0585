"""Writing a report so that a reader never sees half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def write_text_atomically(path: Union[str, "os.PathLike[str]"], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory.

    The temporary file is flushed and fsynced, then renamed over ``path`` (``os.replace`` is atomic
    on POSIX and Windows within one file system), so a process killed at any moment leaves either
    the previous file or the complete new one. Parent directories are created. Raises ``OSError``
    when the directory cannot be written; the temporary file is removed in that case.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=str(target.parent)
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; a report holds no secret and is meant to be shared. Reading the
        # umask would mean changing it, which is process-wide and not thread-safe.
        os.chmod(temporary_name, 0o644)
        os.replace(temporary_name, target)
    except BaseException:
        try:
            os.unlink(temporary_name)
        except FileNotFoundError:
            pass
        raise
    return target
