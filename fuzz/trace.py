"""The text trace format: versioned, line based, one op per line, derived from models/ops.py.

    # a comment; blank lines are allowed
    pmdswap-trace 1
    mmap pid=0 start=0 npages=1024 hugepage=1
    write pid=0 start=0 npages=512 value=7   # a trailing comment
    pageout pid=0 start=0 npages=512
    evict

The first line that is neither blank nor a comment is the version header. Each op line is the op's
trace keyword (`Op.name`) then `field=value` pairs in any order; a field with a default may be left
out. Numbers are decimal (or 0x hex), bools are 0/1, enum fields use the names of their `spec`
metadata (Mprotect's prot: none/r/rw). Every value is checked against `FIELD_BOUNDS` / the enum's
choices, so a trace that parses is a list of valid ops. `format_trace` writes every field, so
`parse_trace(format_trace(ops)) == ops`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from pmdswap_fuzz.models import ops as O

__all__ = ["TRACE_VERSION", "HEADER", "TraceError", "format_trace", "format_op", "parse_trace",
           "parse_trace_bytes", "looks_like_trace"]

TRACE_VERSION = 1
MAGIC = "pmdswap-trace"
HEADER = f"{MAGIC} {TRACE_VERSION}"


class TraceError(ValueError):
    """A text trace that does not parse; `line` is 1-based (0 when no line applies)."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename}:{line}: {message}")
        self.filename, self.line, self.message = str(filename), line, message


# ---- per-op field tables, built once from OPS ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    kind: str
    lo: int
    hi: int
    required: bool
    names: Mapping[int, str] | None  # enum value -> name
    values: Mapping[str, int] | None  # enum name -> value


def _field_table(cls: type[O.Op]) -> tuple[_Field, ...]:
    out = []
    for f in O.op_fields(cls):
        kind, kw = O.field_kind(f)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if kind == "enum":
            choices = tuple(kw["choices"])
            names = dict(kw.get("names") or {c: str(c) for c in choices})
            out.append(_Field(f.name, kind, min(choices), max(choices), required,
                              {c: names[c] for c in choices}, {names[c]: c for c in choices}))
        else:
            lo, hi = O.FIELD_BOUNDS[kind]
            out.append(_Field(f.name, kind, lo, hi, required, None, None))
    return tuple(out)


_FIELDS: dict[type[O.Op], tuple[_Field, ...]] = {cls: _field_table(cls) for cls in O.OPS}


# ---- writing -----------------------------------------------------------------------------------------
def _format_value(fd: _Field, v) -> str:
    if fd.kind == "bool":
        return "1" if v else "0"
    if fd.names is not None:
        return fd.names[v]
    return str(int(v))


def format_op(op: O.Op) -> str:
    """One trace line (no newline) for `op`; every field is written."""
    parts = [op.name]
    parts += [f"{fd.name}={_format_value(fd, getattr(op, fd.name))}" for fd in _FIELDS[type(op)]]
    return " ".join(parts)


def format_trace(ops: Iterable[O.Op], comments: Iterable[str] | None = None,
                 notes: Mapping[int, str] | None = None) -> str:
    """The text trace of `ops`. `comments` become `# ` lines before the header; `notes` maps an op
    index to a trailing `# note` on that op's line (e.g. "<- diverges here")."""
    lines = []
    for c in comments or ():
        lines += [f"# {s}".rstrip() for s in str(c).splitlines() or [""]]
    lines.append(HEADER)
    notes = notes or {}
    for i, op in enumerate(ops):
        line = format_op(op)
        if i in notes:
            line += "  # " + " ".join(str(notes[i]).split())
        lines.append(line)
    return "\n".join(lines) + "\n"


# ---- reading -----------------------------------------------------------------------------------------
def _bad_char(line: str) -> str | None:
    for ch in line:
        if ch in "\t":
            continue
        if ch < " " or ch == "\x7f" or ch == "\ufffd":
            return f"binary data (character {ch!r}): not a text trace"
    return None


def _parse_int(fd: _Field, raw: str) -> int | None:
    s = raw[1:] if raw[:1] in "+-" else raw
    try:
        if s[:2].lower() == "0x" and len(s) > 2:
            v = int(s[2:], 16)
        elif s.isascii() and s.isdigit():
            v = int(s, 10)
        else:
            return None
    except ValueError:
        return None
    return -v if raw.startswith("-") else v


def _parse_op(filename: str, lineno: int, line: str) -> O.Op:
    words = line.split()
    cls = O.OP_BY_NAME.get(words[0])
    if cls is None:
        raise TraceError(filename, lineno, f"unknown op {words[0]!r} (ops: {', '.join(O.OP_BY_NAME)})")
    table = {fd.name: fd for fd in _FIELDS[cls]}
    kwargs: dict[str, object] = {}
    for word in words[1:]:
        key, eq, raw = word.partition("=")
        if not eq:
            raise TraceError(filename, lineno, f"{cls.name}: expected key=value, got {word!r}")
        fd = table.get(key)
        if fd is None:
            known = ", ".join(table) or "none"
            raise TraceError(filename, lineno, f"{cls.name}: unknown field {key!r} (fields: {known})")
        if key in kwargs:
            raise TraceError(filename, lineno, f"{cls.name}: duplicate field {key!r}")
        if fd.values is not None:
            if raw not in fd.values:
                raise TraceError(filename, lineno, f"{cls.name}: {key}={raw!r} is not one of "
                                 f"{'/'.join(fd.values)}")
            kwargs[key] = fd.values[raw]
            continue
        v = _parse_int(fd, raw)
        if v is None:
            raise TraceError(filename, lineno, f"{cls.name}: {key}={raw!r} is not a number")
        if not fd.lo <= v <= fd.hi:
            raise TraceError(filename, lineno,
                             f"{cls.name}: {key}={v} is out of range {fd.lo}..{fd.hi}")
        kwargs[key] = bool(v) if fd.kind == "bool" else v
    missing = [fd.name for fd in _FIELDS[cls] if fd.required and fd.name not in kwargs]
    if missing:
        raise TraceError(filename, lineno, f"{cls.name}: missing field(s) {', '.join(missing)}")
    return cls(**kwargs)


# A trace longer than this is refused: a generated sequence has at most 1024 ops (run --length)
# and a whole-window op runs for milliseconds, so 20 000 ops is already minutes of replay
MAX_TRACE_OPS = 20_000


def parse_trace(text: str, filename: str = "<trace>") -> list[O.Op]:
    """Parse a text trace; raise `TraceError(filename, line, message)` on any malformed input."""
    ops: list[O.Op] = []
    header_seen = False
    lineno = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")  # CRLF files; other control characters are binary data
        bad = _bad_char(raw)
        if bad:
            raise TraceError(filename, lineno, bad)
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not header_seen:
            words = line.split()
            if words[0] != MAGIC:
                raise TraceError(filename, lineno, f"missing version header: expected {HEADER!r} "
                                 f"before the first op, got {line[:40]!r}")
            if len(words) != 2 or words[1] != str(TRACE_VERSION):
                raise TraceError(filename, lineno, f"unsupported trace version {line[:40]!r}: "
                                 f"this reader reads {HEADER!r}")
            header_seen = True
            continue
        if len(ops) == MAX_TRACE_OPS:
            raise TraceError(filename, lineno, f"more than {MAX_TRACE_OPS} ops: longer than "
                             "anything the fuzzer writes or can replay in reasonable time "
                             "(minimize it, or cut it into pieces)")
        ops.append(_parse_op(filename, lineno, line))
    if not header_seen:
        last = lineno - 1 if text.endswith("\n") else lineno
        raise TraceError(filename, max(last, 1),
                         f"missing version header {HEADER!r} (empty or comment-only file)")
    return ops


def parse_trace_bytes(data: bytes, filename: str = "<trace>") -> list[O.Op]:
    """`parse_trace` on raw file contents: bytes that are not UTF-8 text are a TraceError too."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TraceError(filename, line, "binary data (not UTF-8 text): not a text trace") from None
    return parse_trace(text, filename)


def looks_like_trace(data: bytes) -> bool:
    """Does this content start (after comments and blank lines) with the trace header's magic?"""
    for raw in data[:4096].split(b"\n"):
        line = raw.split(b"#", 1)[0].strip()
        if line:
            return line.split()[0] == MAGIC.encode()
    return False
