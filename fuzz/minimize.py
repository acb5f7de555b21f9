"""Op-level delta debugging of a diverging trace, keeping its `Divergence.signature()`.

Passes, repeated until none makes progress: cut after the diverging op; ddmin over chunks of ops
(down to single ops); drop every op of one process; simplify each field (toward its default, toward
0, PMD-aligned, halved ranges). A candidate is kept only if it diverges with the same signature and
is strictly smaller (fewer ops, or one field closer to simple), so the loop ends. The result is then
replayed `replays` times and must give the identical divergence each time.
"""

from __future__ import annotations

import dataclasses

from pmdswap_fuzz.models import ops as O

from .guard import run_guarded

__all__ = ["NotReproducible", "minimize"]

P = O.HPAGE_PMD_NR


class NotReproducible(Exception):
    """The input does not diverge with the wanted signature (or the result does not replay)."""


class _Tester:
    def __init__(self, signature: str, bug: str | None, max_runs: int) -> None:
        self.signature, self.bug, self.max_runs = signature, bug, max_runs
        self.cache: dict[tuple, int | None] = {}  # ops -> executed (None: not interesting)
        self.runs = 0

    def __call__(self, ops: list[O.Op]) -> int | None:
        """Ops executed up to the divergence if `ops` diverges with the signature, else None."""
        key = tuple(ops)
        if key in self.cache:
            return self.cache[key]
        if self.runs >= self.max_runs:
            return None
        self.runs += 1
        res = run_guarded(list(ops), self.bug)
        ok = res.divergence is not None and res.divergence.signature() == self.signature
        self.cache[key] = res.executed if ok else None
        return self.cache[key]


def _ddmin(ops: list[O.Op], test: _Tester) -> list[O.Op]:
    n = 2
    while len(ops) >= 2:
        size = -(-len(ops) // n)
        for i in range(0, len(ops), size):
            cand = ops[:i] + ops[i + size:]
            got = test(cand)
            if got is not None:
                ops = cand[:got]
                n = max(n - 1, 2)
                break
        else:
            if n >= len(ops):
                break
            n = min(2 * n, len(ops))
    return ops


def _drop_pids(ops: list[O.Op], test: _Tester) -> list[O.Op]:
    pids = sorted({op.pid for op in ops if hasattr(op, "pid")}, reverse=True)
    for pid in pids:
        cand = [op for op in ops if getattr(op, "pid", None) != pid]
        if len(cand) < len(ops):
            got = test(cand)
            if got is not None:
                ops = cand[:got]
    return ops


def _default(f: dataclasses.Field):
    return None if f.default is dataclasses.MISSING else f.default


def _cost(f: dataclasses.Field, v) -> tuple[int, int]:
    """How far from simple a field value is: its default costs nothing, else smaller is simpler."""
    d = _default(f)
    if d is not None and v == d:
        return (0, 0)
    return (1, int(v))


def _candidates(f: dataclasses.Field, v) -> list:
    kind, kw = O.field_kind(f)
    out = []
    d = _default(f)
    if d is not None:
        out.append(d)
    if kind == "bool":
        out.append(False)
    elif kind == "enum":
        out += list(kw["choices"])
    else:
        lo, _ = O.FIELD_BOUNDS[kind]
        out.append(lo)
        if kind == "npages":
            out += [P, (v // P) * P, v // 2, -(-v // P) * P]
        elif kind == "page":
            out += [(v // P) * P, v - v % 64, v // 2]
        else:
            out += [v // 2, v - 1]
    lo, hi = O.FIELD_BOUNDS.get(kind, (min(out, default=0), max(out, default=0)))
    seen, res = set(), []
    for c in out:
        if kind == "enum" or kind == "bool" or lo <= c <= hi:
            if c != v and c not in seen and _cost(f, c) < _cost(f, v):
                seen.add(c)
                res.append(c)
    return res


def _simplify_fields(ops: list[O.Op], test: _Tester) -> list[O.Op]:
    i = 0
    while i < len(ops):
        op = ops[i]
        for f in O.op_fields(type(op)):
            for c in _candidates(f, getattr(op, f.name)):
                cand_op = dataclasses.replace(op, **{f.name: c})
                cand = ops[:i] + [cand_op] + ops[i + 1:]
                got = test(cand)
                if got is not None:
                    ops = cand[:got]
                    op = cand_op
                    break
            if i >= len(ops):
                break
        i += 1
    return ops


def minimize(ops: list[O.Op], signature: str, bug: str | None = None, replays: int = 3,
             max_runs: int = 5000) -> list[O.Op]:
    """The smallest trace found that still diverges with `signature`; raises NotReproducible if
    `ops` does not, or if the result does not replay identically `replays` times."""
    test = _Tester(signature, bug, max_runs)
    got = test(list(ops))
    if got is None:
        raise NotReproducible(f"the trace does not diverge with signature {signature}")
    cur = list(ops)[:got]
    while True:
        before = (len(cur), [tuple(_cost(f, getattr(op, f.name)) for f in O.op_fields(type(op)))
                             for op in cur])
        for step in (_ddmin, _drop_pids, _simplify_fields):
            cur = step(cur, test)
        after = (len(cur), [tuple(_cost(f, getattr(op, f.name)) for f in O.op_fields(type(op)))
                            for op in cur])
        if after == before or test.runs >= max_runs:
            break
    first = None
    for _ in range(max(1, replays)):
        res = run_guarded(list(cur), bug)
        if res.divergence is None or res.divergence.signature() != signature:
            raise NotReproducible(f"the minimised trace did not replay with signature {signature}")
        if first is None:
            first = res.divergence
        elif res.divergence != first:
            raise NotReproducible("the minimised trace replays with different divergences")
    return cur
