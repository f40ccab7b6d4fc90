"""Files beside a ledger that must appear whole or not at all."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path


def publish_once(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data`` unless it exists: written aside (synced, ``mode``)
    and linked into place, so processes making it at once all end up reading one whole
    file, the first to link it."""
    draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with suppress(FileExistsError):  # another process made it first
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
