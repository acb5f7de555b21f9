"""Load an input file: a text trace (`*.trace`, or text that starts with the header) or raw fuzzer bytes."""

from __future__ import annotations

import os
from pathlib import Path

from models import ops as O

from .decode import decode
from .trace import TraceError, looks_like_trace, parse_trace_bytes

__all__ = ["BadInput", "TraceError", "TRACE", "BYTES", "load_input", "read_input_bytes"]

TRACE, BYTES = "trace", "bytes"
TRACE_SUFFIX = ".trace"


class BadInput(Exception):
    """An input file that cannot be read at all (missing, a directory, unreadable); one-line message."""

    def __init__(self, filename, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename, self.message = str(filename), message


def read_input_bytes(path: str | os.PathLike) -> bytes:
    p = Path(path)
    try:
        if p.is_dir():
            raise BadInput(p, "is a directory, not an input file")
        return p.read_bytes()
    except FileNotFoundError:
        raise BadInput(p, "no such file") from None
    except IsADirectoryError:
        raise BadInput(p, "is a directory, not an input file") from None
    except PermissionError:
        raise BadInput(p, "permission denied") from None
    except OSError as e:
        raise BadInput(p, f"cannot read: {e.strerror or e}") from None


def load_input(path: str | os.PathLike) -> tuple[list[O.Op], str]:
    """(ops, kind): kind is TRACE or BYTES. A `*.trace` file is always parsed as a trace (a malformed
    one raises TraceError, it is never decoded as bytes); so is any file that starts with the header."""
    data = read_input_bytes(path)
    name = str(path)
    if name.endswith(TRACE_SUFFIX) or looks_like_trace(data):
        return parse_trace_bytes(data, name), TRACE
    return decode(data), BYTES
