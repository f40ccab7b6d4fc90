"""The stdio wire of ``mcp serve`` (``etoro_nb.mcp.wire``): lines in and out through asyncio
pipes, stray prints sent to stderr (never onto the protocol), and the SDK's own streams
where stdin is a regular file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import asyncio, sys
from etoro_nb.mcp.wire import open_wire

async def main():
    wire = await open_wire()
    if wire is None:
        print("no wire", file=sys.stderr)
        return
    reader, writer, restore = wire
    print("a stray print")  # must not reach the wire
    async for line in reader:
        await writer.write("echo " + line)
        await writer.flush()
    restore()

asyncio.run(main())
"""


def test_the_wire_carries_lines_and_keeps_stray_output_off_it() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], input='{"a": 1}\n{"b": "\\u00e9"}\n',
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == 'echo {"a": 1}\necho {"b": "\\u00e9"}\n'
    assert "a stray print" in run.stderr


FD_CHILD = """
import asyncio, os, sys
from etoro_nb.mcp.wire import open_wire

async def main():
    before = sorted(os.listdir("/proc/self/fd"))
    wire = await open_wire()
    print("wire" if wire else "no wire", sorted(os.listdir("/proc/self/fd")) == before,
          file=sys.stderr)

asyncio.run(main())
"""


def test_falling_back_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """stdin a pipe but stdout a regular file (``mcp serve > log``): the wire can't be made,
    and the read side already made must not stay open (or keep reading stdin)."""
    with (tmp_path / "out.log").open("w") as stdout:
        run = subprocess.run([sys.executable, "-c", FD_CHILD], input="", stdout=stdout,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == "no wire True"


def test_a_regular_file_on_stdin_leaves_the_sdks_streams(tmp_path: Path) -> None:
    """stdin a regular file: no wire (the SDK reads it), nothing written, nothing left open."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"a": 1}\n')
    with source.open() as stdin:
        run = subprocess.run([sys.executable, "-c", FD_CHILD], stdin=stdin, capture_output=True,
                             text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == "no wire True" and run.stdout == ""
