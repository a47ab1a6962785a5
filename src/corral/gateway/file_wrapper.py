"""``wsgi.file_wrapper``: lets the gateway send a file with ``os.sendfile`` (PEP 3333)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import IO, Any


class FileWrapper:
    """Wraps a file-like object: iterated in blocks, or sent with sendfile by the gateway."""

    def __init__(self, filelike: IO[bytes] | Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close

    def fileno(self) -> int:
        """The file descriptor, or -1 when the object has none (then it is iterated)."""
        try:
            return int(self.filelike.fileno())
        except (AttributeError, OSError, ValueError):
            return -1

    def span(self) -> tuple[int, int | None]:
        """The current offset and the bytes left, for a regular file; (0, None) otherwise."""
        fd = self.fileno()
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return 0, None
            offset = int(self.filelike.tell())
        except (AttributeError, OSError, ValueError):
            return 0, None
        return offset, max(0, st.st_size - offset)

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block
