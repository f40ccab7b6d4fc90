"""The stdio wire without a thread per message.

The SDK's ``stdio_server()`` reads and writes through ``anyio.wrap_file``: every line in,
every line out and every flush is a trip to a worker thread. Given streams of its own, it
uses them instead; these are asyncio pipe streams on the process's own stdin and stdout.
As the SDK does for its own, the protocol keeps private copies of the two descriptors
while fd 0 reads the null device and fd 1 writes to stderr, so no stray read or print
can touch the wire. Where stdin or stdout is not a pipe, socket or terminal (a regular
file), ``open_wire`` returns None, having closed what it opened, and the SDK's own streams serve.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

LINE_LIMIT = 1 << 24  # 16 MiB: a message is one line


class LineReader:
    """``async for line in reader``: the lines of the wire, decoded."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class LineWriter:
    """``write`` then ``flush``, as the SDK calls them."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


async def open_wire() -> tuple[LineReader, LineWriter, Any] | None:
    """(reader, writer, restore) on the process's stdio, or None where it cannot be a
    pipe stream; ``restore()`` puts fds 0 and 1 back."""
    loop = asyncio.get_running_loop()
    wire_in = os.fdopen(os.dup(0), "rb", buffering=0)
    wire_out = os.fdopen(os.dup(1), "wb", buffering=0)
    saved_in, saved_out = os.dup(0), os.dup(1)

    def restore() -> None:
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)

    reading: asyncio.ReadTransport | None = None
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        reading, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                  wire_in)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                            wire_out)
    except (OSError, ValueError):  # stdin or stdout is a regular file: close all made here
        if reading is not None:  # else it would go on reading stdin, beside the SDK's reader
            reading.close()
        for fd in (wire_in, wire_out):
            fd.close()
        os.close(saved_in)
        os.close(saved_out)
        return None
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return LineReader(reader), LineWriter(writer), restore
