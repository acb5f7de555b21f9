"""fuzz/trace.py: the text trace format round-trips, and every malformed input is a TraceError at its line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from pmdswap_fuzz.fuzz.strategies import op_lists
from pmdswap_fuzz.fuzz.trace import HEADER, TraceError, format_trace, parse_trace, parse_trace_bytes
from pmdswap_fuzz.models import ops as O


@settings(max_examples=300, deadline=None)
@given(op_lists(max_size=40))
def test_round_trip_any_ops(ops):
    assert parse_trace(format_trace(ops)) == ops


@settings(max_examples=100, deadline=None)
@given(op_lists(max_size=10))
def test_round_trip_with_comments_and_notes(ops):
    text = format_trace(ops, comments=["one", "two\nthree"], notes={0: "here # and more"})
    assert parse_trace(text) == ops


def test_types_survive_round_trip():
    ops = [O.Mmap(0, 0, 1024, hugepage=False), O.Mprotect(1, 3, 5, O.PROT_READ), O.Evict()]
    back = parse_trace(format_trace(ops))
    assert back == ops
    assert back[0].hugepage is False and type(back[1].prot) is int


def test_example_line_and_defaults():
    ops = parse_trace("# a comment\n\npmdswap-trace 1\n"
                      "mmap pid=0 start=0 npages=1024 hugepage=1\n"
                      "write start=0 npages=512 pid=0   # value and fail_alloc omitted\n"
                      "mprotect pid=0 start=0 npages=1 prot=none\n"
                      "fault pid=0 page=0x10 write=1\r\n"
                      "evict\n")
    assert ops == [O.Mmap(0, 0, 1024, True), O.Write(0, 0, 512), O.Mprotect(0, 0, 1, O.PROT_NONE),
                   O.Fault(0, 16, write=True), O.Evict()]


def _extreme(f, end: int):
    kind, kw = O.field_kind(f)
    if kind == "enum":
        return kw["choices"][end]
    v = O.FIELD_BOUNDS[kind][end]
    return bool(v) if kind == "bool" else v


@pytest.mark.parametrize("end", [0, -1], ids=["low", "high"])
def test_every_op_at_its_bounds(end):
    for cls in O.OPS:
        op = cls(**{f.name: _extreme(f, end) for f in O.op_fields(cls)})
        text = format_trace([op])
        assert text.splitlines()[1].split()[0] == cls.name
        assert parse_trace(text) == [op]


H = HEADER + "\n"
MALFORMED = [
    ("", 1, "missing version header"),
    ("# only a comment\n\n", 2, "missing version header"),
    ("mmap pid=0 start=0 npages=1\n", 1, "missing version header"),
    ("pmdswap-trace 2\n", 1, "unsupported trace version"),
    ("pmdswap-trace\n", 1, "unsupported trace version"),
    ("pmdswap-trace 1 extra\n", 1, "unsupported trace version"),
    (H + "mmap pid=0 start=0 npages=1\nfrobnicate pid=0\n", 3, "unknown op 'frobnicate'"),
    (H + "mmap pid=0 start=0 npages=1 color=3\n", 2, "unknown field 'color'"),
    (H + "evict pid=0\n", 2, "unknown field 'pid'"),
    (H + "mmap pid=0 pid=1 start=0 npages=1\n", 2, "duplicate field 'pid'"),
    (H + "mmap pid=0 start=0\n", 2, "missing field(s) npages"),
    (H + "mmap pid=0 start=0 npages=\n", 2, "is not a number"),
    (H + "mmap pid=0 start=zero npages=1\n", 2, "is not a number"),
    (H + "mmap pid=0 start=1.5 npages=1\n", 2, "is not a number"),
    (H + "mmap pid=0 start=0 npages=0\n", 2, "out of range 1..2048"),
    (H + "mmap pid=4 start=0 npages=1\n", 2, "out of range 0..3"),
    (H + "mmap pid=-1 start=0 npages=1\n", 2, "out of range"),
    (H + "mmap pid=0 start=2048 npages=1\n", 2, "out of range 0..2047"),
    (H + "write pid=0 start=0 npages=1 value=65536\n", 2, "out of range 0..65535"),
    (H + "mmap pid=0 start=0 npages=1 hugepage=2\n", 2, "out of range 0..1"),
    (H + "mprotect pid=0 start=0 npages=1 prot=rwx\n", 2, "not one of none/r/rw"),
    (H + "mprotect pid=0 start=0 npages=1 prot=3\n", 2, "not one of none/r/rw"),
    (H + "mmap pid=0 start=0 npages\n", 2, "expected key=value"),
    (H + "evict\nmm\x00ap\n", 3, "binary data"),
    (H + "\x01\x02\x03\n", 2, "binary data"),
]


@pytest.mark.parametrize("text,line,fragment", MALFORMED, ids=[m[2] for m in MALFORMED])
def test_malformed(text, line, fragment):
    with pytest.raises(TraceError) as ei:
        parse_trace(text, "f.trace")
    e = ei.value
    assert (e.filename, e.line) == ("f.trace", line)
    assert fragment in e.message
    assert str(e).startswith(f"f.trace:{line}: ")
    assert "\n" not in str(e)


def test_non_utf8_bytes_report_their_line():
    with pytest.raises(TraceError) as ei:
        parse_trace_bytes(H.encode() + b"evict\n\xff\xfe\x00garbage\n", "g.trace")
    assert ei.value.line == 3 and "binary data" in ei.value.message


def test_format_writes_every_field():
    line = format_trace([O.Write(1, 2, 3)]).splitlines()[-1]
    assert line == "write pid=1 start=2 npages=3 value=1 fail_alloc=0"
