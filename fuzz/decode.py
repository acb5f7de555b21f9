"""The fuzzer byte decoder: every byte string is a valid op list (`decode` is total).

Layout, derived from models/ops.py: one opcode byte, then the op's fields in declaration order, each
a fixed-width little-endian integer:

    kind     width  folding into range
    pid      1      lo + b % (hi - lo + 1)
    bool     1      b % 2
    enum     1      choices[b % len(choices)]
    value    2      lo + w % (hi - lo + 1)
    page     2      bit 15 set: PMD-aligned, (w & 0x7fff) % NR_REGIONS * HPAGE_PMD_NR
                    else lo + w % (hi - lo + 1)
    npages   2      bit 15 set: whole regions, ((w & 0x7fff) % NR_REGIONS + 1) * HPAGE_PMD_NR
                    else lo + w % (hi - lo + 1)

So a mutation of one byte changes one field of one op, and half of all random page/npages words are
PMD-aligned (the states the series changes). The opcode byte picks the op class through
`OPCODE_TABLE`, 256 entries dealt out in proportion to `WEIGHTS`: interesting ops own more opcodes.
A trailing partial op is dropped, and at most `MAX_OPS` ops are decoded.

`encode` is the inverse on valid op lists (`decode(encode(ops)) == ops`), so hand-written traces
can seed an atheris corpus.
"""

from __future__ import annotations

from pmdswap_fuzz.models import ops as O

__all__ = ["MAX_OPS", "WEIGHTS", "OPCODE_TABLE", "decode", "encode", "op_size"]

MAX_OPS = 128
ALIGNED_BIT = 0x8000

# The biasing hook: relative frequency of each op class among opcode bytes. An op missing here gets
# DEFAULT_WEIGHT, so a new op in OPS is decodable without touching this file.
DEFAULT_WEIGHT = 4
WEIGHTS: dict[type[O.Op], int] = {
    O.Mmap: 16, O.Write: 24, O.Fault: 20, O.Pageout: 22, O.Evict: 12, O.Fork: 14, O.Exit: 5,
    O.Munmap: 12, O.Mprotect: 10, O.Dontneed: 8, O.Free: 8, O.MremapMove: 10, O.MremapShrink: 6,
    O.Swapoff: 6, O.Swapon: 4, O.ClearRefs: 6, O.UffdRegister: 7, O.UffdWp: 8, O.UffdMove: 8,
    O.SplitThp: 6, O.Fragment: 4, O.ZswapEnable: 3, O.Willneed: 5, O.Mincore: 5,
    O.Cold: 4, O.UffdRwp: 5,
}


def _opcode_table() -> tuple[type[O.Op], ...]:
    """256 opcode slots dealt to OPS in proportion to their weights (largest remainder, >= 1 each)."""
    weights = [max(1, WEIGHTS.get(cls, DEFAULT_WEIGHT)) for cls in O.OPS]
    spare = 256 - len(O.OPS)
    total = sum(weights)
    share = [w * spare / total for w in weights]
    counts = [1 + int(s) for s in share]
    order = sorted(range(len(O.OPS)), key=lambda i: (-(share[i] - int(share[i])), i))
    for i in order[:256 - sum(counts)]:
        counts[i] += 1
    # interleave, so neighbouring opcodes are different ops (a +1 mutation changes the op)
    table: list[type[O.Op]] = []
    left = counts[:]
    while len(table) < 256:
        for i, cls in enumerate(O.OPS):
            if left[i]:
                table.append(cls)
                left[i] -= 1
    return tuple(table)


OPCODE_TABLE: tuple[type[O.Op], ...] = _opcode_table()
_FIRST_OPCODE: dict[type[O.Op], int] = {}
for _code, _cls in enumerate(OPCODE_TABLE):
    _FIRST_OPCODE.setdefault(_cls, _code)
assert set(_FIRST_OPCODE) == set(O.OPS), "every op needs an opcode"


# ---- per-class field codecs ---------------------------------------------------------------------------
def _codec(f):
    """(name, width, decode(int) -> value, encode(value) -> int) for one dataclass field."""
    kind, kw = O.field_kind(f)
    if kind == "enum":
        choices = tuple(kw["choices"])
        return (f.name, 1, lambda b, c=choices: c[b % len(c)], choices.index)
    lo, hi = O.FIELD_BOUNDS[kind]
    span = hi - lo + 1
    # encode writes v - lo: it must fit the width, and below ALIGNED_BIT for page/npages
    assert span <= (ALIGNED_BIT if kind in ("page", "npages") else 256 if kind == "pid" else 1 << 32)
    if kind == "bool":
        return (f.name, 1, lambda b: bool(b & 1), lambda v: int(bool(v)))
    if kind == "pid":
        return (f.name, 1, lambda b, lo=lo, n=span: lo + b % n, lambda v, lo=lo: v - lo)
    if kind == "page":
        def dec(w, lo=lo, n=span):
            if w & ALIGNED_BIT:
                return (w & 0x7FFF) % O.NR_REGIONS * O.HPAGE_PMD_NR
            return lo + w % n
        return (f.name, 2, dec, lambda v, lo=lo: v - lo)
    if kind == "npages":
        def dec(w, lo=lo, n=span):
            if w & ALIGNED_BIT:
                return ((w & 0x7FFF) % O.NR_REGIONS + 1) * O.HPAGE_PMD_NR
            return lo + w % n
        return (f.name, 2, dec, lambda v, lo=lo: v - lo)
    width = 1 if span <= 256 else 2 if span <= 0x10000 else 4
    return (f.name, width, lambda w, lo=lo, n=span: lo + w % n, lambda v, lo=lo: v - lo)


_CODECS = {cls: tuple(_codec(f) for f in O.op_fields(cls)) for cls in O.OPS}
_SIZES = {cls: 1 + sum(c[1] for c in codecs) for cls, codecs in _CODECS.items()}


def op_size(cls: type[O.Op]) -> int:
    """Bytes one op of this class takes (opcode included)."""
    return _SIZES[cls]


def decode(data: bytes) -> list[O.Op]:
    """Ops from fuzzer bytes; never raises, every op is within FIELD_BOUNDS, at most MAX_OPS."""
    ops: list[O.Op] = []
    pos, n = 0, len(data)
    table, codecs, sizes = OPCODE_TABLE, _CODECS, _SIZES
    while pos < n and len(ops) < MAX_OPS:
        cls = table[data[pos]]
        end = pos + sizes[cls]
        if end > n:
            break  # trailing partial op
        pos += 1
        kwargs = {}
        for name, width, dec, _ in codecs[cls]:
            if width == 1:
                raw = data[pos]
            else:
                raw = int.from_bytes(data[pos:pos + width], "little")
            kwargs[name] = dec(raw)
            pos += width
        ops.append(cls(**kwargs))
    return ops


def encode(ops: list[O.Op]) -> bytes:
    """Bytes that decode to exactly `ops` (valid ops, at most MAX_OPS of them)."""
    if len(ops) > MAX_OPS:
        raise ValueError(f"{len(ops)} ops: the decoder reads at most MAX_OPS={MAX_OPS}")
    out = bytearray()
    for op in ops:
        cls = type(op)
        out.append(_FIRST_OPCODE[cls])
        for name, width, _, enc in _CODECS[cls]:
            out += enc(getattr(op, name)).to_bytes(width, "little")
    return bytes(out)
