"""observe(): what userspace and /proc can see, as a pure function of a model's state.

It faults nothing in and changes nothing (an observation that faulted would change residency and
counts and hide the very bugs the oracle looks for). Per process and 4 KiB page it gives what pagemap,
a read of the page and smaps would show; per device the per-slot counts and the swap cache; and the
vmstat counters. The PMD-level part of pagemap comes from each model's `pagemap_pmd_range`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .memory import ZERO_PFN
from .mm import PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT, PTE_SWAP, Kernel, MM, region_slice
from .ops import HPAGE_PMD_NR, PROT_NAMES, VA_PAGES
from .vma_masks import VmaMasks

# per-page residency, as pagemap shows it
UNMAPPED, NONE, PRESENT, SWAPPED = 0, 1, 2, 3
RULER_CHARS = {(PRESENT, True): "H", (PRESENT, False): "p", (SWAPPED, True): "S",
               (SWAPPED, False): "s", (NONE, False): ".", (UNMAPPED, False): " "}


@dataclass
class ProcObs:
    vmas: tuple  # (start, end, prot, hugepage, uffd) per VMA; uffd: 0 none, 1 WP, 2 RWP
    state: np.ndarray  # UNMAPPED / NONE / PRESENT / SWAPPED per page
    contents: np.ndarray  # what a read of the page returns (0 for none and unmapped)
    swp_off: np.ndarray  # swap offset of a swapped page, else -1 (pagemap frame, CAP_SYS_ADMIN)
    soft_dirty: np.ndarray  # pagemap bit 55: entry soft-dirty | VM_SOFTDIRTY
    uffd_wp: np.ndarray  # pagemap bit 57
    exclusive: np.ndarray  # PageAnonExclusive (present) or the swap entry's exclusive bit
    writable: np.ndarray
    pmd_level: np.ndarray  # the page is mapped by a PMD-level entry (present THP or PMD swap entry)
    rss_anon: int  # RssAnon / MM_ANONPAGES, in pages
    vm_swap: int  # VmSwap / MM_SWAPENTS, in pages
    smaps: tuple  # (start, end, Rss, Swap, AnonHugePages) per VMA, in pages

    def fill(self, sl, state, contents, swp_off, sd, uw, excl, writable, pmd_level) -> None:
        self.state[sl] = state
        self.contents[sl] = contents
        self.swp_off[sl] = swp_off
        self.soft_dirty[sl] |= sd
        self.uffd_wp[sl] = uw
        self.exclusive[sl] = excl
        self.writable[sl] = writable
        self.pmd_level[sl] = pmd_level


@dataclass
class Observation:
    procs: dict  # pid -> ProcObs
    swap_count: np.ndarray | None  # per-slot count of page-table references
    swap_cached: np.ndarray | None  # slot is in the swap cache
    swap_free: np.ndarray | None  # slot is free
    vmstat: dict


class _Builder:
    """Helper handed to `pagemap_pmd_range` so a model can report its PMD-level entries."""

    def __init__(self, k: Kernel, po: ProcObs) -> None:
        self.k, self.po = k, po

    def fill_present_pmd(self, mm: MM, r: int) -> None:
        """A present THP: 512 present pages of one folio."""
        mem = self.k.mem
        head = int(mm.pmd_pfn[r])
        sl = region_slice(r)
        self.po.fill(sl, PRESENT, mem.data[head:head + HPAGE_PMD_NR], -1, bool(mm.pmd_sd[r]),
                     bool(mm.pmd_uw[r]), mem.anon_exclusive[head:head + HPAGE_PMD_NR],
                     bool(mm.pmd_write[r]), True)

    def fill_swap_pmd(self, mm: MM, r: int, offsets: np.ndarray, sd, uw, excl) -> None:
        """A PMD swap entry, reported per 4 KiB subpage with the offsets the walker computed."""
        sl = region_slice(r)
        self.po.fill(sl, SWAPPED, swap_contents(self.k, offsets), offsets, sd, uw, excl, False, True)


def swap_contents(k: Kernel, slots: np.ndarray) -> np.ndarray:
    """What a fault on these slots would read: the swap-cache page if cached, else the device."""
    sw = k.swap
    cache = sw.cache[slots]
    return np.where(cache >= 0, k.mem.data[np.maximum(cache, 0)], sw.data[slots])


def observe_mm(k: Kernel, mm: MM) -> ProcObs:
    mem = k.mem
    masks = VmaMasks.of(mm)
    table = np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
    kind = mm.pte_kind * table  # PTE_NONE / PTE_PRESENT / PTE_SWAP where a page table is installed
    pres, swp = kind == PTE_PRESENT, kind == PTE_SWAP
    ent = kind != 0
    pfn = np.where(pres, mm.pte_pfn, ZERO_PFN)
    contents = mem.data[pfn]  # the zero page (pfn 0) reads 0 for everything that is not present
    slots = mm.pte_swp_off
    any_swp = bool(swp.any())
    if any_swp:
        contents[swp] = swap_contents(k, slots[swp])
    real = pfn != ZERO_PFN
    po = ProcObs(
        vmas=tuple((v.start, v.end, v.prot, v.hugepage, v.uffd_mode) for v in mm.vmas),
        # NONE, PRESENT, SWAPPED are 1, 2, 3 and PTE_PRESENT, PTE_SWAP are 1, 2
        state=masks.inside + kind,
        contents=contents,
        swp_off=np.where(swp, slots, -1).astype(np.int32, copy=False) if any_swp
        else np.full(VA_PAGES, -1, np.int32),
        soft_dirty=masks.vm_sd | (ent & mm.pte_sd),
        uffd_wp=ent & mm.pte_uw,
        exclusive=((real & mem.anon_exclusive[pfn]) | (swp & mm.pte_swp_excl)) if any_swp
        else real & mem.anon_exclusive[pfn],
        writable=pres & mm.pte_write,
        pmd_level=np.zeros(VA_PAGES, bool),
        rss_anon=mm.anonpages, vm_swap=mm.swapents, smaps=())
    huge = ((mm.pmd_kind == PMD_HUGE) | (mm.pmd_kind == PMD_SWAP)).nonzero()[0]
    if huge.size:
        builder = _Builder(k, po)
        for r in huge.tolist():
            k.pagemap_pmd_range(mm, r, builder)
    if masks.starts.size:
        # per-VMA sums from prefix sums: Rss (anon pages: present, not the zero page), Swap,
        # AnonHugePages
        st = po.state
        anon = (st == PRESENT) & (real | ~pres)
        cum = np.zeros((3, VA_PAGES + 1), dtype=np.int32)
        np.cumsum(np.stack((anon, st == SWAPPED, anon & po.pmd_level)), axis=1, out=cum[:, 1:])
        sums = (cum[:, masks.ends] - cum[:, masks.starts]).T.tolist()
        po.smaps = tuple((v.start, v.end, *s) for v, s in zip(mm.vmas, sums, strict=False))
    return po


def observe(k: Kernel) -> Observation:
    """The whole observable state of kernel model `k` (pure: `k` is not changed)."""
    sw = k.swap
    return Observation(
        procs={pid: observe_mm(k, mm) for pid, mm in sorted(k.mms.items())},
        swap_count=None if sw is None else sw.count.copy(),
        swap_cached=None if sw is None else sw.cache >= 0,
        swap_free=None if sw is None else ~sw.used,
        vmstat=dict(k.vmstat),
    )


def ruler(po: ProcObs, r: int) -> str:
    """One character per 4 KiB page of region r: H PMD-mapped, p PTE-mapped, S PMD swap entry,
    s PTE swap entry, . none, blank outside any VMA."""
    sl = region_slice(r)
    return "".join(RULER_CHARS.get((int(s), bool(lvl) and s in (PRESENT, SWAPPED)), "?")
                   for s, lvl in zip(po.state[sl], po.pmd_level[sl], strict=False))


def describe_vmas(po: ProcObs) -> str:
    uffd = {0: "", 1: " uffd", 2: " uffd-rwp"}  # ProcObs.vmas: none, WP, RWP
    return " ".join(f"[{a}-{b}) {PROT_NAMES[p]}{' thp' if h else ''}{uffd[u]}"
                    for a, b, p, h, u in po.vmas)
