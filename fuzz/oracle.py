"""The differential oracle: after every op, compare observe() of both models (kernel-behaviour.md section 8).

Rules, checked in this order; the first that fails names the divergence:
  1. contents      every mapped page reads the same in both models, and what a model-independent
                   shadow expects (the last value written, or zero), which catches data loss in
                   code both models share
  2. layout        processes, VMAs and the op's result are the same
  3. uffd-wp       per page, wherever both models hold an entry
  4. soft-dirty    one-sided: every page of the written-pages shadow is soft-dirty in both, and
                   legacy's soft-dirty pages are a subset of the PMD model's
  5. residency     while in lockstep: same residency, swap slots, per-slot counts, free slots, RSS;
                   after the first tolerated difference: residency per untainted (pid, region)
  6. mincore       each model's answers against its own state, and across models while in lockstep
  7. structure     and 8. invariants: each model on its own (models/invariants.py)
Before all of them, v3-cache-rule: a tolerated whole-2 MiB swap-in or swapoff must start from an
empty swap cache or the one PMD-sized folio (the precondition of TOLERATED pmd_swapin/pmd_unuse).
Not compared across models: the exclusive bit, mapping level, folio order, swap-cache contents
(except through mincore, in lockstep), writability and THP counters (section 8, last paragraph).

Every difference the oracle tolerates is one row of TOLERATED, with its reason and its section.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.invariants import check_invariants
from pmdswap_fuzz.models.mm import (MINCORE_UNSET, PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT, PTE_SWAP,
                       region_slice, regions_of)
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe
from pmdswap_fuzz.models.ops import HPAGE_PMD_NR, NR_REGIONS

from .uffd_wp_shadow import UffdWpShadow, remap_move_pieces


@dataclass(frozen=True)
class Tolerated:
    event: str  # the PMD model's event name, or the oracle's own name for a derived tolerance
    effect: str  # what the oracle does about it
    reason: str
    section: str  # kernel-behaviour.md section that justifies it
    unchecked: str = ""  # what the row stops comparing, and what still checks each model there


# The one table of tolerated differences. Anything not here is a divergence.
TOLERATED = (
    Tolerated("pmd_swapin", "end lockstep; taint the (pid, region) and every region of any process "
              "whose entries reference one of the 512 slots",
              "a whole-2 MiB swap-in maps 512 pages where legacy maps the faulting page (uncached "
              "folio) or maps them PTE-level, and leaves one large folio in the swap cache where "
              "legacy has small ones: which slots are freed when, and how much a later fault by a "
              "process sharing the slots maps, legitimately differ from then on. Only from an "
              "empty cache or the one PMD-sized folio (v3 rule): over a mixed cache the event is "
              "itself a divergence (rule v3-cache-rule), as for pmd_unuse", "3.2 D1, D2, 8",
              unchecked="cross-model residency, slot offsets, counts, free slots and RSS in the "
                        "tainted regions; still checked there: contents against the other model "
                        "and the expected-contents shadow, uffd-wp (shadow and cross-model where "
                        "residency agrees), soft-dirty lower bound, each model's invariants"),
    Tolerated("pte_batch_dirty_sd", "soft-dirty compared one-sided (PMD model subset of legacy) "
              "in the region",
              "mprotect, UFFDIO_WRITEPROTECT or UFFDIO_RWPROTECT over a large folio that legacy "
              "maps with PTEs batches them (change_present_ptes(), mm/mprotect.c:358), and "
              "modify_prot_start_ptes() ORs the batch's dirty bits in with pte_mkdirty(), which "
              "sets soft-dirty on x86; the PMD model changes one PMD (change_huge_pmd(), no "
              "pte_mkdirty()). Legacy maps a THP with PTEs where the PMD model has a PMD after a "
              "whole-2 MiB swap-in (pmd_swapin) (found by a campaign: swap-in, clear_refs, "
              "UFFDIO_WRITEPROTECT)", "3.2 D9",
              unchecked="soft-dirty pages legacy has beyond the PMD model's in that region; "
                        "still checked: a page written since clear_refs is soft-dirty in both "
                        "(the shadow), and outside tainted regions the PMD model's soft-dirty "
                        "pages are soft-dirty in legacy"),
    Tolerated("pmd_readahead", "end lockstep",
              "MADV_WILLNEED of a whole swap PMD reads one PMD-order folio into the swap cache "
              "where legacy reads 512 order-0 folios; a large folio leaves the swap cache only "
              "once none of its 512 slots is referenced (folio_free_swap()), small ones one by one, "
              "so after a later split and swap-in which slots are free legitimately differs "
              "(found by a campaign: willneed, a VMA split by uffd_register, a write)", "3.2 D1",
              unchecked="slot offsets, counts, free slots, RSS and smaps across models (lockstep); "
                        "residency, contents, both shadows, mincore against each model's own "
                        "cache and each model's invariants still checked"),
    Tolerated("pmd_unuse", "end lockstep; taint the region and the regions sharing its slots",
              "swapoff maps a THP under a PMD where legacy maps 512 order-0 folios; from then on "
              "swap-out allocates one cluster instead of 512 slots, and a large folio mapped shared "
              "after fork is left alone by MADV_PAGEOUT where small folios are paged out one by one",
              "1.8, 3.2 D4, D11",
              unchecked="as pmd_swapin: cross-model residency and slot accounting in the tainted "
                        "regions; contents, both shadows and invariants still checked"),
    Tolerated("entry_vs_none_cascade", "uffd-wp not compared on tainted pages whose residency has "
              "differed; a store there, or a UFFDIO_MOVE touching a tainted region, that gives "
              "different results or contents: stop comparing that process",
              "after a tolerated residency difference (a whole-2 MiB swap-in followed by MADV_FREE), "
              "a page can be present in one model and none in the other; uffd-wp is kept on the entry "
              "but not on a none anonymous PTE, so a later write traps in one model only, and "
              "UFFDIO_MOVE finds a source in one model only", "1.4, 1.6, 1.9, 3.2 D1",
              unchecked="the detached process: every cross-model rule; still checked: legacy's "
                        "contents against the expected-contents shadow, each model's uffd-wp "
                        "shadow, each model's invariants"),
    Tolerated("rwp_resolve_level", "an access in a uffd RWP VMA to a region one model maps at PMD "
              "level and the other does not: if the uffd bits, results or contents then differ, "
              "stop comparing that process",
              "in async RWP an access resolves the entry it faults on: all 512 pages of a "
              "PMD-mapped THP (do_huge_pmd_uffd_rwp(), 7.3 mm/huge_memory.c:2291), one PTE else "
              "(do_uffd_rwp(), mm/memory.c:6260); after a whole-2 MiB swap-in (D1/D2) the series "
              "maps under a PMD what legacy maps page by page, so one access clears 512 bits in "
              "one model and one bit in the other", "3.2 D1",
              unchecked="the detached process: every cross-model rule; each model's uffd-wp "
                        "shadow (which resolves the whole PMD where the model mapped one), "
                        "legacy's expected contents and each model's invariants still checked"),
    Tolerated("pmd_zapped", "where legacy kept a PTE table there: taint the (pid, region); "
              "end lockstep",
              "a zapped PMD swap entry leaves the PMD none (a later touch can fault a fresh THP). "
              "Legacy keeps the emptied PTE table after MADV_FREE (madvise_free_pte_range() never "
              "frees tables); after a whole-2 MiB MADV_DONTNEED it frees the table too "
              "(CONFIG_PT_RECLAIM, zap_pte_range() in mm/memory.c), and munmap/exit free it with "
              "the VMA, so there nothing differs and nothing is tainted", "1.5, 3.2 D6",
              unchecked="cross-model residency and slot accounting in the tainted region (after "
                        "MADV_FREE only); contents (both models, and the shadow), uffd-wp and "
                        "soft-dirty shadows, invariants still checked"),
    Tolerated("uffd_move_refused", "taint the destination (pid, region); end lockstep",
              "a UFFDIO_MOVE of a whole PMD swap entry refused with -EBUSY leaves the destination "
              "PMD none, where legacy's PTE path allocated an empty PTE table before refusing at the "
              "first PTE; a later fault there can map a THP in the PMD model only", "1.9, 3.2 D6",
              unchecked="cross-model residency and slot accounting in the destination region; "
                        "contents, shadows and invariants still checked"),
    Tolerated("uffd_move_src_none", "taint the source (pid, region); end lockstep",
              "a whole PMD swap entry moved by UFFDIO_MOVE leaves the source PMD none, where "
              "legacy's PTE-by-PTE move leaves an empty PTE table; a later fault on the source "
              "range can map a THP in the PMD model only", "1.9, 3.2 D6",
              unchecked="cross-model residency and slot accounting in the source region; contents, "
                        "shadows and invariants still checked"),
    Tolerated("uffd_move_whole", "accept legacy -EBUSY against PMD 0; stop comparing the process",
              "UFFDIO_MOVE moves a whole PMD swap entry whose PMD-sized folio is cached, where "
              "legacy returns -EBUSY at the first PTE of a large cached folio", "1.9, 3.2 D8",
              unchecked="the detached process: every cross-model rule; legacy's expected contents, "
                        "each model's uffd-wp shadow and invariants still checked"),
    Tolerated("madv_free_after_swapin", "in a tainted region, a MADV_FREE'd page not written since "
              "may read zero in one model and its old data in the other",
              "after a whole-2 MiB swap-in the PMD model holds the pages resident, so MADV_FREE only "
              "marks them lazyfree (old data until reclaim), where legacy drops the swap entries it "
              "still has (zeros); MADV_FREE allows either", "1.6, 3.2 D1",
              unchecked="which of zero or the freed value a freed, unwritten page reads in a "
                        "tainted region; any other value is still a divergence, and so is a freed "
                        "page once written"),
    Tolerated("pmd_swapout_dirty_not_sd", "soft-dirty compared one-sided (PMD model subset of "
              "legacy) on the region's pages until clear_refs; the pages follow moves and fork",
              "legacy swaps a dirty PMD-mapped THP out through a TTU_SPLIT_HUGE_PMD split, whose "
              "pte_mkdirty() sets soft-dirty on x86 (__split_huge_pmd_locked(), mm/huge_memory.c), "
              "so after clear_refs its 512 swap PTEs are soft-dirty; the PMD swap entry keeps the "
              "PMD's own (clear) soft-dirty bit", "D9 (docs/models.md)",
              unchecked="a soft-dirty bit the PMD model drops on those pages (legacy set, PMD "
                        "clear) until clear_refs; the written-pages lower bound still checks both "
                        "models there"),
    Tolerated("soft_dirty_superset", "soft-dirty compared one-sided (legacy subset of PMD) in "
              "regions written or moved since clear_refs, and in tainted regions; equal elsewhere",
              "a write through a PMD marks all 512 pages dirty and soft-dirty; an aligned mremap "
              "of a swap PMD sets soft-dirty where move_normal_pmd keeps bits", "3.2 D5, D7",
              unchecked="equality of soft-dirty in the loose regions (only legacy subset of PMD is "
                        "checked); the written-pages lower bound still checks both models"),
    Tolerated("thp_swpout_fallback_one_side", "taint the (pid, region) of each THP the op range "
              "held in either model",
              "once lockstep has ended the two swap devices' free clusters differ (a whole-2 MiB "
              "swap-in frees all 512 slots where legacy still holds 511 of them), so a THP's "
              "order-9 folio_alloc_swap() can fail in one model only; that model splits the THP "
              "(THP_SWPOUT_FALLBACK, shrink_folio_list(), 7.3 mm/vmscan.c), and the split maps its "
              "zero-filled subpages to the shared zero page (__folio_split() -> remap_page() with "
              "RMP_USE_SHARED_ZEROPAGE, mm/huge_memory.c) where the other model swapped them out. "
              "Found by .ci/run's hypothesis campaign (seed 1)", "3.2 D1, D2",
              unchecked="cross-model residency and slot accounting in those regions; contents "
                        "(both models, and the shadow), uffd-wp and soft-dirty shadows, "
                        "invariants still checked"),
)
TOLERATED_BY_EVENT = {t.event: t for t in TOLERATED}


@dataclass(frozen=True)
class Divergence:
    rule: str  # which oracle rule fired ("contents", "results", "invariant:<name>", ...)
    op_index: int
    op: O.Op
    pid: int | None
    pages: tuple  # affected pages (first few)
    detail: str  # one line: what differs
    legacy: str  # legacy's value
    pmd: str  # the PMD model's value
    repr_kind: str = ""  # representation involved (PMD swap entry, PTE swap entry, ...)

    def signature(self) -> str:
        """De-duplicates findings: rule, op kind, representation."""
        return f"{self.rule}:{self.op.name}:{self.repr_kind or '-'}"

    def describe(self) -> str:
        where = f" pid {self.pid}" if self.pid is not None else ""
        pages = f" pages {','.join(map(str, self.pages))}" if self.pages else ""
        return (f"op #{self.op_index} {self.op.name}: rule {self.rule}{where}{pages}: {self.detail}\n"
                f"  legacy: {self.legacy}\n  pmd:    {self.pmd}")


def _region_repr(k, pid: int, page: int) -> str:
    """What represents `page` in model k: the representation a divergence involved."""
    mm = k.mms.get(pid)
    if mm is None:
        return "no process"
    r = page // HPAGE_PMD_NR
    kind = mm.pmd_kind[r]
    if kind == PMD_SWAP:
        return "PMD swap entry"
    if kind == PMD_HUGE:
        return "PMD-mapped THP"
    if kind == PMD_TABLE:
        pk = mm.pte_kind[page]
        if pk == PTE_SWAP:
            return "PTE swap entry"
        if pk == PTE_PRESENT:
            return "PTE-mapped"
    return "none"


def classify_region(k, mm, r: int) -> str:
    """The entry state of a region for the coverage table."""
    kind = mm.pmd_kind[r]
    if kind == PMD_SWAP:
        base = int(mm.pmd_swp_off[r])
        cached = k.swap is not None and (k.swap.cache[base:base + HPAGE_PMD_NR] >= 0).any()
        return "PMD swap entry, cached" if cached else "PMD swap entry, evicted"
    if kind == PMD_HUGE:
        return "PMD-mapped THP"
    if kind == PMD_TABLE:
        sl = slice(r * HPAGE_PMD_NR, (r + 1) * HPAGE_PMD_NR)
        if (mm.pte_kind[sl] == PTE_SWAP).any():
            return "PTE swap entries"
        if (mm.pte_kind[sl] == PTE_PRESENT).any():
            return "PTE-mapped"
    return "none"


def op_cells(k, op: O.Op) -> list[tuple[str, str]]:
    """(entry state, op variant) cells this op exercises in model k, looked at before the op."""
    pid = getattr(op, "pid", None)
    mm = k.mms.get(pid) if pid is not None else None
    if mm is None:
        return [("-", op.name)]
    lo = getattr(op, "start", getattr(op, "src", getattr(op, "page", None)))
    if lo is None:
        regions = [r for r in range(NR_REGIONS) if mm.pmd_kind[r]]
        return [(classify_region(k, mm, r), op.name) for r in regions] or [("none", op.name)]
    hi = lo + getattr(op, "npages", 1)
    cells = []
    for r in range(lo // HPAGE_PMD_NR, min(NR_REGIONS, (hi - 1) // HPAGE_PMD_NR + 1)):
        a, b = max(lo, r * HPAGE_PMD_NR), min(hi, (r + 1) * HPAGE_PMD_NR)
        variant = op.name if op.name == "fault" else (
            f"{op.name} whole" if b - a == HPAGE_PMD_NR else f"{op.name} partial")
        cells.append((classify_region(k, mm, r), variant))
    return cells


# ops whose PMD-level consumer may bring a whole swap PMD back (fault, store, swapoff)
_V3_OPS = (O.Fault, O.Write, O.Swapoff)


def _mixed_cache_bases(k) -> set[int]:
    """Base slots of k's swap PMDs whose 512 slots the swap cache holds in a state other than
    "none of them" or "all of them in the one PMD-sized folio caching exactly these slots" (the
    v3 rule's split-or-mixed state: a whole-2 MiB swap-in or swapoff there is a bug). Written
    here apart from the model's own classifier, so that a model ignoring it is caught."""
    sw, mem = k.swap, k.mem
    out: set[int] = set()
    if sw is None:
        return out
    for mm in k.mms.values():
        for r in np.flatnonzero(mm.pmd_kind == PMD_SWAP):
            base = int(mm.pmd_swp_off[r])
            c = sw.cache[base:base + HPAGE_PMD_NR]
            if (c < 0).all():
                continue
            heads = np.unique(mem.head[c[c >= 0]])
            if (c >= 0).all() and heads.size == 1 and mem.nr_pages(int(heads[0])) == HPAGE_PMD_NR \
                    and int(mem.swap[int(heads[0])]) == base:
                continue
            out.add(base)
    return out


class Oracle:
    """Drives both models through one op sequence and compares them after every op."""

    def __init__(self, legacy, pmd, collect_cells: bool = True) -> None:
        self.legacy, self.pmd = legacy, pmd
        self.cells: set = set()
        self.collect_cells = collect_cells
        self.lockstep = True
        self.tainted: set[tuple[int, int]] = set()  # (pid, region) no longer comparable in residency
        self.detached: set[int] = set()  # pids no longer comparable at all (D8)
        self.shadow: dict[int, np.ndarray] = {0: np.zeros(O.VA_PAGES, dtype=bool)}
        self.freed: dict[int, np.ndarray] = {}  # MADV_FREE'd and not written since, per pid
        self.freed_value: dict[int, np.ndarray] = {}  # what those pages held when freed
        self.prev_contents: dict[int, np.ndarray] = {}  # contents after the previous op
        # model-independent expectation of every page's contents: the last value written, or 0
        self.expect: dict[int, np.ndarray] = {0: np.zeros(O.VA_PAGES, np.uint32)}
        # pages where the PMD model may legitimately be soft-dirty while legacy is not (a region
        # written or moved since the last clear_refs: D5, D7); elsewhere soft-dirty must be equal
        self.sd_loose: dict[int, np.ndarray] = {}
        self.diverged: dict[int, np.ndarray] = {}  # tainted pages whose residency differed
        # pages where legacy may legitimately be soft-dirty while the PMD model is not (a dirty
        # THP swapped out since clear_refs: legacy's split made its PTEs soft-dirty, D9)
        self.sd_legacy_more: dict[int, np.ndarray] = {}
        # each model's uffd-wp bits against what the ops say they must be (fuzz/uffd_wp_shadow.py)
        self.uffd_wp_shadow = {"legacy": UffdWpShadow(), "pmd": UffdWpShadow()}

    # ---- bookkeeping that follows pages through ops -------------------------------------------
    def _follow(self, op: O.Op, res: int, pids_before: set[int]) -> None:
        """Move taint, detachment and the soft-dirty shadow along with fork/exit/mremap/moves."""
        pid = getattr(op, "pid", None)
        if isinstance(op, O.Fork) and res == O.OK:
            (child,) = set(self.legacy.mms) - pids_before
            self.tainted |= {(child, r) for p, r in self.tainted if p == pid}
            if pid in self.detached:
                self.detached.add(child)
            self.shadow[child] = self.shadow.get(pid, np.zeros(O.VA_PAGES, bool)).copy()
            if pid in self.sd_loose:
                self.sd_loose[child] = self.sd_loose[pid].copy()
            if pid in self.sd_legacy_more:
                self.sd_legacy_more[child] = self.sd_legacy_more[pid].copy()
            if pid in self.diverged:
                self.diverged[child] = self.diverged[pid].copy()
            if pid in self.freed:
                self.freed[child] = self.freed[pid].copy()
                self.freed_value[child] = self._freed_value(pid).copy()
        elif isinstance(op, O.Exit):
            self.tainted = {(p, r) for p, r in self.tainted if p != pid}
            self.detached.discard(pid)
            self.shadow.pop(pid, None)
            self.sd_loose.pop(pid, None)
            self.sd_legacy_more.pop(pid, None)
            self.diverged.pop(pid, None)
            self.freed.pop(pid, None)
            self.freed_value.pop(pid, None)
        elif isinstance(op, O.Free) and pid in self.legacy.mms:
            sl = slice(op.start, op.start + op.npages)
            freed = self.freed.setdefault(pid, np.zeros(O.VA_PAGES, bool))
            old = self._freed_value(pid)
            if pid in self.prev_contents:  # a page freed again keeps the value it was first freed with
                old[sl] = np.where(freed[sl], old[sl], self.prev_contents[pid][sl])
            # only pages inside a VMA are freed (a hole gives -ENOMEM and frees nothing there)
            in_vma = np.zeros(O.VA_PAGES, bool)
            for v in self.legacy.mms[pid].vmas:
                in_vma[v.start:v.end] = True
            freed[sl] |= in_vma[sl]
        elif isinstance(op, O.MremapMove) and res in (O.OK, -errno.EFAULT):
            # remap_move() (mm/mremap.c:1933): VMA by VMA, holes' destinations untouched
            for a, b, new, _ in self._mremap_pieces:
                self._move(pid, a, new, b - a, all_moved=True)
                self._loosen(pid, new, new + b - a)
        elif isinstance(op, O.UffdMove):
            n = max(0, min(op.npages, O.VA_PAGES - op.src, O.VA_PAGES - op.dst))
            self._move(pid, op.src, op.dst, n, all_moved=res == O.OK)
            self._loosen(pid, op.dst, op.dst + n)
            self._loosen(pid, op.src, op.src + n)
        elif isinstance(op, O.ClearRefs):
            self.shadow[pid] = np.zeros(O.VA_PAGES, dtype=bool)
            self.sd_loose.pop(pid, None)
            self.sd_legacy_more.pop(pid, None)
        w = self.legacy.written
        if w is not None:
            p, a, b = w
            self.shadow.setdefault(p, np.zeros(O.VA_PAGES, bool))[a:b] = True
            self._loosen(p, a, b)
            if p in self.freed and isinstance(op, O.Write):
                # a store of a new value settles a freed page; a store fault writes back what it
                # read (zero or the freed value), which leaves both possible
                self.freed[p][a:b] = False

    def _follow_expect(self, op: O.Op, res: int, pids_before: set[int], ol) -> None:
        """Keep the expected contents: writes set them, zaps clear them, moves carry them."""
        pid = getattr(op, "pid", None)
        ex = self.expect.get(pid)
        if isinstance(op, O.Fork) and res == O.OK:
            (child,) = set(self.legacy.mms) - pids_before
            self.expect[child] = ex.copy()
        elif isinstance(op, O.Exit):
            self.expect.pop(pid, None)
        elif ex is None:
            return
        elif isinstance(op, O.Dontneed) or isinstance(op, (O.Munmap, O.Mmap)) and res == O.OK:
            ex[op.start:op.start + op.npages] = 0
        elif isinstance(op, O.MremapMove) and res in (O.OK, -errno.EFAULT):
            for a, b, new, _ in self._mremap_pieces:  # -EFAULT: maybe moved in part
                moved = ex[a:b].copy()
                ex[a:b] = 0
                ex[new:new + b - a] = moved
        elif isinstance(op, O.MremapShrink) and res == O.OK and op.new_npages < op.npages:
            ex[op.start + op.new_npages:op.start + op.npages] = 0
        elif isinstance(op, O.UffdMove):
            if res == O.OK:
                moved = ex[op.src:op.src + op.npages].copy()
                ex[op.src:op.src + op.npages] = 0
                ex[op.dst:op.dst + op.npages] = moved
            elif pid in ol.procs and pid in self.prev_contents:
                # a partial move: how far it got is legacy's to say; pages it did not change keep
                # their expectation (a freed page may read zero or its old value)
                now, before = ol.procs[pid].contents, self.prev_contents[pid]
                for a in (op.src, op.dst):
                    sl = slice(a, a + op.npages)
                    ex[sl] = np.where(now[sl] != before[sl], now[sl], ex[sl])
        w = self.legacy.written
        if w is not None:
            p, a, b = w
            if isinstance(op, O.Write):
                self.expect[p][a:b] = (op.value & O.MAX_VALUE) << 16 | np.arange(a, b)
            # a store fault (`fault write=1`) writes back what it read: the expectation stands

    def _entry_vs_none(self, op: O.Op) -> bool:
        """Is the op representation-sensitive where the models legitimately differ? A store or
        fault on a page whose residency has differed between the models (uffd-wp lives on an entry,
        not on a none anonymous PTE), or a UFFDIO_MOVE touching a tainted region (it succeeds,
        splits or refuses depending on PMD- vs PTE-level mapping)."""
        pid = getattr(op, "pid", None)
        if pid is None or not isinstance(op, (O.Write, O.Fault, O.UffdMove)):
            return False
        if isinstance(op, O.UffdMove):
            mask = self._tainted_mask(pid)
            ranges = [(op.src, op.npages), (op.dst, op.npages)]
        else:
            mask = self.diverged.get(pid)
            if mask is None:
                return False
            ranges = [(op.page, 1)] if isinstance(op, O.Fault) else [(op.start, op.npages)]
        return any(mask[s:s + n].any() for s, n in ranges)

    def _rwp_level_differs(self, op: O.Op) -> bool:
        """A write or fault reaching a uffd RWP VMA in a region whose PMD is huge (present or
        swap) in one model and not in the other (TOLERATED rwp_resolve_level)."""
        pid = getattr(op, "pid", None)
        if not isinstance(op, (O.Write, O.Fault)) or pid not in self.legacy.mms \
                or pid not in self.pmd.mms:
            return False
        lo, n = (op.page, 1) if isinstance(op, O.Fault) else (op.start, op.npages)
        lmm, pmm = self.legacy.mms[pid], self.pmd.mms[pid]
        if not any(v.uffd_rwp for v in lmm.vmas_in(lo, lo + n)):
            return False
        huge = (PMD_HUGE, PMD_SWAP)
        return any((lmm.pmd_kind[r] in huge) != (pmm.pmd_kind[r] in huge)
                   for r, _a, _b in regions_of(lo, min(lo + n, O.VA_PAGES)))

    def _note_pte_batch_dirty(self, op: O.Op) -> None:
        """TOLERATED pte_batch_dirty_sd: before an mprotect / UFFDIO_WRITEPROTECT / UFFDIO_RWPROTECT,
        the regions of its range that legacy maps with a PTE table where the PMD model maps a
        present THP: there legacy's batch may gain soft-dirty the PMD model's PMD does not."""
        pid = getattr(op, "pid", None)
        if not isinstance(op, (O.Mprotect, O.UffdWp, O.UffdRwp)) or pid not in self.legacy.mms \
                or pid not in self.pmd.mms:
            return
        lmm, pmm = self.legacy.mms[pid], self.pmd.mms[pid]
        for r, _a, _b in regions_of(op.start, min(op.start + op.npages, O.VA_PAGES)):
            if lmm.pmd_kind[r] == PMD_TABLE and pmm.pmd_kind[r] == PMD_HUGE:
                self.sd_legacy_more.setdefault(pid, np.zeros(O.VA_PAGES, bool))[
                    region_slice(r)] = True

    def _note_diverged(self, ol, op_) -> None:
        """Remember tainted pages whose residency differs now: their uffd-wp bits may differ from
        then on, and stores to them are representation-sensitive."""
        for pid, a, b in self._common(ol, op_):
            if not any(p == pid for p, _ in self.tainted):
                continue
            d = self._tainted_mask(pid) & (a.state != b.state)
            if d.any():
                self.diverged.setdefault(pid, np.zeros(O.VA_PAGES, bool))[d] = True

    @staticmethod
    def _contents_differ(pid: int, ol, op_) -> bool:
        a, b = ol.procs.get(pid), op_.procs.get(pid)
        if a is None or b is None:
            return False
        return bool(((a.state != UNMAPPED) & (b.state != UNMAPPED) & (a.contents != b.contents)).any())

    def _loosen(self, pid: int, lo: int, hi: int) -> None:
        """Whole 2 MiB regions: a write through a PMD marks all 512 pages soft-dirty."""
        if hi <= lo:
            return
        a, b = lo // HPAGE_PMD_NR * HPAGE_PMD_NR, min(O.VA_PAGES, -(-hi // HPAGE_PMD_NR) * HPAGE_PMD_NR)
        self.sd_loose.setdefault(pid, np.zeros(O.VA_PAGES, bool))[a:b] = True

    def _freed_value(self, pid: int) -> np.ndarray:
        return self.freed_value.setdefault(pid, np.zeros(O.VA_PAGES, np.uint32))

    def _move(self, pid: int, src: int, dst: int, n: int, all_moved: bool) -> None:
        """Carry the per-page shadows along a move. After a partial move nobody knows which pages
        moved: forget the written-pages shadow there and treat both ranges as MADV_FREE'd if
        either was (the expected contents then come from legacy, see _follow_expect). The taint
        of the source regions reaches the destination whatever the result: even a refused move
        leaves the destination's page table as the source's representation decided."""
        if n <= 0:
            return
        src_regions = range(src // HPAGE_PMD_NR, (src + n - 1) // HPAGE_PMD_NR + 1)
        if any((pid, r) in self.tainted for r in src_regions):
            self.tainted |= {(pid, r) for r in range(dst // HPAGE_PMD_NR,
                                                     (dst + n - 1) // HPAGE_PMD_NR + 1)}
        if not all_moved:
            sh = self.shadow.setdefault(pid, np.zeros(O.VA_PAGES, bool))
            sh[src:src + n] = sh[dst:dst + n] = False
            dv = self.diverged.setdefault(pid, np.zeros(O.VA_PAGES, bool))
            dv[src:src + n] = dv[dst:dst + n] = dv[src:src + n] | dv[dst:dst + n]
            fr = self.freed.setdefault(pid, np.zeros(O.VA_PAGES, bool))
            fv = self._freed_value(pid)
            prev = self.prev_contents.get(pid)
            for a, b in ((src, dst), (dst, src)):
                # a page that becomes "maybe freed" here may read what it held before the op
                new = fr[b:b + n] & ~fr[a:a + n]
                if prev is not None:
                    fv[a:a + n] = np.where(new, prev[a:a + n], fv[a:a + n])
            either = fr[src:src + n] | fr[dst:dst + n]
            fr[src:src + n] = fr[dst:dst + n] = either
            lm = self.sd_legacy_more.setdefault(pid, np.zeros(O.VA_PAGES, bool))
            lm[src:src + n] = lm[dst:dst + n] = lm[src:src + n] | lm[dst:dst + n]
            return
        for shadows, dtype in ((self.shadow, bool), (self.freed, bool), (self.freed_value, np.uint32),
                               (self.diverged, bool), (self.sd_legacy_more, bool)):
            sh = shadows.setdefault(pid, np.zeros(O.VA_PAGES, dtype))
            moved = sh[src:src + n].copy()
            sh[src:src + n] = 0
            sh[dst:dst + n] = moved

    # ---- one step ------------------------------------------------------------------------------
    def step(self, i: int, op: O.Op) -> Divergence | None:
        if self.collect_cells:
            self.cells.update(op_cells(self.pmd, op))
        pids_before = set(self.legacy.mms)
        risky = self._entry_vs_none(op)
        rwp_level = self._rwp_level_differs(op)
        self._note_pte_batch_dirty(op)
        self._mremap_pieces = []
        if isinstance(op, O.MremapMove) and op.pid in self.legacy.mms:
            self._mremap_pieces = remap_move_pieces(
                [(v.start, v.end, v.uffd_protected) for v in self.legacy.mms[op.pid].vmas],
                op.start, op.start + op.npages, op.dst)
        mixed = _mixed_cache_bases(self.pmd) if isinstance(op, _V3_OPS) else set()
        fallback = self._swpout_fallback_regions(op)
        rl = self.legacy.apply(op)
        rp = self.pmd.apply(op)
        if fallback and self._swpout_fallbacks(self.legacy) - fallback[0] != \
                self._swpout_fallbacks(self.pmd) - fallback[1]:
            # TOLERATED thp_swpout_fallback_one_side
            self.tainted |= {(op.pid, r) for r in fallback[2]}
        events = self.pmd.events
        v3 = next((ev for ev in events if ev[0] in ("pmd_swapin", "pmd_unuse") and ev[3] in mixed),
                  None)
        ol, op_ = observe(self.legacy), observe(self.pmd)
        for name, k, res, obs in (("legacy", self.legacy, rl, ol), ("pmd", self.pmd, rp, op_)):
            born = set(k.mms) - pids_before
            self.uffd_wp_shadow[name].follow(op, res, obs, born.pop() if born else None)
        d8 = any(e[0] == "uffd_move_whole" for e in events)
        self._follow(op, rl, pids_before)
        self._follow_expect(op, rl, pids_before, ol)
        if d8 and rl == -16 and rp == O.OK:  # TOLERATED uffd_move_whole: -EBUSY vs 0
            self.detached.add(op.pid)
            rl = rp
        for ev in events:
            if ev[0] == "pmd_zapped":
                # TOLERATED pmd_zapped: only where legacy kept an (empty) PTE table
                lmm = self.legacy.mms.get(ev[1])
                if lmm is not None and lmm.pmd_kind[ev[2]] == PMD_TABLE:
                    self.tainted.add((ev[1], ev[2]))
                    self.lockstep = False
            elif ev[0] in ("uffd_move_refused", "uffd_move_src_none"):
                self.tainted.add((ev[1], ev[2]))
                self.lockstep = False
            elif ev[0] == "pmd_swapout_dirty_not_sd":
                r = ev[2]
                self.sd_legacy_more.setdefault(ev[1], np.zeros(O.VA_PAGES, bool))[
                    r * HPAGE_PMD_NR:(r + 1) * HPAGE_PMD_NR] = True
            elif ev[0] in ("pmd_swapin", "pmd_unuse"):
                self._taint_slot_sharers(ev[1], ev[2], ev[3])
            elif ev[0] == "pmd_readahead":
                self.lockstep = False  # TOLERATED pmd_readahead: the cache's folio sizes differ
        if risky and (rl != rp or self._contents_differ(op.pid, ol, op_)):
            self.detached.add(op.pid)  # TOLERATED entry_vs_none_cascade
            rl = rp
        if rwp_level and op.pid in ol.procs and op.pid in op_.procs and (
                rl != rp or self._contents_differ(op.pid, ol, op_)
                or (ol.procs[op.pid].uffd_wp != op_.procs[op.pid].uffd_wp).any()):
            self.detached.add(op.pid)  # TOLERATED rwp_resolve_level
            rl = rp
        self._note_diverged(ol, op_)
        self.prev_contents = {pid: po.contents for pid, po in ol.procs.items()}
        for pid, po in ol.procs.items():
            if pid in self.shadow:
                self.shadow[pid] &= po.state >= PRESENT  # a zapped page forgets it was written
        if v3 is not None:
            return self._div("v3-cache-rule", i, op, v3[1], (v3[2] * HPAGE_PMD_NR,),
                             f"{v3[0]} of the entry at slot {v3[3]} while the swap cache held part "
                             "of its slots (or other folios): TOLERATED rows pmd_swapin/pmd_unuse "
                             "presuppose an empty cache or the one PMD-sized folio", "-", v3[0])
        return (self._contents(i, op, ol, op_) or self._expected_contents(i, op, ol, op_)
                or self._layout(i, op, ol, op_, rl, rp)
                or self._uffd_wp(i, op, ol, op_) or self._expected_uffd_wp(i, op, ol, op_)
                or self._soft_dirty(i, op, ol, op_)
                or self._residency(i, op, ol, op_) or self._mincore(i, op, ol, op_)
                or self._invariants(i, op))

    @staticmethod
    def _swpout_fallbacks(k) -> int:
        return k.vmstat["thp_swpout_fallback"]

    def _swpout_fallback_regions(self, op: O.Op):
        """Before a MADV_PAGEOUT out of lockstep: each model's THP_SWPOUT_FALLBACK count and the
        regions of the range where either maps part of a large folio (TOLERATED
        thp_swpout_fallback_one_side). None in lockstep: both devices are equal, so an order-9
        allocation succeeds in both or in neither."""
        if self.lockstep or not isinstance(op, O.Pageout):
            return None
        regions = set()
        lo, hi = op.start, min(op.start + op.npages, O.VA_PAGES)
        for k in (self.legacy, self.pmd):
            mm = k.mms.get(op.pid)
            if mm is None:
                continue
            for r, _, _ in regions_of(lo, hi):
                sl = region_slice(r)
                pfns = mm.pte_pfn[sl][mm.pte_kind[sl] == PTE_PRESENT]
                if mm.pmd_kind[r] == PMD_HUGE or (k.mem.order[k.mem.head[pfns]] > 0).any():
                    regions.add(r)
        return self._swpout_fallbacks(self.legacy), self._swpout_fallbacks(self.pmd), regions

    def _taint_slot_sharers(self, pid: int, r: int, base: int) -> None:
        self.lockstep = False
        self.tainted.add((pid, r))
        for k in (self.legacy, self.pmd):
            for mm in k.mms.values():
                offs = np.where(mm.pte_kind == PTE_SWAP, mm.pte_swp_off, -1)
                hit = (offs >= base) & (offs < base + HPAGE_PMD_NR)
                hit &= np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR)
                for rr in np.unique(hit.nonzero()[0] // HPAGE_PMD_NR):
                    self.tainted.add((mm.pid, int(rr)))
                for rr in ((mm.pmd_kind == PMD_SWAP) & (mm.pmd_swp_off == base)).nonzero()[0]:
                    self.tainted.add((mm.pid, int(rr)))

    def _div(self, rule, i, op, pid, pages, detail, lv, pv) -> Divergence:
        pages = tuple(int(p) for p in pages[:8])
        rk = _region_repr(self.pmd, pid, pages[0]) if pid is not None and pages else ""
        return Divergence(rule, i, op, pid, pages, detail, str(lv), str(pv), rk)

    def _common(self, ol, op_):
        for pid in sorted(set(ol.procs) & set(op_.procs)):
            if pid not in self.detached:
                yield pid, ol.procs[pid], op_.procs[pid]

    # ---- rules -------------------------------------------------------------------------------
    def _tainted_mask(self, pid: int) -> np.ndarray:
        mask = np.zeros(O.VA_PAGES, dtype=bool)
        for p, r in self.tainted:
            if p == pid:
                mask[r * HPAGE_PMD_NR:(r + 1) * HPAGE_PMD_NR] = True
        return mask

    def _contents(self, i, op, ol, op_):
        for pid, a, b in self._common(ol, op_):
            mapped = (a.state != UNMAPPED) & (b.state != UNMAPPED)
            differ = mapped & (a.contents != b.contents)
            if differ.any() and pid in self.freed:
                # TOLERATED madv_free_after_swapin: each side reads zero or what was freed
                fv = self._freed_value(pid)
                differ &= ~(self.freed[pid] & self._tainted_mask(pid)
                            & ((a.contents == 0) | (a.contents == fv))
                            & ((b.contents == 0) | (b.contents == fv)))
            bad = differ.nonzero()[0]
            if bad.size:
                p = bad[0]
                return self._div("contents", i, op, pid, bad, "page contents differ",
                                 hex(int(a.contents[p])), hex(int(b.contents[p])))
        return None

    def _expected_contents(self, i, op, ol, op_):
        """Both models against the model-independent expectation (catches shared-code data loss)."""
        for name, obs in (("legacy", ol), ("pmd", op_)):
            for pid, po in obs.procs.items():
                ex = self.expect.get(pid)
                if ex is None or (name == "pmd" and pid in self.detached):
                    continue
                ok = (po.state == UNMAPPED) | (po.contents == ex)
                if pid in self.freed:  # MADV_FREE: old data or zeros
                    ok |= self.freed[pid] & (po.contents == 0)
                bad = (~ok).nonzero()[0]
                if bad.size:
                    p = bad[0]
                    return self._div("contents-expected", i, op, pid, bad,
                                     f"{name} reads {hex(int(po.contents[p]))}, expected "
                                     f"{hex(int(ex[p]))} (last write, or zero)",
                                     hex(int(ol.procs[pid].contents[p])) if pid in ol.procs else "-",
                                     hex(int(op_.procs[pid].contents[p])) if pid in op_.procs else "-")
        return None

    def _layout(self, i, op, ol, op_, rl, rp):
        if rl != rp and getattr(op, "pid", None) not in self.detached:
            return self._div("results", i, op, getattr(op, "pid", None), (), "op results differ",
                             O.result_name(rl), O.result_name(rp))
        if set(ol.procs) != set(op_.procs):
            return self._div("layout", i, op, None, (), "process sets differ",
                             sorted(ol.procs), sorted(op_.procs))
        for pid, a, b in self._common(ol, op_):
            if a.vmas != b.vmas:
                return self._div("layout", i, op, pid, (), "VMAs differ", a.vmas, b.vmas)
        return None

    def _uffd_wp(self, i, op, ol, op_):
        for pid, a, b in self._common(ol, op_):
            both = (a.state >= PRESENT) & (b.state >= PRESENT)
            if pid in self.diverged:  # TOLERATED entry_vs_none_cascade: none lost the bit
                both &= ~self.diverged[pid]
            bad = (both & (a.uffd_wp != b.uffd_wp)).nonzero()[0]
            if bad.size:
                p = bad[0]
                return self._div("uffd-wp", i, op, pid, bad, "uffd-wp bit differs",
                                 int(a.uffd_wp[p]), int(b.uffd_wp[p]))
        return None

    def _expected_uffd_wp(self, i, op, ol, op_):
        """Each model's uffd-wp bits against the model-independent expectation."""
        for name, obs in (("legacy", ol), ("pmd", op_)):
            bad = self.uffd_wp_shadow[name].check(obs)
            if bad is not None:
                pid, pages, want = bad
                p = int(pages[0])
                return self._div("uffd-wp-expected", i, op, pid, pages,
                                 f"{name}: uffd-wp is {int(not want)} where the ops say {int(want)}",
                                 int(ol.procs[pid].uffd_wp[p]) if pid in ol.procs else "-",
                                 int(op_.procs[pid].uffd_wp[p]) if pid in op_.procs else "-")
        return None

    def _soft_dirty(self, i, op, ol, op_):
        for pid, a, b in self._common(ol, op_):
            both = (a.state >= PRESENT) & (b.state >= PRESENT)
            sh = self.shadow.get(pid)
            if sh is not None:
                for name, po in (("legacy", a), ("pmd", b)):
                    bad = (both & sh & ~po.soft_dirty).nonzero()[0]
                    if bad.size:
                        return self._div("soft-dirty", i, op, pid, bad,
                                         f"a page written since clear_refs is not soft-dirty in {name}",
                                         int(a.soft_dirty[bad[0]]), int(b.soft_dirty[bad[0]]))
            legacy_more = self.sd_legacy_more.get(pid)
            one_sided = both if legacy_more is None else both & ~legacy_more
            bad = (one_sided & a.soft_dirty & ~b.soft_dirty).nonzero()[0]
            if bad.size:
                return self._div("soft-dirty", i, op, pid, bad,
                                 "soft-dirty in legacy but not in the PMD model", 1, 0)
            # TOLERATED soft_dirty_superset only where a write or a move since clear_refs allows
            # it; TOLERATED pmd_swapout_dirty_not_sd the other way round
            strict = one_sided & ~self._tainted_mask(pid)
            if pid in self.sd_loose:
                strict &= ~self.sd_loose[pid]
            if legacy_more is not None:
                pmd_more = both & legacy_more & b.soft_dirty & ~a.soft_dirty & ~self._tainted_mask(pid)
                if pid in self.sd_loose:
                    pmd_more &= ~self.sd_loose[pid]
                bad = pmd_more.nonzero()[0]
                if bad.size:
                    return self._div("soft-dirty", i, op, pid, bad,
                                     "soft-dirty in the PMD model but not in legacy on a dirty "
                                     "THP swapped out since clear_refs", 0, 1)
            bad = (strict & (a.soft_dirty != b.soft_dirty)).nonzero()[0]
            if bad.size:
                return self._div("soft-dirty", i, op, pid, bad,
                                 "soft-dirty differs on a page nothing wrote or moved since clear_refs",
                                 int(a.soft_dirty[bad[0]]), int(b.soft_dirty[bad[0]]))
        return None

    def _residency(self, i, op, ol, op_):
        for pid, a, b in self._common(ol, op_):
            cmp = ~self._tainted_mask(pid)
            bad = (cmp & (a.state != b.state)).nonzero()[0]
            if bad.size:
                p = bad[0]
                names = {UNMAPPED: "unmapped", NONE: "none", PRESENT: "present", SWAPPED: "swapped"}
                return self._div("residency", i, op, pid, bad, "residency differs",
                                 names[int(a.state[p])], names[int(b.state[p])])
            if not self.lockstep:
                continue
            bad = (a.swp_off != b.swp_off).nonzero()[0]
            if bad.size:
                p = bad[0]
                return self._div("swap-slots", i, op, pid, bad, "swap offset differs",
                                 int(a.swp_off[p]), int(b.swp_off[p]))
            if (a.rss_anon, a.vm_swap) != (b.rss_anon, b.vm_swap):
                return self._div("rss", i, op, pid, (), "RssAnon/VmSwap differ",
                                 (a.rss_anon, a.vm_swap), (b.rss_anon, b.vm_swap))
            # AnonHugePages (the last smaps column) is mapping level: not compared (D2, D4)
            if [s[:4] for s in a.smaps] != [s[:4] for s in b.smaps]:
                return self._div("smaps", i, op, pid, (), "smaps Rss/Swap differ", a.smaps, b.smaps)
        if self.lockstep and not self.detached and ol.swap_count is not None \
                and op_.swap_count is not None:
            bad = (ol.swap_count != op_.swap_count).nonzero()[0]
            if bad.size:
                s = bad[0]
                return self._div("swap-counts", i, op, None, (), f"count of slot {int(s)} differs",
                                 int(ol.swap_count[s]), int(op_.swap_count[s]))
            bad = (ol.swap_free != op_.swap_free).nonzero()[0]
            if bad.size:
                s = bad[0]
                return self._div("swap-counts", i, op, None, (), f"slot {int(s)} free in one model only",
                                 "free" if ol.swap_free[s] else "used",
                                 "free" if op_.swap_free[s] else "used")
        if (ol.swap_count is None) != (op_.swap_count is None):
            return self._div("layout", i, op, None, (), "swap device present in one model only",
                             ol.swap_count is not None, op_.swap_count is not None)
        return None

    def _mincore(self, i, op, ol, op_):
        """mincore's answers: each model's against its own state (a mapped present page is
        resident, a none one is not, a swapped one iff that model caches its slot; answers stop
        at the first page in no VMA), then legacy's against the PMD model's on the pages whose
        residency is compared (not tainted, process not detached) while in lockstep. The swap
        cache differs legitimately once lockstep has ended (a whole-2 MiB swap-in leaves one
        large folio cached where legacy has small ones or none)."""
        if not isinstance(op, O.Mincore) or op.pid not in ol.procs:
            return None
        lo, hi = op.start, min(op.start + op.npages, O.VA_PAGES)
        for name, k, obs in (("legacy", self.legacy, ol), ("pmd", self.pmd, op_)):
            po, vec = obs.procs[op.pid], k.output
            state = po.state[lo:hi]
            want = np.full(op.npages, MINCORE_UNSET, np.int8)
            mapped = np.append(state != UNMAPPED, np.zeros(op.npages - (hi - lo), bool))
            n = int(np.argmin(mapped)) if not mapped.all() else op.npages
            w = want[:n]
            w[:] = (state[:n] == PRESENT)
            swp = state[:n] == SWAPPED
            if swp.any():
                w[swp] = k.swap.cache[po.swp_off[lo:lo + n][swp]] >= 0
            bad = (vec != want).nonzero()[0]
            if bad.size:
                p = int(bad[0])
                return self._div("mincore", i, op, op.pid, bad + lo,
                                 f"{name} answers {int(vec[p])} for a page whose state says "
                                 f"{int(want[p])} ({MINCORE_UNSET}: not written)",
                                 int(self.legacy.output[p]), int(self.pmd.output[p]))
        if self.lockstep and op.pid not in self.detached:
            cmp = ~self._tainted_mask(op.pid)[lo:hi]
            a, b = self.legacy.output[:hi - lo], self.pmd.output[:hi - lo]
            bad = (cmp & (a != b)).nonzero()[0]
            if bad.size:
                p = int(bad[0])
                return self._div("mincore", i, op, op.pid, bad + lo, "mincore answers differ",
                                 int(a[p]), int(b[p]))
        return None

    def _invariants(self, i, op):
        for name, k in (("legacy", self.legacy), ("pmd", self.pmd)):
            bad = check_invariants(k)
            if bad:
                return self._div(f"invariant:{bad[0]}", i, op, None, (), f"{name}: {bad[1]}",
                                 bad[1] if name == "legacy" else "holds",
                                 bad[1] if name == "pmd" else "holds")
        return None
