"""Named invariants of one kernel model, checked after every op (kernel-behaviour.md sections 0 and 8 rule 7).

They guard the code both models share (swap layer, PTE level), which the differential check cannot
see, and they carry refcount checking once the two models' slots drift apart. Each predicate takes a
`Scan` of the model (the page tables read once, shared by all predicates) and returns None when it
holds, or a one-line description of the first violation.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .memory import ZERO_PFN
from .mm import PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT, PTE_SWAP, Kernel
from .ops import HPAGE_PMD_NR
from .vma_masks import VmaMasks


class Scan:
    """One read of a model's page tables, shared by every invariant of one check.

    Per mm it keeps the PTE kind where a page table is installed and the present / swap masks; the
    per-slot and per-pfn arrays are built once over every mm (one concatenation, one bincount), so
    a check costs about the same with one process as with four."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.per_mm = []  # (mm, table, present, swap) masks per page
        for mm in k.mms.values():
            table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
            kind = mm.pte_kind * table
            self.per_mm.append((mm, table, kind == PTE_PRESENT, kind == PTE_SWAP))

    @cached_property
    def swap_pmds(self) -> list:
        """(mm, region, base slot) of every PMD swap entry."""
        return [(mm, r, int(mm.pmd_swp_off[r])) for mm, _, _, _ in self.per_mm
                for r in (mm.pmd_kind == PMD_SWAP).nonzero()[0].tolist()]

    @cached_property
    def slot_refs(self) -> np.ndarray:
        """References per slot from every page table (a PMD swap entry counts once per slot)."""
        n = self.k.swap.count.size
        parts = [mm.pte_swp_off[swp] for mm, _, _, swp in self.per_mm]
        parts += [np.arange(base, base + HPAGE_PMD_NR) for _, _, base in self.swap_pmds]
        if not parts:
            return np.zeros(n, dtype=np.int64)
        return np.bincount(np.concatenate(parts), minlength=n)


def swap_count_matches_entries(s: Scan) -> str | None:
    """Each slot's count equals the number of page-table references to it."""
    if s.k.swap is None:
        return None
    bad = (s.slot_refs != s.k.swap.count).nonzero()[0]
    if bad.size:
        slot = int(bad[0])
        return (f"slot {slot}: count {int(s.k.swap.count[slot])} but {int(s.slot_refs[slot])} "
                "page-table references")
    return None


def exclusive_implies_count_one(s: Scan) -> str | None:
    """Invariant EX: an exclusive swap entry references slots of count 1."""
    sw = s.k.swap
    if sw is None:
        return None
    for mm, _, _, swp in s.per_mm:
        slots = mm.pte_swp_off[swp & mm.pte_swp_excl]
        for m, r, base in s.swap_pmds:
            if m is mm and mm.pmd_swp_excl[r]:
                slots = np.concatenate([slots, np.arange(base, base + HPAGE_PMD_NR)])
        c = sw.count[slots]
        if (c != 1).any():
            slot = int(slots[c != 1][0])
            return f"pid {mm.pid}: exclusive entry for slot {slot} whose count is {int(sw.count[slot])}"
    return None


def free_slots_are_clean(s: Scan) -> str | None:
    """A free slot has count 0 and no cached folio; a used slot has a count, a folio or an owner."""
    sw = s.k.swap
    if sw is None:
        return None
    bad = (~sw.used & ((sw.count != 0) | (sw.cache >= 0))).nonzero()[0]
    if bad.size:
        return f"free slot {int(bad[0])} has count {int(sw.count[bad[0]])} or a cached folio"
    leaked = (sw.used & (sw.count == 0) & (sw.cache < 0) & ~sw.foreign).nonzero()[0]
    if leaked.size:
        return f"slot {int(leaked[0])} is allocated with no reference and no cached folio (leak)"
    return None


def swap_cache_consistent(s: Scan) -> str | None:
    """Swap cache and folio->swap agree, and a cached page belongs to a live folio."""
    sw, mem = s.k.swap, s.k.mem
    if sw is None:
        n = mem.high_water
        return None if (mem.swap[:n] < 0).all() else "folio in a swap cache with no device"
    slots = (sw.cache >= 0).nonzero()[0]
    pfns = sw.cache[slots]
    if (mem.head[pfns] < 0).any():
        return f"slot {int(slots[mem.head[pfns] < 0][0])} caches a freed page"
    if (mem.swap[pfns] != slots).any():
        return f"slot {int(slots[mem.swap[pfns] != slots][0])}: folio->swap disagrees"
    n = mem.high_water
    back = ((mem.swap[:n] >= 0) & (mem.head[:n] >= 0)).nonzero()[0]
    lost = back[sw.cache[mem.swap[back]] != back]
    if lost.size:
        return f"pfn {int(lost[0])} says it caches slot {int(mem.swap[lost[0]])}, the swap cache disagrees"
    return None


def rss_counters_match(s: Scan) -> str | None:
    """MM_ANONPAGES and MM_SWAPENTS equal what the page tables hold."""
    for mm, _, pres, swp in s.per_mm:
        anon = int(np.count_nonzero(pres & (mm.pte_pfn != ZERO_PFN)))
        anon += HPAGE_PMD_NR * int(np.count_nonzero(mm.pmd_kind == PMD_HUGE))
        swap = int(np.count_nonzero(swp)) + HPAGE_PMD_NR * int(np.count_nonzero(mm.pmd_kind == PMD_SWAP))
        if (mm.anonpages, mm.swapents) != (anon, swap):
            return (f"pid {mm.pid}: MM_ANONPAGES/MM_SWAPENTS {mm.anonpages}/{mm.swapents}"
                    f" but the page tables hold {anon}/{swap}")
    return None


def mapcounts_match(s: Scan) -> str | None:
    """Every page's mapcount and every folio's entire mapcount equal the mappings that exist."""
    mem = s.k.mem
    n = mem.high_water
    pte_pfns = [mm.pte_pfn[pres] for mm, _, pres, _ in s.per_mm]
    pmd_pfns = [mm.pmd_pfn[mm.pmd_kind == PMD_HUGE] for mm, _, _, _ in s.per_mm]
    pfns = np.concatenate(pte_pfns) if pte_pfns else np.zeros(0, np.int32)
    pte_maps = np.bincount(pfns[pfns != ZERO_PFN], minlength=n)
    pmd_maps = np.bincount(np.concatenate(pmd_pfns) if pmd_pfns else np.zeros(0, np.int32),
                           minlength=n)
    head = mem.head[:n]
    if (head[pte_maps > 0] < 0).any():
        return f"pfn {int(((pte_maps > 0) & (head < 0)).nonzero()[0][0])} is mapped but free"
    bad = (pte_maps != mem.mapcount[:n]).nonzero()[0]
    if bad.size:
        return f"pfn {int(bad[0])}: mapcount {int(mem.mapcount[bad[0]])}, mapped {int(pte_maps[bad[0]])}x"
    bad = (pmd_maps != mem.entire_mapcount[:n]).nonzero()[0]
    if bad.size:
        return (f"folio {int(bad[0])}: entire_mapcount {int(mem.entire_mapcount[bad[0]])}, "
                f"PMD-mapped {int(pmd_maps[bad[0]])}x")
    return None


def no_leaked_folio(s: Scan) -> str | None:
    """Every live folio is mapped or in the swap cache (a folio with no reference was leaked)."""
    mem = s.k.mem
    n = mem.high_water
    head = mem.head[:n]
    live = head >= 0
    live[ZERO_PFN] = False
    used = np.zeros(n, dtype=bool)  # per head: some page mapped or cached
    busy = live & ((mem.mapcount[:n] > 0) | (mem.swap[:n] >= 0))
    used[head[busy]] = True
    used |= mem.entire_mapcount[:n] > 0
    heads = (live & (head == np.arange(n)) & ~used).nonzero()[0]
    if heads.size:
        return f"folio {int(heads[0])} (order {int(mem.order[heads[0]])}) is neither mapped nor cached"
    return None


def writeback_only_in_swapcache(s: Scan) -> str | None:
    """A folio under writeback is live and in the swap cache (else the write would be lost)."""
    mem = s.k.mem
    wb = mem.writeback[:mem.high_water].nonzero()[0]
    bad = wb[(mem.head[wb] != wb) | (mem.swap[wb] < 0)]
    if bad.size:
        return f"folio {int(bad[0])} is under writeback but freed or not in the swap cache"
    return None


def writable_implies_exclusive(s: Scan) -> str | None:
    """A writable private mapping maps an anon-exclusive page (else a write could leak across fork)."""
    mem = s.k.mem
    for mm, _, pres, _ in s.per_mm:
        pfns = mm.pte_pfn[pres & mm.pte_write]
        if (pfns == ZERO_PFN).any() or not mem.anon_exclusive[pfns].all():
            return f"pid {mm.pid}: writable PTE on a page that is not anon-exclusive"
        for r in ((mm.pmd_kind == PMD_HUGE) & mm.pmd_write).nonzero()[0]:
            if not mem.anon_exclusive[int(mm.pmd_pfn[r])]:
                return f"pid {mm.pid}: writable PMD in region {int(r)} on a shared THP"
    return None


def writable_implies_soft_dirty(s: Scan) -> str | None:
    """With soft-dirty tracking on (VMA without VM_SOFTDIRTY) a writable entry is soft-dirty:
    pte_needs_soft_dirty_wp() keeps a clean entry read-only so the next write faults and marks it."""
    for mm, _, pres, _ in s.per_mm:
        tracked = VmaMasks.of(mm).tracked
        bad = (pres & mm.pte_write & ~mm.pte_sd & tracked).nonzero()[0]
        if bad.size:
            return f"pid {mm.pid}: writable PTE at page {int(bad[0])} is not soft-dirty while tracked"
        for r in ((mm.pmd_kind == PMD_HUGE) & mm.pmd_write & ~mm.pmd_sd).nonzero()[0]:
            if tracked[int(r) * HPAGE_PMD_NR]:
                return f"pid {mm.pid}: writable PMD in region {int(r)} is not soft-dirty while tracked"
    return None


def entries_inside_vmas(s: Scan) -> str | None:
    """Structure: no entry outside a VMA, no huge entry (present or swap) across a VMA boundary."""
    for mm, table, _, _ in s.per_mm:
        stray = (table & (mm.pte_kind != 0) & VmaMasks.of(mm).outside).nonzero()[0]
        if stray.size:
            return f"pid {mm.pid}: PTE entry at page {int(stray[0])} outside every VMA"
        for r in ((mm.pmd_kind == PMD_HUGE) | (mm.pmd_kind == PMD_SWAP)).nonzero()[0]:
            lo, hi = int(r) * HPAGE_PMD_NR, (int(r) + 1) * HPAGE_PMD_NR
            if not any(v.start <= lo and hi <= v.end for v in mm.vmas):
                return f"pid {mm.pid}: huge entry in region {int(r)} crosses a VMA boundary"
    return None


def nothing_references_removed_device(s: Scan) -> str | None:
    """After swapoff no page table holds a swap entry."""
    if s.k.swap is not None:
        return None
    for mm, _, _, swp in s.per_mm:
        if swp.any() or (mm.pmd_kind == PMD_SWAP).any() or mm.swapents:
            return f"pid {mm.pid} still holds swap entries after swapoff"
    return None


def all_free_after_exit(s: Scan) -> str | None:
    """With every process gone and the swap cache drained, every slot is free."""
    sw = s.k.swap
    if sw is None or s.k.mms or (sw.cache >= 0).any():
        return None
    used = (sw.used & ~sw.foreign).nonzero()[0]
    return f"slot {int(used[0])} still allocated after every process exited" if used.size else None


INVARIANTS = (swap_count_matches_entries, exclusive_implies_count_one, free_slots_are_clean,
              swap_cache_consistent, rss_counters_match, mapcounts_match, no_leaked_folio,
              writeback_only_in_swapcache, writable_implies_exclusive, writable_implies_soft_dirty,
              entries_inside_vmas,
              nothing_references_removed_device, all_free_after_exit)


def check_invariants(k: Kernel) -> tuple[str, str] | None:
    """The first invariant that fails, as (name, message), or None."""
    s = Scan(k)
    for inv in INVARIANTS:
        msg = inv(s)
        if msg:
            return inv.__name__, msg
    return None
