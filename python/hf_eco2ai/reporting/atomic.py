"""Writing a report so that a reader never sees half of it.

A writer killed between creating its temporary file and renaming it (SIGKILL, power loss) leaves a
``.<name>.<random>.partial`` file behind. Each write removes such files in its directory once they
are older than ``STALE_PARTIAL_AGE_S``, except those this process is writing right now.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Set, Union

STALE_PARTIAL_AGE_S = 60.0
_PARTIAL_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.partial")

_writing_lock = threading.Lock()
_writing_now: Set[str] = set()


def _remove_stale_partials(directory: Path) -> None:
    """Best effort: a file another process removes or renames first, or that cannot be removed, is skipped."""
    oldest_kept_s = time.time() - STALE_PARTIAL_AGE_S
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    with _writing_lock:
        ours = set(_writing_now)
    for entry in entries:
        if not _PARTIAL_NAME.fullmatch(entry.name) or entry.path in ours:
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < oldest_kept_s:
                os.unlink(entry.path)
        except OSError:
            continue


def write_text_atomically(path: Union[str, "os.PathLike[str]"], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory.

    The temporary file is flushed and fsynced, then renamed over ``path`` (``os.replace`` is atomic
    on POSIX and Windows within one file system), so a process killed at any moment leaves either
    the previous file or the complete new one. Parent directories are created (again, if they
    vanished). Stale temporary files of killed writers are removed first. Thread-safe.

    Raises:
        OSError: the directory cannot be created or written; the temporary file is removed then.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target.parent)
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=str(target.parent))
    with _writing_lock:
        _writing_now.add(temporary_name)
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
    finally:
        with _writing_lock:
            _writing_now.discard(temporary_name)
    return target
