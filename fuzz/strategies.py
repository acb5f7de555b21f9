"""Hypothesis strategies for ops, derived from the `spec` metadata of models/ops.py (the one place).

`field_strategy(f)` covers a field's whole range uniformly-ish; `steered=True` mixes in the values
the series cares about (PMD-aligned starts, whole regions, the subpages 0/1/511, pids 0 and 1).
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from pmdswap_fuzz.models import ops as O

__all__ = ["field_strategy", "op_strategy", "any_op", "op_lists"]

P = O.HPAGE_PMD_NR


def field_strategy(f: dataclasses.Field, steered: bool = False) -> st.SearchStrategy:
    kind, kw = O.field_kind(f)
    if kind == "enum":
        return st.sampled_from(tuple(kw["choices"]))
    if kind == "bool":
        return st.booleans()
    lo, hi = O.FIELD_BOUNDS[kind]
    whole = st.integers(lo, hi)
    if not steered:
        return whole
    if kind == "pid":
        return st.sampled_from((0, 0, 0, 1, 1, 2, 3))
    if kind == "page":
        aligned = st.sampled_from(tuple(r * P for r in range(O.NR_REGIONS)))
        near = st.builds(lambda r, d: min(max(r * P + d, lo), hi),
                         st.integers(0, O.NR_REGIONS - 1), st.sampled_from((-1, 1, 2, P // 2, P - 1)))
        return st.one_of(aligned, aligned, near, whole)
    if kind == "npages":
        regions = st.sampled_from(tuple(n * P for n in range(1, O.NR_REGIONS + 1)))
        return st.one_of(regions, regions, st.sampled_from((1, 2, P - 1, P + 1, P // 2)), whole)
    if kind == "value":
        return st.integers(1, 255) | whole
    return whole


def op_strategy(cls: type[O.Op], steered: bool = False) -> st.SearchStrategy:
    return st.builds(cls, **{f.name: field_strategy(f, steered) for f in O.op_fields(cls)})


def any_op(steered: bool = False) -> st.SearchStrategy:
    return st.one_of([op_strategy(cls, steered) for cls in O.OPS])


def op_lists(max_size: int = 40, steered: bool = False) -> st.SearchStrategy:
    return st.lists(any_op(steered), max_size=max_size)
