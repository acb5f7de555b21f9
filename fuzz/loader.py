"""Load an input file: a text trace (`*.trace`, or text that starts with the header) or raw fuzzer bytes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pmdswap_fuzz.models import ops as O

from .decode import decode
from .fuzzer_input import RawInputError, ops_from_input, untag_raw
from .trace import TraceError, looks_like_trace, parse_trace_bytes

__all__ = ["BadInput", "TraceError", "TRACE", "BYTES", "load_input", "looks_like_text", "header_bug",
           "read_input_bytes"]

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
    if looks_like_text(data):
        raise BadInput(name, "is text without the 'pmdswap-trace 1' header: not a trace, and "
                       "raw fuzzer inputs are binary (add the header, or name it *.trace to "
                       "see what is wrong with it)")
    try:
        tagged = untag_raw(data)
    except RawInputError as e:
        raise BadInput(name, str(e)) from None
    if tagged is not None:  # a saved libFuzzer input: its form says how to read it
        return ops_from_input(*tagged), BYTES
    return decode(data), BYTES  # untagged: the flat form raw inputs always had


_WORD = re.compile(r"[A-Za-z]{3,}")


def looks_like_text(data: bytes) -> bool:
    """Lines of printable UTF-8 with a word in them: a note, a log, a trace missing its header.
    A fuzzer's raw input (random bytes, mostly unprintable) is never that in practice."""
    if b"\n" not in data or b"\0" in data:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\n\r\t" for c in text) and bool(_WORD.search(text))


def header_bug(path: str | os.PathLike) -> str | None:
    """The `# bug: NAME` line a saved reproducer (corpus/regressions) or a campaign's finding
    starts with, if any."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    for line in head.splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# bug:"):
            return line.split(":", 1)[1].strip() or None
        if line.startswith("# found by:") and " --bug " in line:  # a finding saved before `# bug:`
            return line.split(" --bug ", 1)[1].split()[0]
    return None
