"""Failpoints: places where the fault suite (`make chaos`) makes a process fail on purpose.

Inert unless ``KEFU_FAILPOINTS_DIR`` names a directory (the suite sets it for the processes it
starts; nothing else should). A failpoint is armed by creating a file of its name there:

- ``crash(name)``: the process dies on the spot (``os._exit``, no clean-up, as a kill would
  leave it). The file is removed first, so the process that replaces it goes on.
- ``poisons(name, body)``: True while the file exists and its content occurs in ``body``: a
  message that fails every time it is handled, as one that hits a bug would.
"""

from __future__ import annotations

import os
from pathlib import Path

# A crash at a failpoint, told apart from a real one in the supervisor's log.
CRASH_EXIT_CODE = 86

_DIRECTORY = os.environ.get("KEFU_FAILPOINTS_DIR")


def crash(name: str) -> None:
    if _DIRECTORY is None:
        return
    try:
        Path(_DIRECTORY, name).unlink()
    except FileNotFoundError:
        return
    os._exit(CRASH_EXIT_CODE)


def poisons(name: str, body: bytes) -> bool:
    if _DIRECTORY is None:
        return False
    try:
        marker = Path(_DIRECTORY, name).read_bytes().strip()
    except FileNotFoundError:
        return False
    return bool(marker) and marker in body
