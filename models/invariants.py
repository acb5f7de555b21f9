"""Named invariants of one kernel model, checked after every op (semantics.md sections 0 and 8 rule 7).

They guard the code both models share (swap layer, PTE level), which the differential check cannot
see, and they carry refcount checking once the two models' slots drift apart. Each predicate returns
None when it holds, or a one-line description of the first violation.
"""

from __future__ import annotations

import numpy as np

from .memory import ZERO_PFN
from .mm import PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT, PTE_SWAP, Kernel
from .ops import HPAGE_PMD_NR


def _slot_refs(k: Kernel) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """References per slot from every page table (a PMD swap entry counts once per slot)."""
    refs = np.zeros(k.swap.count.size, dtype=np.int64)
    excl = []
    for mm in k.mms.values():
        table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
        swp = table & (mm.pte_kind == PTE_SWAP)
        offs = mm.pte_swp_off[swp]
        np.add.at(refs, offs, 1)
        excl.append((mm.pid, offs[mm.pte_swp_excl[swp]], np.flatnonzero(swp & mm.pte_swp_excl)))
        for r in np.flatnonzero(mm.pmd_kind == PMD_SWAP):
            base = int(mm.pmd_swp_off[r])
            refs[base:base + HPAGE_PMD_NR] += 1
            if mm.pmd_swp_excl[r]:
                excl.append((mm.pid, np.arange(base, base + HPAGE_PMD_NR), np.array([r])))
    return refs, excl


def swap_count_matches_entries(k: Kernel) -> str | None:
    """Each slot's count equals the number of page-table references to it."""
    if k.swap is None:
        return None
    refs, _ = _slot_refs(k)
    bad = np.flatnonzero(refs != k.swap.count)
    if bad.size:
        s = int(bad[0])
        return f"slot {s}: count {int(k.swap.count[s])} but {int(refs[s])} page-table references"
    return None


def exclusive_implies_count_one(k: Kernel) -> str | None:
    """Invariant EX: an exclusive swap entry references slots of count 1."""
    if k.swap is None:
        return None
    _, excl = _slot_refs(k)
    for pid, slots, _ in excl:
        c = k.swap.count[slots]
        if slots.size and (c != 1).any():
            s = int(slots[c != 1][0])
            return f"pid {pid}: exclusive entry for slot {s} whose count is {int(k.swap.count[s])}"
    return None


def free_slots_are_clean(k: Kernel) -> str | None:
    """A free slot has count 0 and no cached folio; a used slot has a count, a folio or an owner."""
    sw = k.swap
    if sw is None:
        return None
    free = ~sw.used
    bad = np.flatnonzero(free & ((sw.count != 0) | (sw.cache >= 0)))
    if bad.size:
        return f"free slot {int(bad[0])} has count {int(sw.count[bad[0]])} or a cached folio"
    leaked = np.flatnonzero(sw.used & (sw.count == 0) & (sw.cache < 0) & ~sw.foreign)
    if leaked.size:
        return f"slot {int(leaked[0])} is allocated with no reference and no cached folio (leak)"
    return None


def swap_cache_consistent(k: Kernel) -> str | None:
    """Swap cache and folio->swap agree, and a cached page belongs to a live folio."""
    sw, mem = k.swap, k.mem
    if sw is None:
        return None if (mem.swap[mem.head >= 0] < 0).all() else "folio in a swap cache with no device"
    slots = np.flatnonzero(sw.cache >= 0)
    pfns = sw.cache[slots]
    if (mem.head[pfns] < 0).any():
        return f"slot {int(slots[mem.head[pfns] < 0][0])} caches a freed page"
    if (mem.swap[pfns] != slots).any():
        return f"slot {int(slots[mem.swap[pfns] != slots][0])}: folio->swap disagrees"
    return None


def rss_counters_match(k: Kernel) -> str | None:
    """MM_ANONPAGES and MM_SWAPENTS equal what the page tables hold."""
    for mm in k.mms.values():
        table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
        anon = int((table & (mm.pte_kind == PTE_PRESENT) & (mm.pte_pfn != ZERO_PFN)).sum())
        anon += HPAGE_PMD_NR * int((mm.pmd_kind == PMD_HUGE).sum())
        swap = int((table & (mm.pte_kind == PTE_SWAP)).sum())
        swap += HPAGE_PMD_NR * int((mm.pmd_kind == PMD_SWAP).sum())
        if (mm.anonpages, mm.swapents) != (anon, swap):
            return (f"pid {mm.pid}: MM_ANONPAGES/MM_SWAPENTS {mm.anonpages}/{mm.swapents}"
                    f" but the page tables hold {anon}/{swap}")
    return None


def mapcounts_match(k: Kernel) -> str | None:
    """Every page's mapcount and every folio's entire mapcount equal the mappings that exist."""
    mem = k.mem
    n = mem.high_water
    pte_maps = np.zeros(n, dtype=np.int64)
    pmd_maps = np.zeros(n, dtype=np.int64)
    for mm in k.mms.values():
        table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
        pfns = mm.pte_pfn[table & (mm.pte_kind == PTE_PRESENT)]
        pte_maps += np.bincount(pfns[pfns != ZERO_PFN], minlength=n)
        pmd_maps += np.bincount(mm.pmd_pfn[mm.pmd_kind == PMD_HUGE], minlength=n)
    head = mem.head[:n]
    if (head[pte_maps > 0] < 0).any():
        return f"pfn {int(np.flatnonzero((pte_maps > 0) & (head < 0))[0])} is mapped but free"
    bad = np.flatnonzero(pte_maps != mem.mapcount[:n])
    if bad.size:
        return f"pfn {int(bad[0])}: mapcount {int(mem.mapcount[bad[0]])}, mapped {int(pte_maps[bad[0]])}x"
    bad = np.flatnonzero(pmd_maps != mem.entire_mapcount[:n])
    if bad.size:
        return (f"folio {int(bad[0])}: entire_mapcount {int(mem.entire_mapcount[bad[0]])}, "
                f"PMD-mapped {int(pmd_maps[bad[0]])}x")
    return None


def no_leaked_folio(k: Kernel) -> str | None:
    """Every live folio is mapped or in the swap cache (a folio with no reference was leaked)."""
    mem = k.mem
    n = mem.high_water
    head = mem.head[:n]
    live = head >= 0
    live[ZERO_PFN] = False
    used = np.zeros(n, dtype=bool)  # per head: some page mapped or cached
    busy = live & ((mem.mapcount[:n] > 0) | (mem.swap[:n] >= 0))
    used[head[busy]] = True
    used |= mem.entire_mapcount[:n] > 0
    heads = np.flatnonzero(live & (head == np.arange(n)) & ~used)
    if heads.size:
        return f"folio {int(heads[0])} (order {int(mem.order[heads[0]])}) is neither mapped nor cached"
    return None


def writeback_only_in_swapcache(k: Kernel) -> str | None:
    """A folio under writeback is live and in the swap cache (else the write would be lost)."""
    mem = k.mem
    n = mem.high_water
    wb = np.flatnonzero(mem.writeback[:n])
    bad = wb[(mem.head[wb] != wb) | (mem.swap[wb] < 0)]
    if bad.size:
        return f"folio {int(bad[0])} is under writeback but freed or not in the swap cache"
    return None


def writable_implies_exclusive(k: Kernel) -> str | None:
    """A writable private mapping maps an anon-exclusive page (else a write could leak across fork)."""
    mem = k.mem
    for mm in k.mms.values():
        table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
        w = table & (mm.pte_kind == PTE_PRESENT) & mm.pte_write
        if (mm.pte_pfn[w] == ZERO_PFN).any() or not mem.anon_exclusive[mm.pte_pfn[w]].all():
            return f"pid {mm.pid}: writable PTE on a page that is not anon-exclusive"
        for r in np.flatnonzero((mm.pmd_kind == PMD_HUGE) & mm.pmd_write):
            if not mem.anon_exclusive[int(mm.pmd_pfn[r])]:
                return f"pid {mm.pid}: writable PMD in region {int(r)} on a shared THP"
    return None


def entries_inside_vmas(k: Kernel) -> str | None:
    """Structure: no entry outside a VMA, no huge entry (present or swap) across a VMA boundary."""
    for mm in k.mms.values():
        inside = np.zeros(mm.pte_kind.size, dtype=bool)
        for v in mm.vmas:
            inside[v.start:v.end] = True
        table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
        stray = np.flatnonzero(table & (mm.pte_kind != 0) & ~inside)
        if stray.size:
            return f"pid {mm.pid}: PTE entry at page {int(stray[0])} outside every VMA"
        for r in np.flatnonzero((mm.pmd_kind == PMD_HUGE) | (mm.pmd_kind == PMD_SWAP)):
            lo, hi = int(r) * HPAGE_PMD_NR, (int(r) + 1) * HPAGE_PMD_NR
            if not any(v.start <= lo and hi <= v.end for v in mm.vmas):
                return f"pid {mm.pid}: huge entry in region {int(r)} crosses a VMA boundary"
    return None


def nothing_references_removed_device(k: Kernel) -> str | None:
    """After swapoff no page table holds a swap entry."""
    if k.swap is not None:
        return None
    for mm in k.mms.values():
        if (mm.pte_kind == PTE_SWAP).any() or (mm.pmd_kind == PMD_SWAP).any() or mm.swapents:
            return f"pid {mm.pid} still holds swap entries after swapoff"
    return None


def all_free_after_exit(k: Kernel) -> str | None:
    """With every process gone and the swap cache drained, every slot is free."""
    sw = k.swap
    if sw is None or k.mms or (sw.cache >= 0).any():
        return None
    used = np.flatnonzero(sw.used & ~sw.foreign)
    return f"slot {int(used[0])} still allocated after every process exited" if used.size else None


INVARIANTS = (swap_count_matches_entries, exclusive_implies_count_one, free_slots_are_clean,
              swap_cache_consistent, rss_counters_match, mapcounts_match, no_leaked_folio,
              writeback_only_in_swapcache,
              writable_implies_exclusive, entries_inside_vmas, nothing_references_removed_device,
              all_free_after_exit)


def check_invariants(k: Kernel) -> tuple[str, str] | None:
    """The first invariant that fails, as (name, message), or None."""
    for inv in INVARIANTS:
        msg = inv(k)
        if msg:
            return inv.__name__, msg
    return None
