"""fuzz/decode.py: decode is total and yields valid ops; encode is its inverse on valid op lists."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmdswap_fuzz.fuzz.decode import MAX_OPS, OPCODE_TABLE, WEIGHTS, decode, encode, op_size
from pmdswap_fuzz.fuzz.strategies import op_lists
from pmdswap_fuzz.fuzz.trace import format_trace, parse_trace
from pmdswap_fuzz.models import ops as O


def assert_valid(op: O.Op) -> None:
    assert type(op) in O.OPS
    for f in O.op_fields(type(op)):
        kind, kw = O.field_kind(f)
        v = getattr(op, f.name)
        if kind == "enum":
            assert v in kw["choices"]
        elif kind == "bool":
            assert v is True or v is False
        else:
            lo, hi = O.FIELD_BOUNDS[kind]
            assert type(v) is int and lo <= v <= hi, (op, f.name)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1500))
def test_decode_is_total(data):
    ops = decode(data)
    assert len(ops) <= MAX_OPS
    for op in ops:
        assert_valid(op)
    # valid ops are exactly what the trace parser accepts
    assert parse_trace(format_trace(ops)) == ops


@settings(max_examples=300, deadline=None)
@given(op_lists(max_size=MAX_OPS))
def test_encode_decode_round_trip(ops):
    assert decode(encode(ops)) == ops


@settings(max_examples=100, deadline=None)
@given(op_lists(max_size=20, steered=True))
def test_round_trip_steered_values(ops):
    assert decode(encode(ops)) == ops


def test_edge_inputs():
    assert decode(b"") == []
    for b in range(256):
        ops = decode(bytes([b]))
        assert len(ops) <= 1
        for op in ops:
            assert_valid(op)
    assert len(decode(b"\xff" * 100_000)) <= MAX_OPS


def test_trailing_partial_op_dropped():
    ops = [O.Mmap(0, 0, 1024), O.Write(0, 0, 512, 7)]
    data = encode(ops)
    assert decode(data[:-1]) == ops[:1]
    assert decode(data + encode([O.Fork(1)])[:1]) == ops


def test_max_ops():
    ops = [O.Evict()] * MAX_OPS
    assert decode(encode(ops) * 2) == ops
    with pytest.raises(ValueError):
        encode(ops + [O.Evict()])


def test_one_byte_mutation_changes_one_op():
    ops = [O.Mmap(0, 0, 1024), O.Write(0, 0, 512, 7), O.Pageout(0, 0, 512)]
    data = bytearray(encode(ops))
    data[op_size(O.Mmap) + 3] ^= 0x01  # a byte of the write's start field
    got = decode(bytes(data))
    assert got[0] == ops[0] and got[2] == ops[2] and got[1] != ops[1]
    assert dataclasses.replace(got[1], start=0) == ops[1]


def test_aligned_bit_gives_pmd_aligned_pages():
    (op,) = decode(encode([O.Pageout(0, 0, 1)])[:2] + (0x8001).to_bytes(2, "little")
                   + (0x8002).to_bytes(2, "little"))
    assert op == O.Pageout(0, O.HPAGE_PMD_NR, 3 * O.HPAGE_PMD_NR)


def test_opcode_table_follows_weights():
    counts = Counter(OPCODE_TABLE)
    assert len(OPCODE_TABLE) == 256 and set(counts) == set(O.OPS)
    assert counts[O.Write] > counts[O.ZswapEnable]
    heavy = max(WEIGHTS, key=WEIGHTS.get)
    assert counts[heavy] == max(counts.values())
