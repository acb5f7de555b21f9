"""Assertions shared by the two kernels' scenario matrices (test_legacy_scenarios.py,
test_pmd_scenarios.py): each compares observe() of one model with what the kernel does."""

from __future__ import annotations

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.invariants import check_invariants
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe

STATE_NAMES = {UNMAPPED: "unmapped", NONE: "none", PRESENT: "present", SWAPPED: "swapped"}


def val(value: int, pages) -> np.ndarray:
    """What `Write(value)` leaves in `pages`: (value << 16) | page."""
    return (value << 16) | np.asarray(pages, dtype=np.uint32)


def apply(k, op: O.Op, expect: int = 0) -> int:
    """Apply `op`, assert its user-visible result and that every model invariant still holds.
    A kernel with a `test_ops` list records the op there (the differential replay reads it)."""
    if hasattr(k, "test_ops"):
        k.test_ops.append(op)
    res = k.apply(op)
    assert res == expect, f"{op}: returned {O.result_name(res)}, kernel returns {O.result_name(expect)}"
    inv = check_invariants(k)
    assert inv is None, f"after {op}: invariant {inv[0]} broken: {inv[1]}"
    return res


def assert_pages(k, pid: int, pages, **want) -> None:
    """Per-page fields of observe(k).procs[pid] (state, contents, swp_off, soft_dirty, uffd_wp,
    exclusive, writable, pmd_level) equal `want` over `pages` (a scalar applies to every page)."""
    po = observe(k).procs[pid]
    pages = np.atleast_1d(np.asarray(pages))
    if not pages.size:
        return
    for name, exp in want.items():
        got = getattr(po, name)[pages]
        exp = np.broadcast_to(np.asarray(exp), got.shape)
        bad = np.flatnonzero(got != exp)
        if bad.size:
            i = int(bad[0])
            g, e = got[i], exp[i]
            if name == "state":
                g, e = STATE_NAMES[int(g)], STATE_NAMES[int(e)]
            raise AssertionError(f"pid {pid} page {int(pages[i])}: {name} is {g}, kernel has {e} "
                                 f"({bad.size} of {pages.size} pages differ)")


def assert_slots(k, slots, count=None, cached=None, free=None) -> None:
    """Per-slot count / swap-cache presence / free state of the device."""
    o = observe(k)
    assert o.swap_count is not None, "no swap device"
    slots = np.atleast_1d(np.asarray(slots))
    for name, arr, exp in (("count", o.swap_count, count), ("cached", o.swap_cached, cached),
                           ("free", o.swap_free, free)):
        if exp is None:
            continue
        got = arr[slots]
        exp = np.broadcast_to(np.asarray(exp), got.shape)
        bad = np.flatnonzero(got != exp)
        if bad.size:
            i = int(bad[0])
            raise AssertionError(f"slot {int(slots[i])}: {name} is {got[i]}, kernel has {exp[i]} "
                                 f"({bad.size} of {slots.size} slots differ)")


def assert_counters(k, pid: int, rss: int, swap: int) -> None:
    po = observe(k).procs[pid]
    assert (po.rss_anon, po.vm_swap) == (rss, swap), (
        f"pid {pid}: RssAnon/VmSwap {po.rss_anon}/{po.vm_swap} pages, kernel has {rss}/{swap}")
