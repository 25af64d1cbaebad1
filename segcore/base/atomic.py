"""Files and folders that are never seen half-written.

A file is written to a temporary name beside it, flushed to disk and renamed over the target (`atomic_write_bytes`,
`atomic_write_json`). A folder is built once, safely when several processes race to build the same one
(`build_folder_once`): each builder works in its own private temporary folder beside the target and renames it into
place; the rename is atomic, so readers see either nothing or a complete folder. A builder that loses the race throws
its copy away and uses the winner's.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

COMPLETE = ".complete"
_RENAME_TRIES = 5


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).exists()


def build_folder_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, calling build(private_folder) first unless a complete copy is already there.
    If build raises, nothing is left behind."""
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        build(staging)
        (staging / COMPLETE).touch()
        _rename_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # already gone once renamed
    return target


def _rename_into_place(staging: Path, target: Path) -> None:
    for _ in range(_RENAME_TRIES):
        try:
            os.rename(staging, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if is_complete(target):
            return  # another process won the race with the same content
        _set_aside(target)  # an incomplete folder left by a crash or an older version
    raise OSError(errno.EEXIST, f"could not move the new folder into place at {target}")


def _set_aside(stale: Path) -> None:
    # Only folders without .complete get here, and this module only ever renames complete ones into place,
    # so a stale folder comes from a crash or an older version. (If two processes both set one aside, the
    # second may move the first one's fresh copy away; both then retry, and one complete copy ends in place.)
    trash = Path(tempfile.mkdtemp(prefix=f".{stale.name}.", suffix=".stale", dir=stale.parent))
    try:
        os.rename(stale, trash / "old")
    except FileNotFoundError:
        pass  # someone else already moved it
    shutil.rmtree(trash, ignore_errors=True)
