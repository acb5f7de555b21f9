"""The part of the kernel both models share unchanged: processes, VMAs, PTE-level paths, the op entry points.

Shared code (not seen by the differential check, guarded by models/invariants.py):
  * VMAs and their splitting/merging (mm/vma.c), syscall argument checks and error returns;
  * every PTE-level path (mm/memory.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c, mm/swapfile.c,
    mm/userfaultfd.c, fs/proc/task_mmu.c) and present-PMD THP paths that the series does not change
    (`do_huge_pmd_anonymous_page`, `do_huge_pmd_wp_page`, the present branches of the PMD functions);
  * reclaim's folio-level steps (mm/vmscan.c shrink_folio_list) and the swap layer (models/swap.py).

Model-specific (independent per kernel, in models/legacy.py and models/pmd_swap.py): every function that
sees a PMD entry which is huge (present or swap): the `PMD_LEVEL_HOOKS` below. A subclass that does not
define one of them is not a kernel model.

Page tables are numpy arrays per mm: one row per 2 MiB region for the PMD level, one row per 4 KiB
page for the PTE level (valid only where the region's PMD is a table). Configuration modelled, for both:
THP enabled=madvise with the 2 MiB size only (no mTHP), use_zero_page=0 for THP (a read fault in a
MADV_HUGEPAGE range allocates a THP), vm.page-cluster=0 (no swap readahead), CONFIG_PT_RECLAIM=y
(a whole-2 MiB MADV_DONTNEED frees its PTE table), userfaultfd without UFFD_FEATURE_EVENT_FORK/REMAP.
The reference is Linux 7.3 (the series' base tree); docs/models.md lists where it was checked (M1-M12).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace

import numpy as np

from . import ops as O
from .errors import BadOp, ModelBug
from .memory import ZERO_PFN, PhysMem
from .ops import HPAGE_PMD_NR, NR_REGIONS, VA_PAGES
from .swap import SwapDevice

# PMD entry kinds (pmd_none / table / pmd_trans_huge / is_swap_pmd)
PMD_NONE, PMD_TABLE, PMD_HUGE, PMD_SWAP = 0, 1, 2, 3
# PTE entry kinds (pte_none / pte_present / is_swap_pte)
PTE_NONE, PTE_PRESENT, PTE_SWAP = 0, 1, 2
MINCORE_UNSET = 2  # a mincore() vector byte the kernel did not write (after -ENOMEM)

EINVAL, ENOMEM, EEXIST, EFAULT, EBUSY, ENOENT, EAGAIN = (
    -errno.EINVAL, -errno.ENOMEM, -errno.EEXIST, -errno.EFAULT, -errno.EBUSY, -errno.ENOENT,
    -errno.EAGAIN)

# every per-entry array of an MM: a move copies all of them
PTE_FIELDS = ("pte_kind", "pte_pfn", "pte_write", "pte_dirty", "pte_sd", "pte_uw", "pte_swp_off",
              "pte_swp_excl")
PMD_FIELDS = ("pmd_kind", "pmd_pfn", "pmd_write", "pmd_dirty", "pmd_sd", "pmd_uw", "pmd_swp_off",
              "pmd_swp_excl")

VMSTAT_KEYS = ("thp_swpout", "thp_swpout_fallback", "thp_split_pmd", "pswpin", "pswpout",
               "thp_fault_alloc", "thp_fault_fallback", "thp_swpout_pmd", "thp_swpin_pmd",
               "thp_swpin_pmd_fallback")


@dataclass(frozen=True)
class Vma:
    """A private anonymous vm_area_struct; pages [start, end)."""

    start: int
    end: int
    prot: int = O.PROT_RW
    hugepage: bool = False  # VM_HUGEPAGE
    uffd_wp: bool = False  # registered with UFFDIO_REGISTER_MODE_WP (VM_UFFD_WP)
    # registered with UFFDIO_REGISTER_MODE_RWP (VM_UFFD_RWP, Linux 7.3). WP and RWP share the
    # uffd PTE bit (pte_uw / pmd_uw here) and never coexist on a VMA (userfaultfd_register(),
    # 7.3 mm/userfaultfd.c:3767). On an RWP VMA a present entry with the bit is PROT_NONE
    # (protnone + _PAGE_UFFD): not accessible, not writable (pte_write is kept False)
    uffd_rwp: bool = False
    softdirty: bool = True  # VM_SOFTDIRTY: set on new VMAs, cleared by clear_refs
    anon_vma: int = 0  # anon_vma identity, 0 = none yet (anon_vma_prepare() at the first fault)
    pgoff: int = 0  # vm_pgoff of `start`: an anonymous mmap's is its address; mremap keeps it
    fork_child: bool = False  # vma_is_fork_child(): forked with an anon_vma (a non-singular chain)

    def flags(self) -> tuple:
        """What must be equal for a merge (is_mergeable_vma()): VM_SOFTDIRTY is not among them,
        it is a sticky flag (VMA_IGNORE_MERGE_FLAGS = VMA_STICKY_FLAGS, include/linux/mm.h)."""
        return (self.prot, self.hugepage, self.uffd_wp, self.uffd_rwp)

    @property
    def uffd_protected(self) -> bool:
        """userfaultfd_protected() (7.3 include/linux/userfaultfd_k.h:233): WP or RWP."""
        return self.uffd_wp or self.uffd_rwp

    @property
    def uffd_mode(self) -> int:
        """What the observation reports of the registration: 0 none, 1 WP, 2 RWP."""
        return 1 if self.uffd_wp else 2 if self.uffd_rwp else 0


class MM:
    """mm_struct: VMAs, page tables and RSS counters of one process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.vmas: list[Vma] = []
        r, n = NR_REGIONS, VA_PAGES
        self.pmd_kind = np.zeros(r, dtype=np.int8)
        self.pmd_pfn = np.full(r, -1, dtype=np.int32)  # head pfn of a PMD-mapped folio
        self.pmd_write = np.zeros(r, dtype=bool)
        self.pmd_dirty = np.zeros(r, dtype=bool)
        self.pmd_sd = np.zeros(r, dtype=bool)
        self.pmd_uw = np.zeros(r, dtype=bool)
        self.pmd_swp_off = np.full(r, -1, dtype=np.int32)  # base slot of a PMD swap entry
        self.pmd_swp_excl = np.zeros(r, dtype=bool)
        self.pte_kind = np.zeros(n, dtype=np.int8)
        self.pte_pfn = np.full(n, -1, dtype=np.int32)
        self.pte_write = np.zeros(n, dtype=bool)
        self.pte_dirty = np.zeros(n, dtype=bool)
        self.pte_sd = np.zeros(n, dtype=bool)
        self.pte_uw = np.zeros(n, dtype=bool)
        self.pte_swp_off = np.full(n, -1, dtype=np.int32)
        self.pte_swp_excl = np.zeros(n, dtype=bool)
        self.anonpages = 0  # MM_ANONPAGES
        self.swapents = 0  # MM_SWAPENTS

    # ---- VMA lookup -------------------------------------------------------------------------------
    def find_vma(self, page: int) -> Vma | None:
        for v in self.vmas:
            if v.start <= page < v.end:
                return v
        return None

    def vmas_in(self, lo: int, hi: int) -> list[Vma]:
        return [v for v in self.vmas if v.start < hi and v.end > lo]

    def covered(self, lo: int, hi: int) -> bool:
        """Is every page of [lo, hi) inside some VMA?"""
        pos = lo
        for v in self.vmas:
            if v.end <= pos:
                continue
            if v.start > pos:
                return False
            pos = v.end
            if pos >= hi:
                return True
        return pos >= hi

    def clear_ptes(self, sl: slice) -> None:
        self.pte_kind[sl] = PTE_NONE
        self.pte_pfn[sl] = -1
        self.pte_write[sl] = False
        self.pte_dirty[sl] = False
        self.pte_sd[sl] = False
        self.pte_uw[sl] = False
        self.pte_swp_off[sl] = -1
        self.pte_swp_excl[sl] = False

    def clear_pmd(self, r: int, kind: int = PMD_NONE) -> None:
        self.pmd_kind[r] = kind
        self.pmd_pfn[r] = -1
        self.pmd_write[r] = self.pmd_dirty[r] = self.pmd_sd[r] = self.pmd_uw[r] = False
        self.pmd_swp_off[r] = -1
        self.pmd_swp_excl[r] = False


def leading_run(mask: np.ndarray) -> int:
    """How many entries at the start of `mask` are True (the length of a batchable run)."""
    return mask.size if mask.all() else int(np.argmin(mask))


def region_slice(r: int) -> slice:
    return slice(r * HPAGE_PMD_NR, (r + 1) * HPAGE_PMD_NR)


# change_protection() modes that set the uffd bit (MM_CP_UFFD_WP, MM_CP_UFFD_RWP: `uffd_prot`,
# 7.3 mm/mprotect.c:217) and that clear it (the _RESOLVE pair: `uffd_prot_resolve`)
UFFD_PROT_MODES = ("uffd_wp", "uffd_rwp")
UFFD_RESOLVE_MODES = ("uffd_wp_resolve", "uffd_rwp_resolve")


def regions_of(lo: int, hi: int):
    """Yield (region, lo, hi) pieces of [lo, hi) cut at 2 MiB boundaries (pmd_addr_end)."""
    while lo < hi:
        r = lo // HPAGE_PMD_NR
        end = min(hi, (r + 1) * HPAGE_PMD_NR)
        yield r, lo, end
        lo = end


def content_value(value: int, page: int) -> int:
    """What a `write` of `value` stores in `page`: distinct per page so misplaced pages show."""
    return ((value & O.MAX_VALUE) << 16) | page


class Kernel:
    """Shared kernel state and the op entry points; PMD-level functions come from the subclass."""

    name = "kernel"
    PMD_LEVEL_HOOKS = ("try_to_unmap_one_pmd", "handle_huge_pmd_fault", "copy_huge_pmd",
                       "zap_huge_pmd", "change_huge_pmd", "split_huge_pmd_locked",
                       "madvise_free_huge_pmd", "madvise_pageout_huge_pmd", "move_huge_pmd",
                       "clear_soft_dirty_pmd", "unuse_pmd_range", "move_pages_huge_pmd",
                       "pagemap_pmd_range", "swapin_walk_huge_pmd", "mincore_huge_pmd")

    def __init__(self) -> None:
        self.mem = PhysMem()
        self.swap: SwapDevice | None = SwapDevice(sync=False)
        self.mms: dict[int, MM] = {0: MM(0)}
        self.mmlist: list[int] = []  # init_mm.mmlist: mms that may hold swap entries, in list order
        self.zswap_ever_enabled = False  # zswap_never_enabled() static key, never reset
        # /sys/module/zswap/parameters/enabled: zswap_store() takes every folio reclaim writes
        # out (swap_writeout(), mm/page_io.c:238). No op turns it off again within a trace
        self.zswap_enabled = False
        self.vmstat = dict.fromkeys(VMSTAT_KEYS, 0)
        self.events: list[tuple] = []  # tolerated-difference events of this op (see fuzz/oracle.py)
        self.written: tuple | None = None
        self.output: np.ndarray | None = None  # what an op hands back besides its result (mincore)
        self._next_anon_vma = 1
        self._mapped_before: dict[int, np.ndarray] = {}  # queue_partially_mapped()'s last view
        self._readahead_dirty: set[int] = set()  # op_evict() leaves these (see there)
        self._dispatch = {cls: getattr(self, "op_" + cls.name) for cls in O.OPS}
        missing = [h for h in self.PMD_LEVEL_HOOKS if not hasattr(self, h)]
        if missing:
            raise TypeError(f"{type(self).__name__} is not a kernel model: no {', '.join(missing)}")

    # =====================================================================================
    # entry point
    # =====================================================================================
    def apply(self, op: O.Op) -> int:
        """Run one op; returns its user-visible result (0, -errno, a signal or NOT_APPLICABLE)."""
        handler = self._dispatch.get(type(op))
        if handler is None:
            raise BadOp(f"not an op: {op!r}")
        self.events = []
        self.written = None  # (pid, lo, hi): the pages a store reached, for the soft-dirty shadow
        self.output = None
        pid = getattr(op, "pid", None)
        if pid is not None and pid not in self.mms:
            if not isinstance(pid, int) or not 0 <= pid < O.MAX_PROCS:
                raise BadOp(f"{op.name}: pid {pid!r} is outside 0..{O.MAX_PROCS - 1}")
            return O.NOT_APPLICABLE  # no such process
        for f in O.op_fields(type(op)):
            kind, _ = O.field_kind(f)
            v = getattr(op, f.name)
            lo, hi = O.FIELD_BOUNDS.get(kind, (None, None))
            if lo is not None and not (isinstance(v, (int, bool)) and lo <= v <= hi):
                raise BadOp(f"{op.name}: field {f.name}={v!r} is outside {lo}..{hi}")
        ret = handler(op)
        self.queue_partially_mapped()
        if self._readahead_dirty:
            mem = self.mem
            self._readahead_dirty = {h for h in self._readahead_dirty if mem.head[h] == h
                                     and mem.in_swapcache(h) and not mem.mapcount[h]}
        return ret

    def queue_partially_mapped(self) -> None:
        """__folio_remove_rmap() (7.3 mm/rmap.c:1878): `if (partially_mapped &&
        folio_test_anon(folio) && !folio_test_partially_mapped(folio))
        deferred_split_folio(folio, true)`, where partially_mapped is "some page lost its last
        mapping and some page is still mapped" (a PMD mapping maps every page), and
        deferred_split_folio() (mm/huge_memory.c:4569) returns early for a folio in the swap
        cache. Checked after each op, per large folio, against its mapped pages after the op
        before: flagged when a page it mapped then is mapped no more, another still is, and it
        is outside the swap cache. Reclaim's try_to_unmap() takes a THP's PTEs off one by one,
        but the folio is in the swap cache by then (add_to_swap() comes first), so a swap-out
        never flags it (kernel-check: a THP swapped out, partly faulted back and evicted is not
        split). Simplification: a removal inside an op that leaves the swap cache, or passes
        through a partly mapped state, in the same op is judged by where the op ends."""
        mem = self.mem
        before, self._mapped_before = self._mapped_before, {}
        for head in (mem.order[:mem.high_water] > 0).nonzero()[0]:
            head = int(head)
            if mem.head[head] != head:
                continue
            if mem.entire_mapcount[head]:
                now = np.ones(HPAGE_PMD_NR, dtype=bool)
            else:
                now = mem.mapcount[head:head + HPAGE_PMD_NR] > 0
            self._mapped_before[head] = now
            was = before.get(head)
            if was is None or mem.partially_mapped[head] or mem.in_swapcache(head) \
                    or not now.any() or now.all():
                continue
            if (was & ~now).any():
                mem.partially_mapped[head] = True

    def _new_anon_vma(self) -> int:
        self._next_anon_vma += 1
        return self._next_anon_vma

    # =====================================================================================
    # VMA management (mm/vma.c), shared
    # =====================================================================================
    def split_vma(self, mm: MM, at: int) -> None:
        """__split_vma() at page `at`; vma_adjust_trans_huge() first splits a huge PMD across `at`."""
        v = mm.find_vma(at)
        if v is None or v.start == at:
            return
        if at % HPAGE_PMD_NR:
            r = at // HPAGE_PMD_NR
            # split_huge_pmd_if_needed(): the PMD range lies inside the VMA and is huge (or swap)
            if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                self.split_huge_pmd(mm, r)
        i = mm.vmas.index(v)
        mm.vmas[i:i + 1] = [replace(v, end=at), replace(v, start=at, pgoff=v.pgoff + at - v.start)]

    def vma_merge_range(self, mm: MM, lo: int, hi: int) -> None:
        """vma_merge_new_range() / vma_merge_existing_range() (mm/vma.c): after an op changed the
        VMAs of [lo, hi), each of them is tried against its neighbours; two adjacent VMAs whose
        flags match and whose anon_vmas are compatible become one. A pair with neither side in
        [lo, hi) is not tried (the kernel merges nothing an op did not touch: dup_mmap() merges
        nothing, and a fork child's VMAs that differ only in their uffd registration stay apart
        after the parent's unregister, found by kernel-check --generate on 7.3).

        is_mergeable_anon_vma(): the same anon_vma, or one side without one, unless the side with
        one is a fork child (vma_is_fork_child()). The merged VMA has VM_SOFTDIRTY if either had
        it (sticky). Simplification: a VMA in [lo, hi) the op left unchanged (mprotect_fixup()'s
        `newflags == oldflags` early return) is tried too; it differs from the kernel only for
        two equal neighbours that were apart already (docs/models.md M6)."""
        out: list[Vma] = []
        for v in sorted(mm.vmas, key=lambda v: v.start):
            if out and out[-1].end == v.start and out[-1].start < hi and v.end > lo \
                    and self._vmas_mergeable(out[-1], v, lo, hi):
                a = out[-1]
                out[-1] = replace(a, end=v.end, softdirty=self._merged_softdirty(a, v, lo, hi),
                                  anon_vma=a.anon_vma or v.anon_vma,
                                  fork_child=a.fork_child or v.fork_child)
            else:
                out.append(v)
        mm.vmas = out

    def _vmas_mergeable(self, a: Vma, b: Vma, lo: int, hi: int) -> bool:
        """Adjacent a, b (a first) may merge; [lo, hi) is the range the op changed."""
        if a.flags() != b.flags() or b.pgoff != a.pgoff + (a.end - a.start):
            return False  # is_mergeable_vma(), and the pgoffs must be contiguous
        if a.anon_vma == b.anon_vma:
            return True  # case 3: already shared (or neither has one)
        if a.anon_vma and b.anon_vma:
            return False
        # cases 1 and 2: one side has none; not with a fork child's anon_vma
        return not (a.fork_child if a.anon_vma else b.fork_child)

    def _merged_softdirty(self, a: Vma, b: Vma, lo: int, hi: int) -> bool:
        """VM_SOFTDIRTY of a and b merged: sticky (VMA_STICKY_FLAGS, include/linux/mm.h)."""
        return a.softdirty or b.softdirty

    @staticmethod
    def _reusable_anon_vma(mm: MM, v: Vma) -> int:
        """find_mergeable_anon_vma() (mm/vma.c): borrow an adjacent VMA's anon_vma when the two
        could merge but for their access flags (anon_vma_compatible(): touching, pgoffs contiguous,
        flags equal outside VM_ACCESS_FLAGS and VM_SOFTDIRTY) and it is not a fork child's
        (reusable_anon_vma(): a singular anon_vma_chain)."""
        nexts = [(nb, v, nb) for nb in mm.vmas if nb.start == v.end]
        prevs = [(nb, nb, v) for nb in mm.vmas if nb.end == v.start]
        for nb, a, b in nexts + prevs:  # "Try next first", then prev
            if not nb.anon_vma or nb.fork_child:
                continue
            if (a.hugepage, a.uffd_wp, a.uffd_rwp) == (b.hugepage, b.uffd_wp, b.uffd_rwp) \
                    and b.pgoff == a.pgoff + (a.end - a.start):
                return nb.anon_vma
        return 0

    def anon_vma_prepare(self, mm: MM, page: int) -> Vma:
        """anon_vma_prepare() / vmf_anon_prepare() (mm/rmap.c): the VMA gets its anon_vma when
        the first anonymous folio is mapped into it (not on a zero-page read fault)."""
        v = mm.find_vma(page)
        if v is None or v.anon_vma:
            return v  # no VMA: the fault itself gives SIGSEGV
        nv = replace(v, anon_vma=self._reusable_anon_vma(mm, v) or self._new_anon_vma())
        mm.vmas[mm.vmas.index(v)] = nv
        return nv

    def set_vma_flags(self, mm: MM, lo: int, hi: int, **changes) -> None:
        """mprotect_fixup()/userfaultfd_register(): split at lo/hi, change flags, merge."""
        self.split_vma(mm, lo)
        self.split_vma(mm, hi)
        mm.vmas = [replace(v, **changes) if lo <= v.start and v.end <= hi else v for v in mm.vmas]

    def do_vmi_munmap(self, mm: MM, lo: int, hi: int) -> None:
        """do_vmi_munmap(): split the VMAs at lo/hi, zap the range, drop the VMAs, free tables."""
        if not mm.vmas_in(lo, hi):
            return
        self.split_vma(mm, lo)
        self.split_vma(mm, hi)
        for v in mm.vmas_in(lo, hi):
            self.unmap_page_range(mm, v.start, v.end)
        mm.vmas = [v for v in mm.vmas if not (lo <= v.start and v.end <= hi)]
        self.free_pgtables(mm, lo, hi)

    def free_pgtables(self, mm: MM, lo: int, hi: int) -> None:
        """free_pgtables(): a PTE table no VMA covers any more is freed."""
        for r in range(lo // HPAGE_PMD_NR, (hi - 1) // HPAGE_PMD_NR + 1):
            sl = region_slice(r)
            if mm.pmd_kind[r] == PMD_TABLE and not mm.vmas_in(sl.start, sl.stop):
                if (mm.pte_kind[sl] != PTE_NONE).any():
                    raise ModelBug("freeing a PTE table that still has entries")
                mm.clear_pmd(r)

    # =====================================================================================
    # folio / swap-cache helpers (mm/swap_state.c, mm/swapfile.c), shared
    # =====================================================================================
    def folio_free_swap(self, head: int) -> bool:
        """folio_free_swap(): drop the folio from the swap cache if no slot is referenced any more."""
        mem, sw = self.mem, self.swap
        if not mem.in_swapcache(head) or mem.writeback[head]:
            return False
        nr = mem.nr_pages(head)
        if (sw.count[mem.swap[head:head + nr]] > 0).any():  # folio_swapped()
            return False
        sw.delete_from_swap_cache(mem, head)
        mem.dirty[head] = True
        return True

    def _swap_cache_holds(self, head: int) -> bool:
        """In the swap cache, and folio_free_swap() would keep it there."""
        mem = self.mem
        if not mem.in_swapcache(head):
            return False
        nr = mem.nr_pages(head)
        return bool(mem.writeback[head]) or bool((self.swap.count[mem.swap[head:head + nr]] > 0).any())

    def folio_put_if_unused(self, head: int) -> None:
        """The caller dropped a mapping: free_swap_cache() then the last folio_put()."""
        mem = self.mem
        if head == ZERO_PFN or mem.folio_mapped(head):
            return
        if mem.in_swapcache(head):
            self.folio_free_swap(head)
        if not mem.in_swapcache(head):
            mem.free_folio(head)

    def folios_put_if_unused(self, heads: np.ndarray) -> None:
        """folio_put_if_unused() for many folios: order-0 ones in one vector step (each is
        independent of the others), large ones one by one."""
        mem, sw = self.mem, self.swap
        heads = heads[heads != ZERO_PFN]
        small = heads[mem.order[heads] == 0]
        for h in heads[mem.order[heads] > 0]:
            self.folio_put_if_unused(int(h))
        small = small[mem.mapcount[small] == 0]
        if not small.size:
            return
        cached = small[mem.swap[small] >= 0]
        if cached.size:
            # free_swap_cache() -> folio_free_swap(): not under writeback, no slot referenced
            drop = cached[~mem.writeback[cached] & (sw.count[mem.swap[cached]] == 0)]
            if drop.size:
                sw.delete_order0_from_swap_cache(mem, drop)
                mem.dirty[drop] = True
        for h in small[mem.swap[small] < 0]:
            mem.free_folio(int(h))

    def swap_put_entries_direct(self, slots: np.ndarray) -> None:
        """free_swap_and_cache_nr(): put the slots; reclaim cached folios nobody uses any more."""
        sw, mem = self.swap, self.mem
        cached_zero = sw.put(slots)
        if not cached_zero.size:
            return
        for head in np.unique(mem.head[sw.cache[cached_zero]]):
            head = int(head)
            # __try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL)
            if mem.folio_mapped(head) or mem.writeback[head]:
                continue
            if self.folio_free_swap(head):
                mem.free_folio(head)

    def folio_maybe_mapped_shared(self, head: int) -> bool:
        """folio_maybe_mapped_shared(): mapped by more than one mm (exact here)."""
        mem = self.mem
        nr = mem.nr_pages(head)
        if nr == 1:
            return int(mem.mapcount[head]) > 1
        users = 0
        for mm in self.mms.values():
            if (mm.pmd_pfn == head).any() or ((mm.pte_pfn >= head) & (mm.pte_pfn < head + nr)
                                              & (mm.pte_kind == PTE_PRESENT)).any():
                users += 1
        return users > 1

    def swap_read_folio(self, head: int) -> None:
        """swap_read_folio() (mm/page_io.c): fill a new swap-cache folio from the device, or
        zero-fill it without I/O (no PSWPIN) when its slots are in the zeromap."""
        mem, sw = self.mem, self.swap
        if sw.swap_read_zeromap(mem, head):
            return
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr]
        if nr > 1:
            if sw.zswap[slots].any():
                # zswap_load() (7.3 mm/zswap.c:1612): `if (WARN_ON_ONCE(folio_test_large(folio)))
                # { folio_unlock(folio); return -EINVAL; }`: the folio is never uptodate and the
                # fault ends in VM_FAULT_SIGBUS. Every caller must fall back to order 0 first
                raise ModelBug(f"swap_read_folio(): a {nr}-page folio over slots zswap holds "
                               "(zswap_load() WARN_ON_ONCE, mm/zswap.c:1612)")
        elif sw.zswap_load(mem, np.array([head])).any():
            return  # zswap_load() filled it (mm/page_io.c:480): no device read
        mem.data[head:head + nr] = sw.data[slots]
        self.vmstat["pswpin"] += nr

    def _swapin_order0_batch(self, slots: np.ndarray) -> None:
        """swapin_order0() for each of these slots nobody caches (the batched swap-in paths)."""
        if not slots.size:
            return
        mem, sw = self.mem, self.swap
        new = mem.alloc_order0_batch(slots.size)
        sw.cache[slots] = new
        mem.swap[new] = slots
        zswap = sw.zswap_load(mem, new)  # zswap_load() first (mm/page_io.c:480)
        mem.data[new] = sw.data[slots]  # a zero-marked slot holds 0: swap_read_folio_zeromap()
        self.vmstat["pswpin"] += int((~sw.zero[slots] & ~zswap).sum())

    def swapin_order0(self, slot: int) -> int:
        """read_swap_cache_async()/swapin_readahead() with page-cluster 0: one order-0 folio."""
        head = self.mem.alloc_folio(0)
        self.swap.add_to_swap_cache(self.mem, head, slot)
        self.swap_read_folio(head)
        return head

    # =====================================================================================
    # zap (mm/memory.c unmap_page_range / zap_pte_range), shared PTE level
    # =====================================================================================
    def unmap_page_range(self, mm: MM, lo: int, hi: int) -> None:
        """unmap_page_range(): walk [lo, hi); huge PMDs go to zap_huge_pmd or are split first."""
        for r, a, b in regions_of(lo, hi):
            kind = mm.pmd_kind[r]
            if kind == PMD_NONE:
                continue
            if kind in (PMD_HUGE, PMD_SWAP):
                # zap_pmd_range(): is_swap_pmd(*pmd) || pmd_trans_huge(*pmd)
                if b - a == HPAGE_PMD_NR:
                    self.zap_huge_pmd(mm, r)
                    continue
                self.split_huge_pmd(mm, r)
            self.zap_pte_range(mm, a, b)

    def zap_pte_range(self, mm: MM, lo: int, hi: int) -> None:
        """zap_pte_range(): present pages lose a mapping, swap entries put their slot."""
        mem = self.mem
        sl = slice(lo, hi)
        kind = mm.pte_kind[sl]
        pres = (kind == PTE_PRESENT).nonzero()[0] + lo
        swp = (kind == PTE_SWAP).nonzero()[0] + lo
        if pres.size:
            pfns = mm.pte_pfn[pres]
            anon = pfns[pfns != ZERO_PFN]
            if anon.size:
                # zap_present_folio_ptes() (7.3 mm/memory.c:1790): an anon folio's PTEs are
                # cleared without moving their dirty bit to the folio ("We don't need up-to-date
                # accessed/dirty bits"); only a file folio gets folio_mark_dirty() (:1780)
                mem.mapcount[anon] -= 1
                mm.anonpages -= anon.size
                self.folios_put_if_unused(np.unique(mem.head[anon]))
        slots = mm.pte_swp_off[swp].copy()
        mm.clear_ptes(sl)
        if swp.size:
            mm.swapents -= slots.size
            self.swap_put_entries_direct(slots)

    # =====================================================================================
    # fault handling (mm/memory.c), shared PTE level
    # =====================================================================================
    def handle_mm_fault(self, mm: MM, page: int, write: bool, fail_alloc: bool) -> int:
        """handle_mm_fault(): VMA and permission checks, then __handle_mm_fault's PMD dispatch."""
        vma = mm.find_vma(page)
        if vma is None:
            return O.SIGSEGV
        if write and not vma.prot & 2:
            return O.SIGSEGV
        if vma.prot == O.PROT_NONE:
            return O.SIGSEGV
        r = page // HPAGE_PMD_NR
        if mm.pmd_kind[r] == PMD_HUGE and vma.uffd_rwp and mm.pmd_uw[r]:
            # __handle_mm_fault() (7.3 mm/memory.c:6687): pmd_protnone() && vma_is_accessible():
            # userfaultfd_huge_pmd_rwp() -> do_huge_pmd_uffd_rwp(), before any write handling;
            # the access then retries on the resolved PMD (the caller's loop)
            return self.do_huge_pmd_uffd_rwp(mm, vma, r)
        ret = self.handle_huge_pmd_fault(mm, vma, page, write, fail_alloc)
        if ret is not None:
            return ret
        if mm.pmd_kind[r] == PMD_NONE:
            mm.pmd_kind[r] = PMD_TABLE  # __pte_alloc()
        return self.handle_pte_fault(mm, vma, page, write)

    def thp_vma_allowable(self, vma: Vma, r: int) -> bool:
        """thp_vma_allowable_order(PMD_ORDER): enabled=madvise, the aligned 2 MiB inside the VMA."""
        sl = region_slice(r)
        return vma.hugepage and vma.start <= sl.start and sl.stop <= vma.end

    def do_huge_pmd_anonymous_page(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> bool:
        """do_huge_pmd_anonymous_page() (mm/huge_memory.c, unchanged by the series); False = fallback."""
        self.anon_vma_prepare(mm, vma.start)  # vmf_anon_prepare(), before the allocation
        if fail_alloc:
            self.vmstat["thp_fault_fallback"] += 1
            return False
        mem = self.mem
        head = mem.alloc_folio(9)
        mem.entire_mapcount[head] = 1
        mem.anon_exclusive[head:head + HPAGE_PMD_NR] = True
        mm.clear_pmd(r, PMD_HUGE)
        mm.pmd_pfn[r] = head
        # entry = maybe_pmd_mkwrite(pmd_mkdirty(entry), vma): pmd_mkdirty sets soft-dirty on x86
        mm.pmd_write[r] = bool(vma.prot & 2)
        mm.pmd_dirty[r] = mm.pmd_sd[r] = True
        mm.anonpages += HPAGE_PMD_NR
        self.vmstat["thp_fault_alloc"] += 1
        return True

    def do_huge_pmd_wp_page(self, mm: MM, vma: Vma, r: int, page: int) -> bool:
        """do_huge_pmd_wp_page() (mm/huge_memory.c, unchanged); False = split and fall back."""
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        reuse = bool(mem.anon_exclusive[head])
        if not reuse:
            if mem.folio_ref_count(head) > 1 + (HPAGE_PMD_NR if mem.in_swapcache(head) else 0):
                self.split_huge_pmd(mm, r)
                return False
            if mem.in_swapcache(head):
                self.folio_free_swap(head)
            if mem.folio_ref_count(head) != 1:
                self.split_huge_pmd(mm, r)
                return False
            mem.anon_exclusive[head:head + HPAGE_PMD_NR] = True  # folio_move_anon_rmap + SetPageAnonExclusive
        mm.pmd_write[r] = bool(vma.prot & 2)
        mm.pmd_dirty[r] = mm.pmd_sd[r] = True
        return True

    def do_huge_pmd_uffd_rwp(self, mm: MM, vma: Vma, r: int) -> int:
        """do_huge_pmd_uffd_rwp() (7.3 mm/huge_memory.c:2291), async mode (the only one
        modelled: the rig's context has UFFD_FEATURE_RWP_ASYNC, userfaultfd_rwp_async()):
        pmd_modify(orig_pmd, vm_page_prot) (a private mapping's vm_page_prot is not writable),
        pmd_clear_uffd(), pmd_mkyoung(), then pmd_mkwrite() if VM_WRITE and
        can_change_pmd_writable() (anon-exclusive, no soft-dirty write-protect pending; no uffd-wp
        on an RWP VMA). Dirty and soft-dirty are kept (pmd_modify() keeps _PAGE_CHG_MASK)."""
        mm.pmd_uw[r] = False
        head = int(mm.pmd_pfn[r])
        mm.pmd_write[r] = (bool(vma.prot & 2) and bool(self.mem.anon_exclusive[head])
                           and (vma.softdirty or bool(mm.pmd_sd[r])))
        return O.OK

    def do_uffd_rwp(self, mm: MM, vma: Vma, page: int) -> int:
        """do_uffd_rwp() (7.3 mm/memory.c:6260), async mode: pte_modify(orig_pte, vm_page_prot),
        pte_clear_uffd(), pte_mkyoung(), then pte_mkwrite() if vma_wants_manual_pte_write_upgrade()
        (VM_WRITE) and can_change_pte_writable() (7.3 mm/mprotect.c: vm_normal_page() anon and
        PageAnonExclusive(), so never the zero page; no soft-dirty write-protect pending).
        Returns 0: the access retries (the caller's loop), a write on a PTE left read-only
        then takes do_wp_page(). Sync mode (handle_userfault(VM_UFFD_RWP)) is not modelled."""
        mm.pte_uw[page] = False
        pfn = int(mm.pte_pfn[page])
        mm.pte_write[page] = (bool(vma.prot & 2) and pfn != ZERO_PFN
                              and bool(self.mem.anon_exclusive[pfn])
                              and (vma.softdirty or bool(mm.pte_sd[page])))
        return O.OK

    def handle_pte_fault(self, mm: MM, vma: Vma, page: int, write: bool) -> int:
        """handle_pte_fault()."""
        kind = mm.pte_kind[page]
        if kind == PTE_NONE:
            return self.do_anonymous_page(mm, vma, page, write)
        if kind == PTE_SWAP:
            return self.do_swap_page(mm, vma, page, write)
        if vma.uffd_rwp and mm.pte_uw[page]:
            # pte_protnone(orig_pte) && vma_is_accessible(): userfaultfd_pte_rwp() ->
            # do_uffd_rwp() (7.3 mm/memory.c:6566-6571), before the write check
            return self.do_uffd_rwp(mm, vma, page)
        if write and not mm.pte_write[page]:
            return self.do_wp_page(mm, vma, page)
        return O.OK

    def do_anonymous_page(self, mm: MM, vma: Vma, page: int, write: bool) -> int:
        """do_anonymous_page(): the zero page on a read, a new exclusive order-0 folio on a write."""
        if not write:
            mm.pte_kind[page] = PTE_PRESENT
            mm.pte_pfn[page] = ZERO_PFN
            return O.OK
        mem = self.mem
        pfn = mem.alloc_folio(0)
        mem.anon_exclusive[pfn] = True
        mem.mapcount[pfn] = 1
        self._set_present_pte(mm, page, pfn, write=bool(vma.prot & 2), dirty=True, sd=True, uw=False)
        mm.anonpages += 1
        return O.OK

    def _set_present_pte(self, mm: MM, page, pfn, write, dirty, sd, uw) -> None:
        mm.pte_kind[page] = PTE_PRESENT
        mm.pte_pfn[page] = pfn
        mm.pte_write[page] = write
        mm.pte_dirty[page] = dirty
        mm.pte_sd[page] = sd
        mm.pte_uw[page] = uw
        mm.pte_swp_off[page] = -1
        mm.pte_swp_excl[page] = False

    def do_wp_page(self, mm: MM, vma: Vma, page: int) -> int:
        """do_wp_page(): uffd-wp trap, reuse an exclusive page, or copy it (wp_page_copy)."""
        mem = self.mem
        if vma.uffd_wp and mm.pte_uw[page]:
            return O.UFFD_WP_TRAP  # userfaultfd_pte_wp() -> handle_userfault(VM_UFFD_WP)
        pfn = int(mm.pte_pfn[page])
        if pfn != ZERO_PFN:
            head = int(mem.head[pfn])
            if mem.anon_exclusive[pfn] or self.wp_can_reuse_anon_folio(head, pfn):
                mem.anon_exclusive[pfn] = True
                # wp_page_reuse(): maybe_mkwrite(pte_mkdirty(entry))
                mm.pte_write[page] = bool(vma.prot & 2)
                mm.pte_dirty[page] = mm.pte_sd[page] = True
                return O.OK
        return self.wp_page_copy(mm, vma, page)

    def wp_can_reuse_anon_folio(self, head: int, pfn: int) -> bool:
        """wp_can_reuse_anon_folio() / __wp_can_reuse_large_anon_folio()."""
        mem = self.mem
        if mem.nr_pages(head) > 1:
            # __wp_can_reuse_large_anon_folio() (mm/memory.c)
            mapcount = mem.folio_mapcount(head)
            if mapcount <= 1 or self.folio_maybe_mapped_shared(head):
                return False
            if mem.in_swapcache(head):
                # "freeing up the swapcache will fail if some PTEs are still swap entries"
                self.folio_free_swap(head)
            return mapcount == mem.folio_ref_count(head)
        if mem.folio_ref_count(head) > 1 + (1 if mem.in_swapcache(head) else 0):
            return False
        if mem.in_swapcache(head):
            self.folio_free_swap(head)
        return mem.folio_ref_count(head) == 1

    def wp_page_copy(self, mm: MM, vma: Vma, page: int) -> int:
        """wp_page_copy(): a private order-0 copy, mapped writable and dirty."""
        mem = self.mem
        old = int(mm.pte_pfn[page])
        new = mem.alloc_folio(0)
        mem.data[new] = mem.data[old]
        mem.anon_exclusive[new] = True
        mem.mapcount[new] = 1
        if old != ZERO_PFN:
            mem.mapcount[old] -= 1
            self.folio_put_if_unused(int(mem.head[old]))
        else:
            mm.anonpages += 1
        self._set_present_pte(mm, page, new, write=bool(vma.prot & 2), dirty=True, sd=True, uw=False)
        return O.OK

    def do_swap_page(self, mm: MM, vma: Vma, page: int, write: bool) -> int:
        """do_swap_page() (mm/memory.c): swap-in of one PTE, or of a whole large cached folio."""
        mem, sw = self.mem, self.swap
        slot = int(mm.pte_swp_off[page])
        head = sw.cached_head(mem, slot)
        if head < 0:
            # swapin_readahead()/alloc_swap_folio(): mTHP off, page-cluster 0 -> one order-0 folio
            head = self.swapin_order0(slot)
        nr_folio = mem.nr_pages(head)
        fbase = int(mem.swap[head])
        idx = slot - fbase
        start, nr = page, 1
        if nr_folio > 1:
            # "entirely map large folios found in swapcache": folio inside the PMD and the VMA, and
            # swap_pte_batch() finds nr consecutive entries with identical SD/UW/EXCL
            s = page - idx
            if (s % HPAGE_PMD_NR == 0 and vma.start <= s and s + nr_folio <= vma.end
                    and self._swap_pte_batch_ok(mm, s, fbase, nr_folio)):
                start, nr = s, nr_folio
        sl = slice(start, start + nr)
        exclusive = bool(mm.pte_swp_excl[page])
        sd, uw = bool(mm.pte_sd[page]), bool(mm.pte_uw[page])
        slots = mm.pte_swp_off[sl].copy()
        pfns = (head + (slots - fbase)).astype(np.int32)
        # "A page reclaimed while RWP-protected carries the uffd bit on its swap entry. Re-apply
        # PAGE_NONE on swap-in so the first access still traps" (7.3 mm/memory.c:5171-5178):
        # rwp_restore skips the write upgrade (:5189) and the do_wp_page() of a write (:5256);
        # the access retries through do_uffd_rwp()
        rwp_restore = uw and vma.uffd_rwp
        # writable: !KSM && exclusive && VM_WRITE && !userfaultfd_pte_wp && !pte_needs_soft_dirty_wp
        writable = (exclusive and not rwp_restore and bool(vma.prot & 2) and not (vma.uffd_wp and uw)
                    and not (not vma.softdirty and not sd))
        # should_try_to_free_swap() after mapping (Linux 7.3 mm/memory.c): SWP_SYNCHRONOUS_IO, or
        # "we are the exclusive user and this is a write fault" (FAULT_FLAG_WRITE && exclusive;
        # 7.2 tested the refcount and cleared FAULT_FLAG_WRITE when it mapped writable)
        free_cache = sw.sync or (write and exclusive)
        dirty = write and writable
        mm.pte_kind[sl] = PTE_PRESENT
        mm.pte_pfn[sl] = pfns
        mm.pte_write[sl] = writable
        mm.pte_dirty[sl] = dirty
        mm.pte_sd[sl] = sd or dirty  # pte_mkdirty sets soft-dirty on x86
        mm.pte_uw[sl] = uw
        mm.pte_swp_off[sl] = -1
        mm.pte_swp_excl[sl] = False
        mem.mapcount[pfns] += 1
        if exclusive:
            mem.anon_exclusive[pfns] = True  # RMAP_EXCLUSIVE
        mm.anonpages += nr
        mm.swapents -= nr
        sw.put(slots)  # folio_put_swap(): the folio is still cached, so no slot is freed here
        if free_cache:
            self.folio_free_swap(head)
        if write and not writable and not rwp_restore:
            return self.do_wp_page(mm, vma, page)
        return O.OK

    def _swap_pte_batch_ok(self, mm: MM, s: int, fbase: int, nr: int) -> bool:
        sl = slice(s, s + nr)
        if not (mm.pte_kind[sl] == PTE_SWAP).all():
            return False
        if not (mm.pte_swp_off[sl] == np.arange(fbase, fbase + nr)).all():
            return False
        return all(bool((a == a[0]).all()) for a in (mm.pte_sd[sl], mm.pte_uw[sl], mm.pte_swp_excl[sl]))

    # =====================================================================================
    # reclaim (mm/madvise.c, mm/vmscan.c, mm/rmap.c): shared folio-level steps
    # =====================================================================================
    def madvise_cold_or_pageout_pte_range(self, mm: MM, lo: int, hi: int) -> list[int]:
        """The walk MADV_PAGEOUT and MADV_COLD share (7.3 mm/madvise.c:362, `pageout` only
        chooses reclaim_pages() or folio_deactivate() at the end): large folios the range covers
        in part are split, and the folios MADV_PAGEOUT would isolate from [lo, hi) are returned
        (exclusively mapped ones only)."""
        folios: list[int] = []
        for r, a, b in regions_of(lo, hi):
            if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                got = self.madvise_pageout_huge_pmd(mm, r, a, b)
                if got is not None:
                    folios += got
                    continue
            if mm.pmd_kind[r] == PMD_TABLE:
                folios += self._pageout_pte_range(mm, a, b)
        return folios

    def _pageout_present_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> list[int] | None:
        """The pmd_trans_huge() branch: None means the folio was split, go on at PTE level."""
        head = int(mm.pmd_pfn[r])
        if self.folio_maybe_mapped_shared(head):
            return []  # "Do not interfere with other mappings of this folio"
        if b - a != HPAGE_PMD_NR:
            return None if self.split_folio(head) == 0 else []
        return [head]

    def _pageout_pte_range(self, mm: MM, a: int, b: int) -> list[int]:
        mem = self.mem
        out: list[int] = []
        p = a
        while p < b:
            if mm.pte_kind[p] != PTE_PRESENT or mm.pte_pfn[p] == ZERO_PFN:
                p += 1
                continue
            pfn = int(mm.pte_pfn[p])
            head = int(mem.head[pfn])
            nr = mem.nr_pages(head)
            if nr > 1:
                # madvise_folio_pte_batch(); a folio not fully mapped here is split unless it
                # may be mapped shared, which skips the batch and goes on (`continue`, not the
                # end of the walk: mm/madvise.c madvise_cold_or_pageout_pte_range())
                n = self._folio_pte_batch(mm, p, b, head)
                if n < nr:
                    if self.folio_maybe_mapped_shared(head) or self.split_folio(head) != 0:
                        p += n  # skipped, or the split failed: leave it and advance past the batch
                    continue  # re-examine p: the folio is small now
            else:
                n = 1
            # "Do not interfere with other mappings of this folio": fully mapped here, so
            # exclusive iff folio_mapcount(folio) == folio_nr_pages(folio)
            if mem.folio_mapcount(head) == nr:
                out.append(head)
            p += n
        return out

    def _folio_pte_batch(self, mm: MM, p: int, end: int, head: int) -> int:
        """folio_pte_batch(): consecutive PTEs from p mapping consecutive pages of the folio."""
        nr = self.mem.nr_pages(head)
        pfn = int(mm.pte_pfn[p])
        n = min(end - p, head + nr - pfn)
        ok = (mm.pte_kind[p:p + n] == PTE_PRESENT) & (mm.pte_pfn[p:p + n] == np.arange(pfn, pfn + n))
        return leading_run(ok)

    def shrink_folio_list(self, heads: list[int]) -> None:
        """shrink_folio_list() for anonymous folios (reclaim_pages from MADV_PAGEOUT)."""
        mem = self.mem
        queue = list(dict.fromkeys(heads))
        while queue:
            if self._shrink_order0_batch(queue):
                continue
            head = queue.pop(0)
            if mem.head[head] != head or not mem.folio_mapped(head) and not mem.in_swapcache(head):
                continue  # freed or split away meanwhile
            if mem.writeback[head]:
                continue  # folio_test_writeback(): keep it until the write completes
            nr = mem.nr_pages(head)
            if not mem.lazyfree[head] and not mem.in_swapcache(head):
                if nr > 1 and self._partially_mapped(head):
                    # "Split partially mapped folios right away"
                    queue[:0] = self._split_to_list(head)
                    continue
                base = self.swap.alloc_slots(9 if nr > 1 else 0) if self.swap else -1
                if base < 0:
                    if nr == 1:
                        continue  # activate_locked_split
                    # folio_alloc_swap() failed (no device at all too: after swapoff a THP is
                    # still split; 7.3 mm/vmscan.c shrink_folio_list(), found by kernel-check
                    # --generate): split and swap the pages out one by one
                    self.vmstat["thp_swpout_fallback"] += 1
                    queue[:0] = self._split_to_list(head)
                    continue
                self.swap.add_to_swap_cache(mem, head, base)
                mem.dirty[head] = True  # add_to_swap(): folio_mark_dirty()
            if mem.folio_mapped(head):
                self.try_to_unmap(head)
                if mem.head[head] != head or mem.folio_mapped(head):
                    continue  # keep
            if not mem.in_swapcache(head):
                # a clean lazyfree folio was discarded by try_to_unmap: free it
                mem.free_folio(head)
                continue
            if mem.dirty[head]:
                self.swap_writeout(head)
                if mem.writeback[head]:
                    continue  # async device: stays cached under writeback
            # __remove_mapping(): clean and unmapped, leaves the swap cache and is freed
            self.swap.delete_from_swap_cache(mem, head)
            mem.free_folio(head)

    def _shrink_order0_batch(self, queue: list[int]) -> bool:
        """The common run of the loop above in one go: order-0, swap-backed folios not yet in the
        swap cache, each mapped by exactly one PTE of one mm. For them the loop's steps (allocate a
        slot, add to the swap cache, unmap, write out, and on a synchronous device drop them) do
        not interact, so doing each step for all of them gives the same state. False: not such a
        run; the loop takes the next folio itself."""
        mem, sw = self.mem, self.swap
        if sw is None or len(queue) < 2:
            return False
        h = queue[0]  # ok[0] below on scalars: the loop asks at every folio of a run that does not batch
        # zero-filled folios (data 0) go to the zeromap one by one, in swap_writeout()
        if not (mem.head[h] == h and mem.order[h] == 0 and not mem.lazyfree[h] and mem.swap[h] < 0
                and not mem.writeback[h] and mem.mapcount[h] == 1 and mem.data[h]):
            return False
        q = np.array(queue[:HPAGE_PMD_NR], dtype=np.int64)
        ok = ((mem.head[q] == q) & (mem.order[q] == 0) & ~mem.lazyfree[q] & (mem.swap[q] < 0)
              & ~mem.writeback[q] & (mem.mapcount[q] == 1) & (mem.data[q] != 0))
        n = leading_run(ok)
        if n < 2:
            return False
        heads = q[:n]
        owner = None
        for mm in self.mms.values():
            hit = (mm.pte_kind == PTE_PRESENT) & np.isin(mm.pte_pfn, heads)
            if hit.any():
                if owner is not None:
                    return False  # mapped from two mms: take them one by one
                owner, pages = mm, hit.nonzero()[0]
        del queue[:n]
        slots = sw.alloc_order0_batch(n)
        k = slots.size  # past that the device is full: the rest stay (activate_locked)
        if not k:
            return True
        heads = heads[:k]
        sw.cache[slots] = heads
        mem.swap[heads] = slots
        # try_to_unmap_one(): the rmap walk of each folio finds its one PTE
        pages = pages[np.isin(owner.pte_pfn[pages], heads)]
        order = np.argsort(owner.pte_pfn[pages])
        pages = pages[order]
        by_pfn = np.argsort(heads)
        pfns = heads[by_pfn]
        assert (owner.pte_pfn[pages] == pfns).all()
        self._try_to_unmap_ptes_order0(owner, pages, pfns, slots[by_pfn])
        if not self.zswap_enabled:
            self.vmstat["pswpout"] += k
        if sw.sync or self.zswap_enabled:  # zswap_store(): see swap_writeout()
            sw.data[slots] = mem.data[heads]
            sw.zswap[slots] = self.zswap_enabled
            mem.dirty[heads] = False
            sw.delete_order0_from_swap_cache(mem, heads)  # __remove_mapping()
            for h in heads:
                mem.free_folio(int(h))
        else:
            sw.inflight[slots] = mem.data[heads]
            mem.dirty[heads] = False
            mem.writeback[heads] = True
        return True

    def _try_to_unmap_ptes_order0(self, mm: MM, pages, pfns, slots) -> None:
        """_try_to_unmap_ptes() for many order-0 swap-cache folios with one PTE each."""
        self._install_swap_ptes(mm, pages, pfns, slots)

    def _install_swap_ptes(self, mm: MM, pages, pfns, slots) -> None:
        """try_to_unmap_one(), per PTE: dup the slot, swap entry with the page's anon-exclusive
        mark as its exclusive bit; soft-dirty and uffd-wp carry over (pte_swp_mksoft_dirty,
        pte_swp_mkuffd_wp)."""
        mem = self.mem
        self.swap.dup(slots)  # folio_dup_swap()
        excl = mem.anon_exclusive[pfns].copy()
        mem.anon_exclusive[pfns] = False  # folio_try_share_anon_rmap_pte()
        mem.mapcount[pfns] -= 1
        mm.pte_kind[pages] = PTE_SWAP
        mm.pte_pfn[pages] = -1
        mm.pte_swp_off[pages] = slots
        mm.pte_swp_excl[pages] = excl
        mm.pte_write[pages] = False
        mm.pte_dirty[pages] = False
        mm.anonpages -= pages.size
        mm.swapents += pages.size
        self.mmlist_add(mm.pid)

    def _partially_mapped(self, head: int) -> bool:
        """On the deferred split queue as partially mapped (folio_test_partially_mapped())."""
        return bool(self.mem.partially_mapped[head])

    def _split_to_list(self, head: int) -> list[int]:
        """split_folio_to_list(): the surviving order-0 folios, to be reclaimed in this pass."""
        if self.split_folio(head) != 0:
            return []
        mem = self.mem
        return [p for p in range(head, head + HPAGE_PMD_NR) if mem.head[p] == p]

    def swap_writeout(self, head: int) -> None:
        """pageout() -> swap_writeout() (mm/page_io.c): a zero-filled folio only gets the swap
        table's zero mark (no I/O, no PSWPOUT/THP_SWPOUT, never under writeback, so reclaim drops
        it from the swap cache at once even on a disk); otherwise a synchronous device completes
        at once, a disk later.

        With zswap enabled, `if (zswap_store(folio)) goto out_unlock;` (mm/page_io.c:238) comes
        before the device write: zswap_store() (mm/zswap.c:1488) compresses every page of the
        folio, a large one too (an incompressible page is stored as is, zswap_compress()), so
        there is no I/O and no PSWPOUT/THP_SWPOUT, and the folio is clean and not under
        writeback: shrink_folio_list()'s PAGE_SUCCESS case (mm/vmscan.c:1411-1431) drops it from
        the swap cache at once, on a disk as on zram, and a later fault reads order-0 folios
        back (zswap_load(), mm/page_io.c:480). Found by kernel-check --generate (seed 1: 295,
        316, 590, 772): the model had kept a THP in a disk's swap cache and mapped it whole on
        the next fault. zswap's store is taken to succeed (its pool limit, 20% of RAM, is far
        away); which slots it holds is SwapDevice.zswap."""
        mem = self.mem
        nr = mem.nr_pages(head)
        if not mem.data[head:head + nr].any():  # is_folio_zero_filled()
            self.swap.swap_zeromap_folio_set(mem, head)
            return
        if self.zswap_enabled:  # zswap_store(): the copy is zswap's, no device I/O
            self.swap.swap_writeout(mem, head, zswap=True)
            return
        self._swap_writepage(head)

    def _swap_writepage(self, head: int) -> None:
        """__swap_writepage() (mm/page_io.c): the device write, counted by
        count_swpout_vm_event() (PSWPOUT per page, THP_SWPOUT for a PMD-order folio)."""
        mem, sw = self.mem, self.swap
        nr = mem.nr_pages(head)
        self.vmstat["pswpout"] += nr
        if nr == HPAGE_PMD_NR:
            self.vmstat["thp_swpout"] += 1
        if sw.sync:
            sw.swap_writeout(mem, head)
        else:
            sw.start_writeback(mem, head)

    def try_to_unmap(self, head: int) -> None:
        """try_to_unmap(TTU_SPLIT_HUGE_PMD): the rmap walk over every mm mapping the folio."""
        mem = self.mem
        nr = mem.nr_pages(head)
        for mm in list(self.mms.values()):
            if nr == HPAGE_PMD_NR:
                for r in ((mm.pmd_kind == PMD_HUGE) & (mm.pmd_pfn == head)).nonzero()[0]:
                    r = int(r)
                    if not mem.in_swapcache(head):
                        # lazyfree: unmap_huge_pmd_locked() -> __discard_anon_folio_pmd_locked()
                        # (mm/huge_memory.c:3565): a dirty PMD dirties the folio, which stays
                        # dirty after folio_set_swapbacked(), so a later MADV_FREE of a
                        # shared mapping leaves it alone
                        if mm.pmd_dirty[r]:
                            mem.dirty[head] = True
                        if mem.dirty[head]:
                            mem.lazyfree[head] = False  # folio_set_swapbacked(); unmap fails
                            return
                        mm.clear_pmd(r)  # pmdp_huge_clear_flush(); the deposited table is freed
                        mem.entire_mapcount[head] -= 1
                        mm.anonpages -= HPAGE_PMD_NR
                        continue
                    self.try_to_unmap_one_pmd(mm, r, head)
            pages = ((mm.pte_kind == PTE_PRESENT) & (mm.pte_pfn >= head)
                     & (mm.pte_pfn < head + nr)).nonzero()[0]
            if pages.size and not self._try_to_unmap_ptes(mm, pages, head):
                return

    def _try_to_unmap_ptes(self, mm: MM, pages: np.ndarray, head: int) -> bool:
        """try_to_unmap_one(), PTE part: a swap entry per PTE, or discard of a clean lazyfree folio."""
        mem = self.mem
        pfns = mm.pte_pfn[pages]
        if not mem.in_swapcache(head):
            # MADV_FREE'd folio: a PTE dirtied since means the data is live again.
            # try_to_unmap_one() marks the folio dirty from the cleared PTE
            # (mm/rmap.c:2344) before ttu_anon_lazyfree_folio() (:2099) sees it
            # redirtied; the flag stays after folio_set_swapbacked()
            if mm.pte_dirty[pages].any():
                mem.dirty[head] = True
            if mem.dirty[head]:
                mem.lazyfree[head] = False
                return False
            mem.mapcount[pfns] -= 1
            mm.anonpages -= pages.size
            self._clear_pte_list(mm, pages)
            return True
        if mm.pte_dirty[pages].any():
            mem.dirty[head] = True
        self._install_swap_ptes(mm, pages, pfns, mem.swap[pfns])
        return True

    def _clear_pte_list(self, mm: MM, pages: np.ndarray) -> None:
        for a in (mm.pte_write, mm.pte_dirty, mm.pte_sd, mm.pte_uw, mm.pte_swp_excl):
            a[pages] = False
        mm.pte_kind[pages] = PTE_NONE
        mm.pte_pfn[pages] = -1
        mm.pte_swp_off[pages] = -1

    def mmlist_add(self, pid: int, after: int | None = None) -> None:
        """list_add(&mm->mmlist, ...): the order swapoff walks mms in."""
        if pid in self.mmlist:
            return
        if after is not None and after in self.mmlist:
            self.mmlist.insert(self.mmlist.index(after) + 1, pid)
        else:
            self.mmlist.append(pid)

    # =====================================================================================
    # folio split (mm/huge_memory.c split_folio, debugfs split_huge_pages), shared
    # =====================================================================================
    def split_folio(self, head: int, vma_locked: bool = False) -> int:
        """split_folio() to order 0: PMD mappings become PTE mappings first (present PMDs only:
        page_vma_mapped_walk() never visits a PMD swap entry). `vma_locked`: every VMA mapping
        it is VM_LOCKED (evict's reclaim), so no subpage goes to the zero page."""
        mem = self.mem
        if mem.nr_pages(head) == 1:
            return 0
        if mem.writeback[head]:
            return EBUSY  # folio_check_splittable() (mm/huge_memory.c:3955)
        if not mem.folio_mapped(head):
            # __folio_split(): `anon_vma = folio_get_anon_vma(folio); if (!anon_vma) return
            # -EBUSY` (mm/huge_memory.c:4197), and folio_get_anon_vma() returns NULL for a folio
            # that is not mapped (mm/rmap.c:602): an unmapped swap-cache THP stays whole. Found
            # by kernel-check --generate (seed 1: 49, 673, 717): debugfs split_huge_pages had
            # split one in the model, so the next fault mapped one page, not the whole folio
            return EBUSY
        for mm in self.mms.values():
            for r in ((mm.pmd_kind == PMD_HUGE) & (mm.pmd_pfn == head)).nonzero()[0]:
                # unmap_folio(): try_to_migrate(TTU_SPLIT_HUGE_PMD) -> a freeze split
                self._split_present_huge_pmd(mm, int(r), freeze=True)
            # try_to_migrate_one() (7.3 mm/rmap.c:2650): `if (pte_dirty(pteval))
            # folio_mark_dirty(folio)` for every PTE it replaces by a migration entry, so a
            # dirty PTE makes every piece dirty (kernel-check --generate seed 1, sequence 144:
            # the split-off pieces of a swap-cache THP were written out again)
            if not mem.dirty[head] and (mm.pte_dirty & (mm.pte_kind == PTE_PRESENT)
                                        & (mm.pte_pfn >= head)
                                        & (mm.pte_pfn < head + HPAGE_PMD_NR)).any():
                mem.dirty[head] = True
        mem.split_folio_to_order0(head)
        if not vma_locked:
            self.remap_unused_to_zeropage(head)
        # free_folio_and_swap_cache() on every new folio but the locked one (@lock_at, the head
        # here): an unmapped one leaves the swap cache if folio_free_swap() can drop it (no slot
        # referenced), then the split's reference goes and it is freed. The head keeps its swap
        # cache; the caller's folio_put() frees it only if it is in neither.
        for pfn in range(head, head + HPAGE_PMD_NR):
            if mem.mapcount[pfn]:
                continue
            if pfn != head and mem.swap[pfn] >= 0:
                self.folio_free_swap(pfn)
            if mem.swap[pfn] < 0:
                mem.free_folio(pfn)
        return 0

    def remap_unused_to_zeropage(self, head: int) -> None:
        """remap_page(TTU_USE_SHARED_ZEROPAGE) after a successful anon split (__folio_split(),
        mm/huge_memory.c): remove_migration_pte() -> try_to_map_unused_to_zeropage()
        (mm/migrate.c) maps every zero-filled subpage to the shared zero page instead, keeping
        the entry's soft-dirty and uffd-wp bits (pte_mksoft_dirty, pte_mkuffd; not writable, not
        dirty), and dec_mm_counter(MM_ANONPAGES). No mlock, VM_LOCKED or KSM in the model, so
        the only condition left is pages_identical(page, ZERO_PAGE(0)): here contents 0."""
        mem = self.mem
        zero = head + (mem.data[head:head + HPAGE_PMD_NR] == 0).nonzero()[0]
        zero = zero[mem.mapcount[zero] > 0]
        if not zero.size:
            return
        for mm in self.mms.values():
            pages = ((mm.pte_kind == PTE_PRESENT) & np.isin(mm.pte_pfn, zero)).nonzero()[0]
            if not pages.size:
                continue
            mem.mapcount[mm.pte_pfn[pages]] -= 1
            mm.pte_pfn[pages] = ZERO_PFN
            mm.pte_write[pages] = False
            mm.pte_dirty[pages] = False
            mm.anonpages -= pages.size
        mem.anon_exclusive[zero] = False

    def _split_present_huge_pmd(self, mm: MM, r: int, freeze: bool = False) -> None:
        """__split_huge_pmd_locked() (mm/huge_memory.c), present anon branch (unchanged by the
        series).

        Without `freeze` the PTEs are built directly: `if (dirty) entry = pte_mkdirty(entry)` with
        the comment "this may set soft-dirty too on some archs", and on x86 pte_mkdirty() sets
        _PAGE_DIRTY | _PAGE_SOFT_DIRTY (arch/x86/include/asm/pgtable.h), so a dirty PMD gives 512
        soft-dirty PTEs even after clear_refs cleared the PMD's soft-dirty bit (clear_refs keeps
        pmd_dirty). This is every split but the folio split's: reclaim's TTU_SPLIT_HUGE_PMD,
        partial zap/mprotect/MADV_FREE, VMA splits, wp_huge_pmd's fallback, UFFDIO_MOVE.
        With `freeze` (split_folio's unmap_folio(), via migration entries) remove_migration_pte()
        (mm/migrate.c) makes the PTE dirty from the entry but then sets soft-dirty only from the
        migration entry's own bit (pte_clear_soft_dirty() otherwise): the PMD's soft-dirty bit."""
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        sl = region_slice(r)
        mm.pte_kind[sl] = PTE_PRESENT
        mm.pte_pfn[sl] = np.arange(head, head + HPAGE_PMD_NR, dtype=np.int32)
        mm.pte_write[sl] = mm.pmd_write[r]
        mm.pte_dirty[sl] = mm.pmd_dirty[r]
        mm.pte_sd[sl] = mm.pmd_sd[r] or (mm.pmd_dirty[r] and not freeze)
        mm.pte_uw[sl] = mm.pmd_uw[r]
        mm.pte_swp_off[sl] = -1
        mm.pte_swp_excl[sl] = False
        if mm.pmd_dirty[r]:
            mem.dirty[head] = True
        mem.mapcount[head:head + HPAGE_PMD_NR] += 1
        mem.entire_mapcount[head] -= 1
        mm.clear_pmd(r, PMD_TABLE)
        self.vmstat["thp_split_pmd"] += 1

    def split_huge_pmd(self, mm: MM, r: int) -> None:
        """__split_huge_pmd(): take the lock, then the model's __split_huge_pmd_locked()
        (Python would mangle the kernel's leading underscores, so the methods drop them)."""
        if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
            self.split_huge_pmd_locked(mm, r)

    # =====================================================================================
    # fork (kernel/fork.c dup_mmap, mm/memory.c copy_page_range), shared PTE level
    # =====================================================================================
    def copy_page_range(self, dst: MM, src: MM, vma: Vma, dst_vma: Vma) -> None:
        for r, a, b in regions_of(vma.start, vma.end):
            kind = src.pmd_kind[r]
            if kind in (PMD_HUGE, PMD_SWAP):
                self.copy_huge_pmd(dst, src, r, dst_vma)
            elif kind == PMD_TABLE:
                if dst.pmd_kind[r] == PMD_NONE:
                    dst.pmd_kind[r] = PMD_TABLE
                self.copy_pte_range(dst, src, a, b, dst_vma)

    def copy_pte_range(self, dst: MM, src: MM, a: int, b: int, dst_vma: Vma) -> None:
        """copy_pte_range(): copy_nonpresent_pte() for swap entries, copy_present_ptes() else."""
        mem = self.mem
        sl = slice(a, b)
        kind = src.pte_kind[sl]
        swp = (kind == PTE_SWAP).nonzero()[0] + a
        pres = (kind == PTE_PRESENT).nonzero()[0] + a
        for arr in ("pte_kind", "pte_pfn", "pte_dirty", "pte_sd", "pte_swp_off"):
            getattr(dst, arr)[swp] = getattr(src, arr)[swp]
            getattr(dst, arr)[pres] = getattr(src, arr)[pres]
        # the uffd bit survives only if userfaultfd_protected(dst_vma) (no UFFD_FEATURE_EVENT_FORK:
        # never). An RWP-protected PTE is normalised for the child: pte_modify(pte,
        # dst_vma->vm_page_prot), pte_clear_uffd() (__copy_present_ptes(), 7.3 mm/memory.c:1184);
        # it was not writable (PAGE_NONE), so the parent's stays PROT_NONE and the child's is
        # read-only, as every COW-copied PTE is here. A swap entry: pte_swp_clear_uffd() (:1104)
        dst.pte_uw[swp] = src.pte_uw[swp] & dst_vma.uffd_protected
        dst.pte_uw[pres] = src.pte_uw[pres] & dst_vma.uffd_protected
        if swp.size:
            self.swap.dup(src.pte_swp_off[swp])  # swap_dup_entry_direct()
            src.pte_swp_excl[swp] = False  # "Mark the swap entry as shared"
            dst.pte_swp_excl[swp] = False
            dst.swapents += swp.size
            self.mmlist_add(dst.pid, after=src.pid)
        if pres.size:
            pfns = src.pte_pfn[pres]
            anon = pfns != ZERO_PFN
            apfns = pfns[anon]
            mem.anon_exclusive[apfns] = False  # folio_try_dup_anon_rmap_ptes()
            mem.mapcount[apfns] += 1
            src.pte_write[pres] = False  # ptep_set_wrprotect() on a COW mapping
            dst.pte_write[pres] = False
            dst.anonpages += int(anon.sum())

    def _zap_present_huge_pmd(self, mm: MM, r: int) -> None:
        """zap_huge_pmd(), present branch (unchanged): the deposited table is freed with the PMD."""
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        if mm.pmd_dirty[r]:
            mem.dirty[head] = True
        mem.entire_mapcount[head] -= 1
        mm.anonpages -= HPAGE_PMD_NR
        mm.clear_pmd(r)
        self.folio_put_if_unused(head)

    def _copy_present_huge_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        """copy_huge_pmd(), present branch (unchanged by the series)."""
        mem = self.mem
        head = int(src.pmd_pfn[r])
        mem.anon_exclusive[head:head + HPAGE_PMD_NR] = False  # folio_try_dup_anon_rmap_pmd()
        mem.entire_mapcount[head] += 1
        src.pmd_write[r] = False  # pmdp_set_wrprotect()
        dst.clear_pmd(r, PMD_HUGE)
        dst.pmd_pfn[r] = head
        dst.pmd_dirty[r] = src.pmd_dirty[r]
        dst.pmd_sd[r] = src.pmd_sd[r]
        # copy_huge_pmd() (7.3 mm/huge_memory.c:2041): not userfaultfd_protected(dst_vma): an RWP
        # marker is pmd_modify()'d to the child's vm_page_prot and the uffd bit cleared
        dst.pmd_uw[r] = src.pmd_uw[r] and dst_vma.uffd_protected
        dst.anonpages += HPAGE_PMD_NR

    # =====================================================================================
    # change_protection (mm/mprotect.c), shared PTE level
    # =====================================================================================
    def change_protection(self, mm: MM, vma: Vma, lo: int, hi: int, mode: str) -> None:
        """change_protection(); mode is "prot", "uffd_wp" (MM_CP_UFFD_WP), "uffd_wp_resolve",
        "uffd_rwp" (MM_CP_UFFD_RWP: newprot = PAGE_NONE, 7.3 mm/mprotect.c:716) or
        "uffd_rwp_resolve" (MM_CP_UFFD_RWP_RESOLVE with MM_CP_TRY_CHANGE_WRITABLE on a VM_WRITE
        VMA, mrwprotect_range(), mm/userfaultfd.c:1227)."""
        for r, a, b in regions_of(lo, hi):
            if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                if b - a == HPAGE_PMD_NR:
                    self.change_huge_pmd(mm, vma, r, mode)
                    continue
                self.split_huge_pmd(mm, r)
            if mm.pmd_kind[r] == PMD_TABLE:
                self.change_pte_range(mm, vma, a, b, mode)

    def change_pte_range(self, mm: MM, vma: Vma, a: int, b: int, mode: str) -> None:
        """change_pte_range() (7.3 mm/mprotect.c:331) on the PTEs of [a, b) in one table."""
        mem = self.mem
        sl = slice(a, b)
        kind = mm.pte_kind[sl]
        pres = (kind == PTE_PRESENT).nonzero()[0] + a
        swp = (kind == PTE_SWAP).nonzero()[0] + a
        self._merge_batched_dirty(mm, a, b)
        # uffd_prot (MM_CP_UFFD_WP | MM_CP_UFFD_RWP) sets the uffd bit on present and swap PTEs,
        # uffd_prot_resolve clears it (change_present_ptes() :294, change_softleaf_pte() :269);
        # a none PTE of an anonymous VMA gets no marker for either
        if mode in UFFD_PROT_MODES:
            mm.pte_uw[pres] = True
            mm.pte_uw[swp] = True
        elif mode in UFFD_RESOLVE_MODES:
            mm.pte_uw[pres] = False
            mm.pte_uw[swp] = False
        # pte_modify() to the VMA's COW protection, then MM_CP_TRY_CHANGE_WRITABLE when VM_WRITE
        pfns = mm.pte_pfn[pres]
        writable = np.zeros(pres.size, dtype=bool)
        if vma.prot & 2 and mode not in UFFD_PROT_MODES:
            # can_change_pte_writable(): anon-exclusive, no soft-dirty tracking pending, no uffd-wp
            writable = ((pfns != ZERO_PFN) & mem.anon_exclusive[np.maximum(pfns, 0)]
                        & (vma.softdirty | mm.pte_sd[pres]) & ~(mm.pte_uw[pres] & vma.uffd_wp))
            writable |= mm.pte_write[pres] & (mode != "prot")
        if vma.uffd_rwp:
            # "The uffd bit on a VM_UFFD_RWP VMA carries PROT_NONE semantics ... restore
            # PAGE_NONE" (7.3 mm/mprotect.c:300-307), and can_change_pte_writable() refuses a
            # protnone PTE: an RWP-protected PTE stays unwritable whatever the new protection
            writable &= ~mm.pte_uw[pres]
        mm.pte_write[pres] = writable

    def _evict_split_partially_mapped(self) -> None:
        """Reclaim during evict splits every mapped large folio on the deferred split queue as
        partially mapped (queue_partially_mapped()), in the swap cache or not. memcg reclaim
        runs the deferred-split shrinker after each LRU pass (shrink_node_memcgs() ->
        shrink_slab(), 7.3 mm/vmscan.c:6222; deferred_split_scan(), mm/huge_memory.c:4656,
        splits every folio_test_partially_mapped() one it can), and once memory.reclaim has
        run out of LRU pages it reaches priority 0, where the shrinker scans a queue of one.
        Outside the swap cache shrink_folio_list()'s "Split partially mapped folios right
        away" (mm/vmscan.c:1272) gets there first. The mlock pass leaves a partly mapped folio
        evictable: mlock_pte_range() (mm/mlock.c:350) mlocks a large folio only where one VMA
        maps all of it (allow_mlock_munlock(), :319). Its VMAs are VM_LOCKED then, so
        try_to_map_unused_to_zeropage() (mm/migrate.c:313) maps no zero-filled subpage to the
        zero page, and the mapped pieces stay (try_to_unmap_one() aborts on VM_LOCKED).
        Unmapped pieces outside the swap cache, or whose slot nobody references, are freed
        without a write (real kernel: pswpout +0,
        corpus/realkernel/linux73-evict_splits_partially_mapped_thp); the others are left to
        op_evict()'s writeout. Found by kernel-check --generate seed 1, sequences 493, 579,
        625, 636, 772, 866 (a later split_huge_pages mapped the zero page in the model only)
        and 144 (a swap-cache THP partly mapped again: the kernel wrote 343 pieces out)."""
        mem = self.mem
        for head in mem.live_folios():
            head = int(head)
            if mem.head[head] != head or mem.nr_pages(head) == 1 or mem.writeback[head] \
                    or not mem.folio_mapped(head) or not self._partially_mapped(head):
                continue
            self.split_folio(head, vma_locked=True)

    def _merge_batched_dirty(self, mm: MM, a: int, b: int) -> None:
        """change_present_ptes() works on a batch of PTEs mapping consecutive pages of one
        large folio (mprotect_folio_pte_batch(), :358: FPB_RESPECT_SOFT_DIRTY |
        FPB_RESPECT_WRITE, so the batch has one soft-dirty, write and uffd bit; dirty may
        differ). modify_prot_start_ptes() (include/linux/pgtable.h:1669) gathers the batch into
        its first PTE with `if (pte_dirty(tmp_pte)) pte = pte_mkdirty(pte)` for every later
        one, and modify_prot_commit_ptes() writes that PTE to the whole batch. On x86
        pte_mkdirty() sets _PAGE_SOFT_DIRTY too (arch/x86/include/asm/pgtable.h:445): a batch
        with a dirty PTE after its first becomes dirty and soft-dirty throughout, one whose
        only dirty PTE is the first becomes dirty throughout and keeps its soft-dirty bit
        (kernel-check --generate seed 1, sequence 915: UFFDIO_WRITEPROTECT after clear_refs
        made a PTE-mapped THP soft-dirty again)."""
        mem = self.mem
        p = a
        while p < b:
            if mm.pte_kind[p] != PTE_PRESENT or mm.pte_pfn[p] == ZERO_PFN:
                p += 1
                continue
            head = int(mem.head[int(mm.pte_pfn[p])])
            if mem.nr_pages(head) == 1:
                p += 1
                continue
            n = self._folio_pte_batch(mm, p, b, head)
            same = ((mm.pte_sd[p:p + n] == mm.pte_sd[p]) & (mm.pte_write[p:p + n] == mm.pte_write[p])
                    & (mm.pte_uw[p:p + n] == mm.pte_uw[p]))
            n = leading_run(same)
            batch = slice(p, p + n)
            if mm.pte_dirty[p + 1:p + n].any():
                mm.pte_sd[batch] = True
            mm.pte_dirty[batch] = mm.pte_dirty[batch].any()
            p += n

    def _change_present_huge_pmd(self, mm: MM, vma: Vma, r: int, mode: str) -> None:
        """change_huge_pmd(), present branch (unchanged by the series)."""
        head = int(mm.pmd_pfn[r])
        if mode in UFFD_PROT_MODES:
            mm.pmd_uw[r] = True
        elif mode in UFFD_RESOLVE_MODES:
            mm.pmd_uw[r] = False
        writable = False
        if vma.prot & 2 and mode not in UFFD_PROT_MODES:
            writable = (bool(self.mem.anon_exclusive[head]) and (vma.softdirty or bool(mm.pmd_sd[r]))
                        and not (mm.pmd_uw[r] and vma.uffd_wp))
            writable = writable or (bool(mm.pmd_write[r]) and mode != "prot")
        if vma.uffd_rwp and mm.pmd_uw[r]:
            # "See change_pte_range(): preserve RWP protection across mprotect()" (7.3
            # mm/huge_memory.c:2816): pmd_modify(entry, PAGE_NONE), never writable
            writable = False
        mm.pmd_write[r] = writable

    # =====================================================================================
    # MADV_FREE (mm/madvise.c madvise_free_pte_range), shared PTE level
    # =====================================================================================
    def madvise_free_single_vma(self, mm: MM, lo: int, hi: int) -> None:
        for r, a, b in regions_of(lo, hi):
            if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                if self.madvise_free_huge_pmd(mm, r, a, b):
                    continue
            if mm.pmd_kind[r] == PMD_TABLE:
                self.madvise_free_pte_range(mm, a, b)

    def _madvise_free_present_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        """madvise_free_huge_pmd(), present branch; False: split, go on at PTE level."""
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        if self.folio_maybe_mapped_shared(head):
            return True  # skipped, and pte_offset_map() on the huge PMD finds nothing either
        if b - a != HPAGE_PMD_NR:
            return self.split_folio(head) != 0
        mem.dirty[head] = False
        mm.pmd_dirty[r] = False
        self.folio_mark_lazyfree(head)
        return True

    def folio_mark_lazyfree(self, head: int) -> None:
        """folio_mark_lazyfree(): only a swap-backed folio outside the swap cache."""
        if not self.mem.in_swapcache(head):
            self.mem.lazyfree[head] = True

    def madvise_free_pte_range(self, mm: MM, a: int, b: int) -> None:
        mem = self.mem
        swp = (mm.pte_kind[a:b] == PTE_SWAP).nonzero()[0] + a
        if swp.size:
            slots = mm.pte_swp_off[swp].copy()
            self._clear_pte_list(mm, swp)
            mm.swapents -= swp.size
            self.swap_put_entries_direct(slots)
        p = a
        while p < b:
            if mm.pte_kind[p] != PTE_PRESENT or mm.pte_pfn[p] == ZERO_PFN:
                p += 1
                continue
            pfn = int(mm.pte_pfn[p])
            head = int(mem.head[pfn])
            nr = mem.nr_pages(head)
            if nr > 1:
                # as in MADV_PAGEOUT: a partly mapped folio that may be mapped shared is skipped
                # batch by batch (`continue`, mm/madvise.c madvise_free_pte_range())
                n = self._folio_pte_batch(mm, p, b, head)
                if n < nr:
                    if self.folio_maybe_mapped_shared(head) or self.split_folio(head) != 0:
                        p += n
                    continue
            else:
                n = 1
            if mem.in_swapcache(head) or mem.dirty[head]:
                if mem.folio_mapcount(head) != nr:
                    p += n
                    continue
                if mem.in_swapcache(head) and not self.folio_free_swap(head):
                    p += n
                    continue
                mem.dirty[head] = False
            mm.pte_dirty[p:p + n] = False
            self.folio_mark_lazyfree(head)
            p += n

    # =====================================================================================
    # mremap (mm/mremap.c move_page_tables), shared PTE level
    # =====================================================================================
    def move_page_tables(self, mm: MM, old: int, new: int, n: int, clear_uw: bool) -> None:
        end = old + n
        while old < end:
            extent = min(end, (old // HPAGE_PMD_NR + 1) * HPAGE_PMD_NR) - old
            extent = min(extent, (new // HPAGE_PMD_NR + 1) * HPAGE_PMD_NR - new)
            ro, rn = old // HPAGE_PMD_NR, new // HPAGE_PMD_NR
            kind = mm.pmd_kind[ro]
            if kind in (PMD_HUGE, PMD_SWAP):
                if extent == HPAGE_PMD_NR and mm.pmd_kind[rn] == PMD_NONE:
                    self.move_huge_pmd(mm, ro, rn, clear_uw)
                    old, new = old + extent, new + extent
                    continue
                self.split_huge_pmd(mm, ro)
            elif kind == PMD_NONE:
                old, new = old + extent, new + extent
                continue
            elif extent == HPAGE_PMD_NR and mm.pmd_kind[rn] == PMD_NONE and not clear_uw:
                self.move_normal_pmd(mm, ro, rn)
                old, new = old + extent, new + extent
                continue
            if mm.pmd_kind[rn] == PMD_NONE:
                mm.pmd_kind[rn] = PMD_TABLE
            self.move_ptes(mm, old, new, extent, clear_uw)
            old, new = old + extent, new + extent

    def move_normal_pmd(self, mm: MM, ro: int, rn: int) -> None:
        """move_normal_pmd(): the whole PTE table moves; entries keep every bit (no soft-dirty)."""
        so, sn = region_slice(ro), region_slice(rn)
        for name in PTE_FIELDS:
            arr = getattr(mm, name)
            arr[sn] = arr[so]
        mm.clear_ptes(so)
        mm.pmd_kind[rn] = PMD_TABLE
        mm.clear_pmd(ro)

    def move_ptes(self, mm: MM, old: int, new: int, n: int, clear_uw: bool) -> None:
        """move_ptes(): every moved entry gets soft-dirty (move_soft_dirty_pte)."""
        so, sn = slice(old, old + n), slice(new, new + n)
        moved = mm.pte_kind[so] != PTE_NONE
        for name in PTE_FIELDS:
            arr = getattr(mm, name)
            arr[sn] = np.where(moved, arr[so], arr[sn])
        tgt = moved.nonzero()[0] + new
        mm.pte_sd[tgt] = True
        if clear_uw:
            # need_clear_uffd_wp (7.3 mm/mremap.c:295-312): an RWP-protected present PTE is also
            # pte_modify()'d to vm_page_prot (accessible, not writable: it was not writable)
            mm.pte_uw[tgt] = False
        mm.clear_ptes(so)

    def _move_present_huge_pmd(self, mm: MM, ro: int, rn: int, clear_uw: bool) -> None:
        """move_huge_pmd(), present branch: move_soft_dirty_pmd() sets soft-dirty."""
        for name in PMD_FIELDS:
            arr = getattr(mm, name)
            arr[rn] = arr[ro]
        mm.clear_pmd(ro)
        mm.pmd_sd[rn] = True
        if clear_uw:
            mm.pmd_uw[rn] = False

    # =====================================================================================
    # swapoff (mm/swapfile.c try_to_unuse), shared PTE level
    # =====================================================================================
    def unuse_pte_range(self, mm: MM, a: int, b: int) -> None:
        """unuse_pte_range(): every swap PTE of the range, in address order. Done as one batch:
        each PTE has its own slot (one mm never references a slot twice), so reading the missing
        slots, mapping every page and then trying folio_free_swap() once per folio ends in the
        state the kernel's page-by-page loop reaches."""
        mem, sw = self.mem, self.swap
        pages = (mm.pte_kind[a:b] == PTE_SWAP).nonzero()[0] + a
        if not pages.size:
            return
        slots = mm.pte_swp_off[pages].copy()
        missing = slots[sw.cache[slots] < 0]
        if missing.size:
            # read_swap_cache_async(): an order-0 folio per slot nobody has cached
            pfns = mem.alloc_order0_batch(missing.size)
            sw.cache[missing] = pfns
            mem.swap[pfns] = missing
            mem.data[pfns] = sw.data[missing]  # zero-marked slots hold 0 (no I/O, no PSWPIN)
            self.vmstat["pswpin"] += int((~sw.zero[missing]).sum())
        pfns = sw.cache[slots].copy()
        heads = np.unique(mem.head[pfns])
        for h in heads[mem.writeback[heads]]:
            sw.end_writeback(mem, int(h))  # folio_wait_writeback()
        # unuse_pte(): old and read-only, soft-dirty and uffd-wp kept, RMAP_EXCLUSIVE if exclusive;
        # an RWP marker swaps in PAGE_NONE (7.3 mm/swapfile.c:2515-2517 "See do_swap_page():
        # restore PAGE_NONE for RWP"): read-only with pte_uw here, so it still traps
        excl = mm.pte_swp_excl[pages].copy()
        mm.pte_kind[pages] = PTE_PRESENT
        mm.pte_pfn[pages] = pfns
        mm.pte_write[pages] = False
        mm.pte_dirty[pages] = False
        mm.pte_swp_off[pages] = -1
        mm.pte_swp_excl[pages] = False
        mem.mapcount[pfns] += 1
        mem.anon_exclusive[pfns[excl]] = True
        mm.swapents -= pages.size
        mm.anonpages += pages.size
        sw.put(slots)
        for h in heads:
            self.folio_free_swap(int(h))

    # =====================================================================================
    # clear_refs (fs/proc/task_mmu.c), shared PTE level
    # =====================================================================================
    def clear_soft_dirty_ptes(self, mm: MM, a: int, b: int) -> None:
        """clear_soft_dirty(): present -> write-protect + clear SD; swap -> clear swp SD."""
        sl = slice(a, b)
        mm.pte_sd[sl] = False
        mm.pte_write[sl] &= mm.pte_kind[sl] != PTE_PRESENT

    def _clear_soft_dirty_present_pmd(self, mm: MM, r: int) -> None:
        mm.pmd_sd[r] = False
        mm.pmd_write[r] = False

    # =====================================================================================
    # UFFDIO_MOVE (mm/userfaultfd.c move_pages), shared PTE level
    # =====================================================================================
    def move_pages_pte(self, mm: MM, src: int, dst: int, dst_vma: Vma) -> int:
        mem = self.mem
        if mm.pte_kind[dst] != PTE_NONE:
            return EEXIST
        kind = mm.pte_kind[src]
        if kind == PTE_NONE:
            return ENOENT
        if kind == PTE_SWAP:
            if not mm.pte_swp_excl[src]:
                return EBUSY
            head = self.swap.cached_head(mem, int(mm.pte_swp_off[src]))
            if head >= 0 and mem.nr_pages(head) > 1:
                return EBUSY  # "We don't support large folio moves currently"
            self._move_pte(mm, src, dst)
            mm.pte_sd[dst] = True  # pte_swp_mksoft_dirty(); uffd-wp and exclusive stay
            if dst_vma.uffd_rwp:
                mm.pte_uw[dst] = True  # "Re-arm RWP on the moved swap entry" (7.3 :1452)
            return O.OK
        pfn = int(mm.pte_pfn[src])
        if pfn == ZERO_PFN:
            # move_zeropage_pte() (mm/userfaultfd.c): a fresh zero-page PTE at dst, made from
            # dst_vma->vm_page_prot: no soft-dirty, no uffd-wp (no RWP here), read-only
            self._move_pte(mm, src, dst)
            mm.pte_sd[dst] = mm.pte_uw[dst] = mm.pte_write[dst] = mm.pte_dirty[dst] = False
            # "Re-arm RWP on the moved PTE if dst_vma is RWP-registered" (7.3 :1482): PAGE_NONE
            mm.pte_uw[dst] = dst_vma.uffd_rwp
            return O.OK
        head = int(mem.head[pfn])
        # move_pages_ptes(): `!PageAnonExclusive(&folio->page)`, the folio's first page
        if not mem.anon_exclusive[head]:
            return EBUSY
        if mem.nr_pages(head) > 1:
            err = self.split_folio(head)
            if err:
                return err
            # -EAGAIN: the caller retries on the now small folio (which may be the zero page
            # if the subpage was zero-filled: remap_unused_to_zeropage())
            return self.move_pages_pte(mm, src, dst, dst_vma)
        # move_present_ptes(): a fresh dst PTE, soft-dirty, dirty as the source, writable, no uffd-wp
        dirty = bool(mm.pte_dirty[src])
        self._move_pte(mm, src, dst)
        mm.pte_sd[dst] = True
        mm.pte_dirty[dst] = dirty
        mm.pte_write[dst] = bool(dst_vma.prot & 2)
        mm.pte_uw[dst] = False
        if dst_vma.uffd_rwp:
            # "Re-arm RWP on the moved PTE" (7.3 mm/userfaultfd.c:1365): pte_modify(PAGE_NONE),
            # pte_mkuffd()
            mm.pte_uw[dst] = True
            mm.pte_write[dst] = False
        return O.OK

    def _move_pte(self, mm: MM, src: int, dst: int) -> None:
        for name in PTE_FIELDS:
            arr = getattr(mm, name)
            arr[dst] = arr[src]
        mm.clear_ptes(slice(src, src + 1))

    def _move_present_huge_pmd_uffd(self, mm: MM, rs: int, rd: int, dst_vma: Vma) -> int:
        """move_pages_huge_pmd(), present THP (unchanged by the series)."""
        head = int(mm.pmd_pfn[rs])
        if not self.mem.anon_exclusive[head]:
            return EBUSY
        for name in PMD_FIELDS:
            arr = getattr(mm, name)
            arr[rd] = arr[rs]
        mm.clear_pmd(rs)
        # _dst_pmd = pmd_mkwrite(pmd_mkdirty(folio_mk_pmd(...))): soft-dirty, no uffd-wp
        mm.pmd_write[rd] = bool(dst_vma.prot & 2)
        mm.pmd_dirty[rd] = mm.pmd_sd[rd] = True
        mm.pmd_uw[rd] = False
        if dst_vma.uffd_rwp:
            # "Re-arm RWP on the moved PMD if dst_vma is RWP-registered" (7.3
            # mm/huge_memory.c:2988): pmd_modify(PAGE_NONE), pmd_mkuffd()
            mm.pmd_uw[rd] = True
            mm.pmd_write[rd] = False
        return O.OK

    # =====================================================================================
    # op entry points: syscall argument checks and error returns (shared)
    # =====================================================================================
    @staticmethod
    def _range(op) -> tuple[int, int]:
        return op.start, op.start + op.npages

    def op_mmap(self, op: O.Mmap) -> int:
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES:
            return ENOMEM  # beyond TASK_SIZE
        if mm.vmas_in(lo, hi):
            return EEXIST  # MAP_FIXED_NOREPLACE
        # no anon_vma until the first fault; vm_pgoff = addr >> PAGE_SHIFT for anonymous memory
        # (__mmap_region(), mm/vma.c:2868 anon_pgoff). The mapping is made without VM_HUGEPAGE:
        # vma_merge_new_range() (mm/vma.c:2899) may expand a plain neighbour over it, and
        # __mmap_complete() then sets VM_SOFTDIRTY on the whole merged VMA ("New (or expanded)
        # vma always get soft dirty status", mm/vma.c:2758-2765), the neighbour's old part too.
        mm.vmas.append(Vma(lo, hi, pgoff=lo))
        self.vma_merge_range(mm, lo, hi)
        if op.hugepage:
            # then madvise(MADV_HUGEPAGE): hugepage_madvise() (mm/khugepaged.c:450) sets
            # VM_HUGEPAGE, madvise_update_vma() -> vma_modify_flags() (mm/madvise.c:170,
            # mm/vma.c:1788) splits the range off the merged VMA again (both parts keep its
            # VM_SOFTDIRTY and anon_vma) or merges it with a VM_HUGEPAGE neighbour (sticky flags,
            # vma_merge_existing_range(), mm/vma.c:892-1073). Found by kernel-check --generate
            # (gen-s1-25: the neighbour of a hugepage=1 mmap was soft-dirty after clear_refs).
            self.set_vma_flags(mm, lo, hi, hugepage=True)
            self.vma_merge_range(mm, lo, hi)
        return O.OK

    def op_munmap(self, op: O.Munmap) -> int:
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES:
            return EINVAL
        self.do_vmi_munmap(mm, lo, hi)
        return O.OK

    def _accessible_run(self, mm: MM, p: int, hi: int, write: bool):
        """Pages from p that an access reaches without a fault: (end, pfns) or (p, None)."""
        vma = mm.find_vma(p)
        if vma is None or vma.prot == O.PROT_NONE or (write and not vma.prot & 2):
            return p, None
        r = p // HPAGE_PMD_NR
        end = min(hi, vma.end, (r + 1) * HPAGE_PMD_NR)
        kind = mm.pmd_kind[r]
        if kind == PMD_HUGE:
            if write and not mm.pmd_write[r] or vma.uffd_rwp and mm.pmd_uw[r]:
                return p, None  # a write fault, or an RWP-protected (protnone) PMD: any access
            base = int(mm.pmd_pfn[r]) - r * HPAGE_PMD_NR
            return end, np.arange(p + base, end + base, dtype=np.int32)
        if kind != PMD_TABLE:
            return p, None
        ok = mm.pte_kind[p:end] == PTE_PRESENT
        if write:
            ok &= mm.pte_write[p:end]
        if vma.uffd_rwp:
            ok &= ~mm.pte_uw[p:end]  # RWP-protected: protnone, a read faults too
        q = p + leading_run(ok)
        return q, (mm.pte_pfn[p:q] if q > p else None)

    def access_range(self, mm: MM, lo: int, hi: int, write: bool, value: int | None,
                     fail_alloc: bool) -> int:
        """User loads/stores to [lo, hi) in order; a fault that fails stops there."""
        p = lo
        faults = 0
        if write:
            self.written = (mm.pid, lo, lo)
        while p < hi:
            q, pfns = self._accessible_run(mm, p, hi, write)
            if q > p:
                if write:
                    pages = np.arange(p, q)
                    if value is not None:
                        self.mem.data[pfns] = ((value & O.MAX_VALUE) << 16) | pages
                    r = p // HPAGE_PMD_NR
                    if mm.pmd_kind[r] == PMD_HUGE:
                        mm.pmd_dirty[r] = mm.pmd_sd[r] = True
                    else:
                        mm.pte_dirty[p:q] = True
                        mm.pte_sd[p:q] = True
                    self.written = (mm.pid, lo, q)
                p, faults = q, 0
                continue
            if p >= VA_PAGES:
                return O.SIGSEGV
            vma = mm.find_vma(p)
            if write and vma is not None and vma.prot & 2 \
                    and not self._write_traps_uffd_wp(mm, vma, p):
                # every write fault that gets here maps an anonymous folio (do_anonymous_page(),
                # wp_page_copy(), or a swap-in in a VMA that already has an anon_vma). One on a
                # VMA without VM_WRITE never reaches handle_mm_fault(): access_error() (7.3
                # arch/x86/mm/fault.c:1058, :1338) sends SIGSEGV first, so the VMA gets no
                # anon_vma and fork copies none of its PTEs (vma_needs_copy(),
                # mm/memory.c:1564; kernel-check --generate seed 1, sequence 237: a zero-page
                # PTE in the model's child only)
                self.anon_vma_prepare(mm, p)
            if write and self._batch_write_faults(mm, p, hi):
                continue
            faults += 1
            if faults > 4:
                raise ModelBug(f"fault loop at page {p} of pid {mm.pid}")
            ret = self.handle_mm_fault(mm, p, write, fail_alloc)
            if ret != O.OK:
                return ret
        return O.OK

    @staticmethod
    def _write_traps_uffd_wp(mm: MM, vma: Vma, p: int) -> bool:
        """A write fault at p ends in handle_userfault(VM_UFFD_WP) before anything prepares an
        anon_vma: do_wp_page()'s userfaultfd_pte_wp() (7.3 mm/memory.c) on a uffd-wp PTE, the
        zero page's too, do_swap_page() -> do_wp_page() on a uffd-wp swap PTE, or the huge
        PMD's wp check (kernel-check --generate seed 1, sequence 589: the model's fork copied a
        zero-page PTE of a VMA the kernel had given no anon_vma)."""
        if not vma.uffd_wp:
            return False
        r = p // HPAGE_PMD_NR
        if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
            return bool(mm.pmd_uw[r])
        return mm.pmd_kind[r] == PMD_TABLE and mm.pte_kind[p] != PTE_NONE and bool(mm.pte_uw[p])

    def _batch_write_faults(self, mm: MM, p: int, hi: int) -> bool:
        """Run of write faults that are independent page by page, done at once: the same state as
        that many do_anonymous_page() calls on none PTEs, or wp_page_reuse() on read-only
        anon-exclusive pages. Anything else takes the one-fault path."""
        vma = mm.find_vma(p)
        if vma is None or not vma.prot & 2 or vma.uffd_rwp:
            # simplification for speed only: an RWP-registered VMA takes the one-fault path
            # (its protected entries fault twice: do_swap_page()/do_uffd_rwp(), then the write)
            return False
        r = p // HPAGE_PMD_NR
        kind = mm.pmd_kind[r]
        if kind == PMD_NONE and self.thp_vma_allowable(vma, r) or kind not in (PMD_NONE, PMD_TABLE):
            return False
        end = min(hi, vma.end, (r + 1) * HPAGE_PMD_NR)
        mem = self.mem
        pk = mm.pte_kind[p:end]
        if pk[0] == PTE_NONE:
            q = p + leading_run(pk == PTE_NONE)
            if kind == PMD_NONE:
                mm.pmd_kind[r] = PMD_TABLE
            pfns = mem.alloc_order0_batch(q - p)
            mem.anon_exclusive[pfns] = True
            mem.mapcount[pfns] = 1
            self._set_present_pte(mm, slice(p, q), pfns, write=True, dirty=True, sd=True, uw=False)
            mm.anonpages += q - p
            return True
        if pk[0] == PTE_SWAP:
            return self._batch_swapin_writes(mm, vma, p, end)
        if pk[0] != PTE_PRESENT:
            return False
        pfns = mm.pte_pfn[p:end]
        safe = np.maximum(pfns, 0)
        ro = (pk == PTE_PRESENT) & ~mm.pte_write[p:end] & ~(mm.pte_uw[p:end] & vma.uffd_wp)
        reuse = ro & (pfns != ZERO_PFN) & mem.anon_exclusive[safe]
        if reuse[0]:
            q = p + leading_run(reuse)
            mm.pte_write[p:q] = True  # wp_page_reuse(): maybe_mkwrite(pte_mkdirty(entry))
            mm.pte_dirty[p:q] = mm.pte_sd[p:q] = True
            return True
        # wp_page_copy() of the zero page, of a small folio other mms map too, or of a page of a
        # large folio mapped by another mm or pinned by a swap cache folio_free_swap() cannot
        # drop (a slot still referenced, or writeback): no reuse possible
        heads = mem.head[safe]
        hsafe = np.maximum(heads, 0)
        large_no_reuse = mem.order[hsafe] > 0
        if large_no_reuse[0]:
            for h in np.unique(heads[large_no_reuse]):
                h = int(h)
                if not self._swap_cache_holds(h) and not self.folio_maybe_mapped_shared(h):
                    large_no_reuse &= heads != h
        copy = ro & ~mem.anon_exclusive[safe] & ((pfns == ZERO_PFN) | large_no_reuse | (
            (mem.order[hsafe] == 0) & (mem.swap[safe] < 0) & (mem.mapcount[safe] > 1)))
        if not copy[0]:
            return False
        q = p + leading_run(copy)
        old = pfns[:q - p].copy()
        new = mem.alloc_order0_batch(q - p)
        mem.data[new] = mem.data[old]
        mem.anon_exclusive[new] = True
        mem.mapcount[new] = 1
        anon_old = old[old != ZERO_PFN]
        mem.mapcount[anon_old] -= 1
        mm.anonpages += int((old == ZERO_PFN).sum())
        self._set_present_pte(mm, slice(p, q), new, write=True, dirty=True, sd=True, uw=False)
        for h in np.unique(mem.head[anon_old]):
            self.folio_put_if_unused(int(h))
        return True

    def _batch_swapin_writes(self, mm: MM, vma: Vma, p: int, end: int) -> bool:
        """do_swap_page() write faults on a run of PTE swap entries that each end with their own
        page mapped writable, so the run is done at once (the same state as one fault per page):
        exclusive entries (soft-dirty-tracked or not) whose slots are not cached, or cached by an
        unmapped order-0 folio; and non-exclusive entries whose slot nobody else references
        (count 1) and nobody caches. Shared entries go to _batch_shared_swapin_writes."""
        mem, sw = self.mem, self.swap
        if not self._swapin_batch_may_start(mm, vma, p):
            return False
        sl = slice(p, end)
        slots = np.where(mm.pte_kind[sl] == PTE_SWAP, mm.pte_swp_off[sl], 0)
        cache = sw.cache[slots]
        if not mm.pte_swp_excl[p] and sw.count[slots[0]] > 1:
            return self._batch_shared_swapin_writes(mm, vma, p, end, slots, cache)
        chead = mem.head[np.maximum(cache, 0)]
        small_unmapped = (cache >= 0) & (mem.order[np.maximum(chead, 0)] == 0) \
            & (mem.mapcount[np.maximum(cache, 0)] == 0) & ~(mem.writeback[np.maximum(chead, 0)] & sw.sync)
        excl = mm.pte_swp_excl[sl].copy()  # copies: the PTEs are rewritten below
        # A non-exclusive entry of count 1 that nobody caches: do_swap_page() maps the new
        # swap-cache folio read-only, should_try_to_free_swap() drops it from the swap cache (its
        # slot's count is 0 after the put) and do_wp_page() reuses it (folio_ref_count 1). An
        # exclusive entry under soft-dirty tracking is also mapped read-only and reused by
        # do_wp_page(). Both end like an exclusive entry mapped writable.
        sole = ~excl & (cache < 0) & (sw.count[slots] == 1)
        ok = ((mm.pte_kind[sl] == PTE_SWAP) & ((excl & ((cache < 0) | small_unmapped)) | sole)
              & ~(mm.pte_uw[sl] & vma.uffd_wp))
        n = leading_run(ok)
        if n < 2:
            return False
        q = p + n
        slots = slots[:n].copy()
        self._swapin_order0_batch(slots[cache[:n] < 0])
        pfns = sw.cache[slots].copy()
        uw = mm.pte_uw[p:q].copy()
        self._set_present_pte(mm, slice(p, q), pfns, write=True, dirty=True, sd=True, uw=uw)
        mem.mapcount[pfns] = 1
        mem.anon_exclusive[pfns] = True
        mm.anonpages += n
        mm.swapents -= n
        sw.put(slots)
        # should_try_to_free_swap() (a write fault by the exclusive user, Linux 7.3), or for a
        # sole non-exclusive entry do_wp_page()'s wp_can_reuse_anon_folio(); either way
        # folio_free_swap() succeeds unless the folio is under writeback (every count is 0 now)
        drop = pfns[~mem.writeback[pfns]]
        if drop.size:
            sw.delete_order0_from_swap_cache(mem, drop)
            mem.dirty[drop] = True
        return True

    def _swapin_batch_may_start(self, mm: MM, vma: Vma, p: int) -> bool:
        """ok[0] of _batch_swapin_writes / _batch_shared_swapin_writes on scalars: a run starts only
        where its first page qualifies, and the per-page fault path calls these at every page of a
        run that does not batch, so the common "no" is answered without array work."""
        mem, sw = self.mem, self.swap
        if mm.pte_kind[p] != PTE_SWAP or (mm.pte_uw[p] and vma.uffd_wp):
            return False
        slot = int(mm.pte_swp_off[p])
        c = int(sw.cache[slot])
        if not mm.pte_swp_excl[p]:  # the shared run (count > 1) and the sole one (count 1)
            if c < 0:
                return True
            # only the shared run takes a cached slot: order-0 and not anon-exclusive
            return (int(sw.count[slot]) > 1 and int(mem.order[max(int(mem.head[c]), 0)]) == 0
                    and not mem.anon_exclusive[c])
        if c < 0:
            return True
        chead = max(int(mem.head[c]), 0)  # small_unmapped, as computed for the whole run below
        return (int(mem.order[chead]) == 0 and int(mem.mapcount[c]) == 0
                and not (mem.writeback[chead] and sw.sync))

    def _batch_shared_swapin_writes(self, mm: MM, vma: Vma, p: int, end: int, slots, cache) -> bool:
        """Write faults on a run of shared (after fork) PTE swap entries whose slots others still
        reference: each do_swap_page() maps the slot's order-0 swap-cache folio read-only (read
        from the device first if nobody caches the slot), then do_wp_page() cannot reuse it (the
        swap cache holds it for the other references) and copies it. The cached folio stays."""
        mem, sw = self.mem, self.swap
        sl = slice(p, end)
        safe = np.maximum(cache, 0)
        # a cached folio qualifies if it is order 0 and not anon-exclusive (else do_wp_page reuses it)
        small_shared = (cache >= 0) & (mem.order[np.maximum(mem.head[safe], 0)] == 0) \
            & ~mem.anon_exclusive[safe]
        ok = ((mm.pte_kind[sl] == PTE_SWAP) & ~mm.pte_swp_excl[sl] & ((cache < 0) | small_shared)
              & (sw.count[slots] > 1) & ~(mm.pte_uw[sl] & vma.uffd_wp))
        n = leading_run(ok)
        if n < 2:
            return False
        q = p + n
        slots = slots[:n].copy()
        self._swapin_order0_batch(slots[cache[:n] < 0])
        cached = sw.cache[slots].copy()
        sw.put(slots)  # every count stays above 0: folio_free_swap() keeps each folio cached
        copies = mem.alloc_order0_batch(n)
        mem.data[copies] = mem.data[cached]
        mem.anon_exclusive[copies] = True
        mem.mapcount[copies] = 1
        self._set_present_pte(mm, slice(p, q), copies, write=True, dirty=True, sd=True, uw=False)
        mm.anonpages += n
        mm.swapents -= n
        return True

    def op_write(self, op: O.Write) -> int:
        lo, hi = self._range(op)
        return self.access_range(self.mms[op.pid], lo, hi, True, op.value, op.fail_alloc)

    def op_fault(self, op: O.Fault) -> int:
        return self.access_range(self.mms[op.pid], op.page, op.page + 1, op.write, None,
                                 op.fail_alloc)

    def _madvise_walk(self, mm: MM, lo: int, hi: int, fn) -> int:
        """madvise_walk_vmas(): apply fn to every VMA piece; a hole (beyond the window too) gives
        -ENOMEM at the end."""
        for v in mm.vmas_in(lo, hi):
            fn(mm, max(v.start, lo), min(v.end, hi))
        return O.OK if hi <= VA_PAGES and mm.covered(lo, hi) else ENOMEM

    def op_pageout(self, op: O.Pageout) -> int:
        mm = self.mms[op.pid]
        lo, hi = self._range(op)

        def pageout(mm, a, b):
            self.shrink_folio_list(self.madvise_cold_or_pageout_pte_range(mm, a, b))
        return self._madvise_walk(mm, lo, hi, pageout)

    def op_cold(self, op: O.Cold) -> int:
        """madvise_cold() (7.3 mm/madvise.c:604): -EINVAL for a VM_LOCKED VMA (none outside
        evict in the model), then madvise_cold_page_range(): the pageout walk with pageout=false.
        Its splits happen as for MADV_PAGEOUT; what it does besides, folio_deactivate() and
        clearing the young bits (:448, :540, :563), touches the LRU and accessed bits, which
        the model does not have, and changes nothing the fuzzer observes."""
        lo, hi = self._range(op)
        return self._madvise_walk(self.mms[op.pid], lo, hi, self.madvise_cold_or_pageout_pte_range)

    def op_dontneed(self, op: O.Dontneed) -> int:
        lo, hi = self._range(op)
        return self._madvise_walk(self.mms[op.pid], lo, hi, self.madvise_dontneed_single_vma)

    def madvise_dontneed_single_vma(self, mm: MM, lo: int, hi: int) -> None:
        """madvise_dontneed_single_vma() (mm/madvise.c): zap with `.reclaim_pt = true`.

        CONFIG_PT_RECLAIM is def_bool y on x86-64 (mm/Kconfig, arch/x86/Kconfig selects
        MMU_GATHER_RCU_TABLE_FREE), so zap_pte_range() (mm/memory.c) frees a PTE table whose
        whole 2 MiB lies in this zap (pte_table_reclaim_possible(): `end - start >= PMD_SIZE`)
        once nothing was skipped: in an anonymous VMA a zapped swap entry leaves no uffd-wp
        marker (cond_install_uffd_wp_ptes() returns false for vma_is_anonymous()), so every
        entry counts. The PMD is then none and the next fault in a MADV_HUGEPAGE VMA can map a
        THP. Partial ranges (a split PMD) keep their table."""
        self.unmap_page_range(mm, lo, hi)
        for r, a, b in regions_of(lo, hi):
            if b - a == HPAGE_PMD_NR and mm.pmd_kind[r] == PMD_TABLE:
                # zap_empty_pte_table() / zap_pte_table_if_empty(), then pte_free_tlb()
                if (mm.pte_kind[region_slice(r)] != PTE_NONE).any():
                    raise ModelBug("reclaiming a PTE table that still has entries")
                mm.clear_pmd(r)

    def op_free(self, op: O.Free) -> int:
        lo, hi = self._range(op)
        return self._madvise_walk(self.mms[op.pid], lo, hi, self.madvise_free_single_vma)

    # ---- MADV_WILLNEED: mm/madvise.c madvise_willneed() ------------------------------------------
    def op_willneed(self, op: O.Willneed) -> int:
        """madvise_willneed() (7.3 mm/madvise.c:290): an anonymous VMA is walked with
        swapin_walk_ops (walk_page_range_vma()); holes give -ENOMEM (madvise_walk_vmas())."""
        lo, hi = self._range(op)
        return self._madvise_walk(self.mms[op.pid], lo, hi, self.swapin_walk_range)

    def swapin_walk_range(self, mm: MM, lo: int, hi: int) -> None:
        """walk_pmd_range() with .pmd_entry = swapin_walk_pmd_entry(): a none PMD is skipped, a
        huge one (present or swap) goes to the PMD-level hook, a table to the PTE walk."""
        for r, a, b in regions_of(lo, hi):
            if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP) and self.swapin_walk_huge_pmd(mm, r, a, b):
                continue
            if mm.pmd_kind[r] == PMD_TABLE:
                self.swapin_walk_pmd_entry(mm, a, b)

    def swapin_walk_pmd_entry(self, mm: MM, a: int, b: int) -> None:
        """swapin_walk_pmd_entry() (7.3 mm/madvise.c:196), PTE part: read_swap_cache_async() for
        every swap PTE (:224): a slot already cached is found and left, any other gets an order-0
        folio read into the swap cache (swap_cache_alloc_folio(), page-cluster plays no part).
        The folios stay unmapped and clean in the swap cache until a fault or reclaim."""
        if self.swap is None:
            return
        for p in np.flatnonzero(mm.pte_kind[a:b] == PTE_SWAP) + a:
            slot = int(mm.pte_swp_off[p])
            if self.swap.cache[slot] < 0:
                head = self.swapin_order0(slot)
                if self.mem.dirty[head]:  # zswap_load() filled it
                    self._readahead_dirty.add(head)

    # ---- mincore: mm/mincore.c ---------------------------------------------------------------------
    def op_mincore(self, op: O.Mincore) -> int:
        """sys_mincore() (7.3 mm/mincore.c): do_mincore() VMA by VMA; the first page in no VMA
        ends it with -ENOMEM (vma_lookup()), the answers before it are copied out already (the
        syscall copies after each do_mincore() chunk). `output`: one byte per page of the range,
        1 resident, 0 not, MINCORE_UNSET where the kernel wrote nothing."""
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        vec = np.full(op.npages, MINCORE_UNSET, np.int8)
        self.output = vec
        p = lo
        while p < hi:
            v = mm.find_vma(p) if p < VA_PAGES else None
            if v is None:
                return ENOMEM
            end = min(v.end, hi)
            for r, a, b in regions_of(p, end):
                vec[a - lo:b - lo] = self.mincore_pte_range(mm, r, a, b)
            p = end
        return O.OK

    def mincore_pte_range(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        """mincore_pte_range() (7.3 mm/mincore.c:162) for pages [a, b) of region r."""
        kind = mm.pmd_kind[r]
        if kind in (PMD_HUGE, PMD_SWAP):
            return self.mincore_huge_pmd(mm, r, a, b)  # pmd_trans_huge_lock() (:172)
        if kind == PMD_NONE:
            return np.zeros(b - a, np.int8)  # mincore_unmapped_range(): anonymous, 0
        k = mm.pte_kind[a:b]
        out = (k == PTE_PRESENT).astype(np.int8)  # present, the zero page too (:192)
        swp = k == PTE_SWAP
        out[swp] = self.mincore_swap(mm.pte_swp_off[a:b][swp])  # (:203)
        return out  # pte_none(): __mincore_unmapped_range(), 0 for anonymous memory

    def mincore_swap(self, slots: np.ndarray) -> np.ndarray:
        """mincore_swap() (7.3 mm/mincore.c:48): swap_cache_get_folio() finds a folio caching the
        slot (and it is uptodate: the model's reads complete at once)."""
        if self.swap is None:
            return np.zeros(len(slots), np.int8)
        return (self.swap.cache[slots] >= 0).astype(np.int8)

    def op_evict(self, op: O.Evict) -> int:
        """The rig's evict (fuzz/export_c.py evict()): every worker mlock2(MLOCK_ONFAULT)s each
        of its VMAs, the cgroup's memory.reclaim runs, and every VMA is munlocked again.
        Writeback completes, then clean unmapped folios leave the swap cache and are freed.

        mlock_fixup() (7.3 mm/mlock.c:467) changes the flags through vma_modify_flags(), which
        merges the VMA with a compatible neighbour (mm/vma.c:1073, sticky VM_SOFTDIRTY); both
        passes run in address order, so afterwards every pair of adjacent compatible VMAs is
        one, with the flags it had before (a fork child's VMAs, ones clear_refs or an mremap's
        uffd reset left apart; kernel-check --generate seed 1, sequence 266)."""
        for mm in self.mms.values():
            self.vma_merge_range(mm, 0, VA_PAGES)
        sw, mem = self.swap, self.mem
        if sw is None:
            return O.OK  # get_scan_count(): no swap, so reclaim scans no anon LRU
        for h in self._cached_heads():
            if mem.writeback[h]:
                sw.end_writeback(mem, h)  # long done on the real device when evict runs
        self._evict_split_partially_mapped()
        # pageout() of an unmapped dirty folio: swap_writeout() starts with folio_free_swap()
        # ("stale swap cache pages", mm/page_io.c), so one whose slots nobody references any
        # more leaves the swap cache and, now in neither, is freed; any other (pieces of a
        # split swap-cache THP) is written again and then goes like a clean one.
        # Measured exception, reason not found in the 7.3 source: an order-0 folio that
        # MADV_WILLNEED read from zswap (zswap_load() dirties it, mm/zswap.c:1639) and that
        # nothing has mapped since stays in the swap cache through evict, twice in a row, on
        # the real 7.3 kernel (kernel-check --generate seed 1, sequence 405; trace
        # linux73-evict_keeps_zswap_readahead), while one faulted in and unmapped again, and
        # split pieces with zswap on or off, are written and freed
        for h in self._cached_heads():
            if not mem.dirty[h] or mem.folio_mapped(h):
                continue
            if not (sw.count[mem.swap[h:h + mem.nr_pages(h)]] > 0).any():
                if self.folio_free_swap(h):
                    mem.free_folio(h)
            elif h not in self._readahead_dirty:
                self.swap_writeout(h)
                if mem.writeback[h]:
                    sw.end_writeback(mem, h)
        heads = np.array(self._cached_heads(), dtype=np.int64)
        if not heads.size:
            return O.OK
        small = heads[mem.order[heads] == 0]
        drop = small[(mem.mapcount[small] == 0) & ~mem.dirty[small]]
        if drop.size:  # order-0 folios in one go: __remove_mapping() + free
            sw.delete_order0_from_swap_cache(mem, drop)
            for h in drop:
                mem.free_folio(int(h))
        for h in heads[mem.order[heads] > 0]:
            h = int(h)
            if not mem.folio_mapped(h) and not mem.dirty[h]:
                sw.delete_from_swap_cache(mem, h)
                mem.free_folio(h)
        return O.OK

    def _cached_heads(self) -> list[int]:
        cached = self.swap.cache[self.swap.cache >= 0]
        return [int(h) for h in np.unique(self.mem.head[cached])]

    def op_fork(self, op: O.Fork) -> int:
        src = self.mms[op.pid]
        free = [p for p in range(O.MAX_PROCS) if p not in self.mms]
        if not free:
            return EAGAIN  # RLIMIT_NPROC
        if op.fail_alloc and self._has_entries(src):
            # the child's page-table allocation for the first region holding entries fails
            # (injected where both kernels allocate one, whatever the entries' level), so
            # dup_mmap() returns -ENOMEM; nothing was copied yet
            return ENOMEM
        dst = MM(free[0])
        self.mms[dst.pid] = dst
        for v in src.vmas:
            # anon_vma_fork() (7.3 mm/rmap.c:382): each child VMA with an anon_vma gets one of
            # its own, chained to the parent's; maybe_reuse_anon_vma() (:274) takes only one
            # that no VMA uses, so even a reused one is distinct. Parent VMAs that shared one
            # get distinct ones, so the child's never merge (is_mergeable_anon_vma(): a
            # non-singular chain needs the same anon_vma; kernel-check --generate seed 1, 708)
            av = self._new_anon_vma() if v.anon_vma else 0
            # dup_userfaultfd() without UFFD_FEATURE_EVENT_FORK: the child is not registered
            dv = replace(v, uffd_wp=False, uffd_rwp=False, anon_vma=av, fork_child=bool(av))
            dst.vmas.append(dv)
            # vma_needs_copy() (7.3 mm/memory.c:1564): page tables are copied only for a VMA with
            # an anon_vma (or VM_COPY_ON_FORK, which the child's cleared uffd flags are not); one
            # holding only zero-page read faults has none, and the child faults them in anew
            # (found by kernel-check --generate)
            if v.anon_vma:
                self.copy_page_range(dst, src, v, dv)
        # dup_mmap() copies the VMAs one by one and merges nothing: VMAs that differed only in
        # their uffd registration stay apart in the child (kernel-check --generate, seed 1
        # sequence 550: a UFFDIO_MOVE over them is -EINVAL, "not within a single VMA")
        return O.OK

    @staticmethod
    def _has_entries(mm: MM) -> bool:
        """Does any PMD or PTE of mm hold an entry (present or swap)?"""
        if ((mm.pmd_kind == PMD_HUGE) | (mm.pmd_kind == PMD_SWAP)).any():
            return True
        return bool((np.repeat(mm.pmd_kind == PMD_TABLE, HPAGE_PMD_NR) & (mm.pte_kind != PTE_NONE)).any())

    def op_exit(self, op: O.Exit) -> int:
        mm = self.mms[op.pid]
        for v in list(mm.vmas):
            self.unmap_page_range(mm, v.start, v.end)
        mm.vmas = []
        self.free_pgtables(mm, 0, VA_PAGES)
        # check_mm() (kernel/fork.c) before the mm is dropped: "BUG: Bad rss-counter state"
        if mm.anonpages or mm.swapents:
            raise ModelBug(f"check_mm: pid {mm.pid} exits with MM_ANONPAGES {mm.anonpages}, "
                           f"MM_SWAPENTS {mm.swapents}")
        del self.mms[op.pid]
        if op.pid in self.mmlist:
            self.mmlist.remove(op.pid)
        return O.OK

    def op_mprotect(self, op: O.Mprotect) -> int:
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        pos = lo  # the window's end is TASK_SIZE: beyond it is a hole like any other
        for v in list(mm.vmas_in(lo, hi)):
            if v.start > pos:
                break  # a hole: -ENOMEM after the VMAs before it were changed
            a, b = max(v.start, lo), min(v.end, hi)
            pos = b
            if v.prot == op.prot:
                continue  # newflags == oldflags: nothing to do
            self.set_vma_flags(mm, a, b, prot=op.prot)
            self.change_protection(mm, mm.find_vma(a), a, b, "prot")
        self.vma_merge_range(mm, lo, hi)
        return O.OK if pos >= hi else ENOMEM

    def op_mremap(self, op: O.MremapMove) -> int:
        """mremap(addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) (fuzz/export_c.py OP_MREMAP).

        Linux 7.3 (mm/mremap.c): do_mremap() -> check_mremap_params() (:1880), then, since the
        call only moves (vrm_move_only(), :1727: MREMAP_FIXED and old_len == new_len),
        remap_move() (:1933), which moves every VMA of [addr, addr + len) one after the other
        ("permit moves of multiple VMAs"), each by check_prep_vma() + mremap_to():
          * no VMA in the range at all: the loop does not run, res stays -EFAULT (:1940);
          * a hole before the first VMA: -EFAULT (:1959, "No gap permitted at the start");
          * holes between VMAs and after the last are allowed; each VMA lands at the previous
            one's new end plus the same gap (:1963-1977), and only its own destination is
            unmapped (mremap_to() do_munmap(new_addr, new_len), :1503), so what is mapped in
            the destination's holes stays;
          * a uffd-armed VMA (vma_multi_allowed(), :1752: userfaultfd_armed()) may only be moved
            alone: as the first VMA with the range ending inside it, else -EFAULT, before
            anything moved if it is the first (:1990), after the earlier VMAs moved if not
            (:1988: they stay moved, the call returns -EFAULT)."""
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        d, dend = op.dst, op.dst + op.npages
        if hi > VA_PAGES or dend > VA_PAGES:
            return EINVAL  # outside the model's window
        if d < hi and lo < dend:
            return EINVAL  # check_mremap_params(): vrm_overlaps() (mm/mremap.c:1927)
        pos, target, last_end, seen = lo, d, 0, False
        while True:
            # for_each_vma_range(vmi, vma, end) (:1955); looked up again after every move, as
            # vma_iter_invalidate() makes the kernel do after a merge (:2012)
            vma = next((v for v in mm.vmas if v.end > pos and v.start < hi), None)
            if vma is None:
                break
            if not seen and lo < vma.start:
                return EFAULT  # :1959 no gap permitted at the start of the range
            a, b = max(vma.start, lo), min(hi, vma.end)
            offset = vma.start - last_end if seen else 0  # :1977 keep the gaps between VMAs
            last_end = vma.end
            new = target + offset
            if vma.uffd_protected:  # !vma_multi_allowed(): userfaultfd_armed() (:1760)
                if seen:
                    return EFAULT  # :1988 not the first VMA: abort, earlier moves stay
                if vma.end < hi:
                    return EFAULT  # :1991 the first, but the range goes on past it
            self.move_vma(mm, a, b, new)  # check_prep_vma() (returns 0 here) + mremap_to()
            seen, target, pos = True, new + (b - a), b
        return O.OK if seen else EFAULT  # res = -EFAULT (:1940) when no VMA was in the range

    def move_vma(self, mm: MM, a: int, b: int, new: int) -> None:
        """mremap_to() (mm/mremap.c:1492) + move_vma() (:1394) of [a, b), inside one VMA, to `new`.

        MREMAP_FIXED first unmaps the destination (do_munmap(), :1503). copy_vma_and_data()
        (:1295) then makes the new VMA with copy_vma() (mm/vma.c:1944): an unfaulted VMA (no
        anon_vma) gets the new address as its pgoff (:1960-1966), a faulted one keeps its own,
        and vma_merge_copied_range() (:1999) merges it with the destination's neighbours when
        they are compatible (the same flags, which includes the same uffd context). The page
        tables move (move_page_tables()), and only then mremap_userfaultfd_prep(new_vma)
        (:1345; mm/userfaultfd.c:3197): the rig's context has no UFFD_FEATURE_EVENT_REMAP, so
        userfaultfd_reset_ctx() (mm/userfaultfd.c:2257) clears VM_UFFD_WP and the context on
        new_vma, which after a merge is the whole merged VMA: a registered neighbour the moved
        range merged into loses its registration too (its PTEs keep their uffd-wp bits).
        move_ptes() (:201, :295-312) and move_huge_pmd() (mm/huge_memory.c:2664) clear the
        uffd-wp bit of every moved present and swap entry (a marker is dropped) when the old
        VMA has a context without EVENT_REMAP (vma_has_uffd_without_event_remap(),
        include/linux/userfaultfd_k.h:267), and move_normal_pmd() is not used then
        (uffd_supports_page_table_move(), :339). A VMA without a context keeps the bits.
        The source VMA is split only when the old range is unmapped, after all that
        (unmap_source_vma(), move_vma() :1394), so an unfaulted VMA's copy may merge with the
        source VMA itself (copy_vma(): `can_self_merge`, 7.3 mm/vma.c) when it lands right after
        it: the merged VMA takes the sticky VM_SOFTDIRTY of a new neighbour and loses its uffd
        registration, and both keep them once the old range is cut out (kernel-check
        --generate seed 1, sequence 408). The part of the old VMA outside [a, b) otherwise keeps
        its flags and its registration."""
        self.do_vmi_munmap(mm, new, new + (b - a))  # mremap_to(): MREMAP_FIXED
        vma = mm.find_vma(a)
        # vma_has_uffd_without_event_remap(vma): any context (WP or RWP) lacking EVENT_REMAP
        clear_uw = vma.uffd_protected
        # copy_vma(): a faulted VMA keeps its pgoff, an unfaulted one gets the new address
        pgoff = vma.pgoff + (a - vma.start) if vma.anon_vma else new
        new_vma = replace(vma, start=new, end=new + (b - a), pgoff=pgoff)
        mm.vmas = sorted(mm.vmas + [new_vma], key=lambda v: v.start)
        self.vma_merge_range(mm, new, new + (b - a))  # vma_merge_copied_range()
        self.move_page_tables(mm, a, new, b - a, clear_uw)
        if clear_uw:
            merged = mm.find_vma(new)  # mremap_userfaultfd_prep(new_vma): userfaultfd_reset_ctx()
            # no merge is tried after the reset: the unregistered VMA stays apart from equal
            # neighbours, as in the kernel (docs/models.md M7)
            mm.vmas[mm.vmas.index(merged)] = replace(merged, uffd_wp=False, uffd_rwp=False)
        # unmap_source_vma(): the old range, empty by now, leaves its VMA
        self.split_vma(mm, a)
        self.split_vma(mm, b)
        mm.vmas.remove(mm.find_vma(a))
        self.free_pgtables(mm, a, b)

    def op_mremap_shrink(self, op: O.MremapShrink) -> int:
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES:
            return EINVAL
        vma = mm.find_vma(lo)
        if vma is None:
            return EFAULT  # check_prep_vma(): no VMA at addr
        new_hi = lo + op.new_npages
        # check_prep_vma() (mm/mremap.c) returns before the "remap across the end of VMAs" check
        # when nothing new is mapped: no resize, or a shrink, which may cross VMA boundaries
        if new_hi == hi:
            return O.OK
        if new_hi < hi:
            self.do_vmi_munmap(mm, new_hi, hi)  # shrink_vma()
            return O.OK
        if hi > vma.end:
            return EFAULT
        # growing in place: only if the VMA ends here and the space behind it is free
        if hi != vma.end or new_hi > VA_PAGES or mm.vmas_in(hi, new_hi):
            return ENOMEM
        mm.vmas[mm.vmas.index(vma)] = replace(vma, end=new_hi)
        self.vma_merge_range(mm, lo, new_hi)
        return O.OK

    def op_swapoff(self, op: O.Swapoff) -> int:
        """try_to_unuse(): every mm on the mmlist, every VMA, then the swap cache; then the device goes."""
        sw, mem = self.swap, self.mem
        if sw is None:
            return EINVAL
        for pid in list(self.mmlist):
            mm = self.mms.get(pid)
            if mm is None:
                continue
            for v in list(mm.vmas):
                for r, a, b in regions_of(v.start, v.end):
                    if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                        self.unuse_pmd_range(mm, v, r, op.fail_alloc)
                    if mm.pmd_kind[r] == PMD_TABLE:
                        self.unuse_pte_range(mm, a, b)
        for head in self._cached_heads():
            if mem.writeback[head]:
                sw.end_writeback(mem, head)
            self.folio_free_swap(head)
            if not mem.in_swapcache(head) and not mem.folio_mapped(head):
                mem.free_folio(head)
        if (sw.count > 0).any() or (sw.cache >= 0).any():
            raise ModelBug("swapoff left references to the device")
        self.swap = None
        self.mmlist = []
        return O.OK

    def op_swapon(self, op: O.Swapon) -> int:
        if self.swap is not None:
            return EBUSY
        self.swap = SwapDevice(sync=op.sync)
        return O.OK

    def op_clear_refs(self, op: O.ClearRefs) -> int:
        """clear_refs_write(CLEAR_REFS_SOFT_DIRTY)."""
        mm = self.mms[op.pid]
        mm.vmas = [replace(v, softdirty=False) for v in mm.vmas]
        for v in mm.vmas:
            for r, a, b in regions_of(v.start, v.end):
                if mm.pmd_kind[r] in (PMD_HUGE, PMD_SWAP):
                    self.clear_soft_dirty_pmd(mm, r)
                elif mm.pmd_kind[r] == PMD_TABLE:
                    self.clear_soft_dirty_ptes(mm, a, b)
        # no merge: clear_refs_write() clears VM_SOFTDIRTY in place, and a merge ignores it
        return O.OK

    def op_uffd_register(self, op: O.UffdRegister) -> int:
        """userfaultfd_register() (7.3 mm/userfaultfd.c:3718): the range needs one VMA, not all of
        it: :3792 `vma = vma_find(&vmi, end); if (!vma) goto out_unlock;` (-EINVAL); every VMA
        found in it is registered; holes are fine (found on the real 7.3 kernel by kernel-check
        --generate)."""
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES or not mm.vmas_in(lo, hi):
            return EINVAL  # validate_range(); vma_find() found nothing
        rwp = bool(getattr(op, "rwp", False))
        for v in mm.vmas_in(lo, hi):
            # the pre-scan ("Search for not compatible vmas", mm/userfaultfd.c:3813-3891), before
            # anything changes: RWP on an inaccessible (PROT_NONE) VMA is -EINVAL (:3832); a mode
            # switch that would drop VM_UFFD_WP or VM_UFFD_RWP of a VMA this context registered
            # is refused (:3880, "Require an unregister first"; the rig has one context) with
            # -EBUSY: the check comes after `ret = -EBUSY;` (:3868) and sets no errno of its own
            # (the real 7.3 kernel says -EBUSY; kernel-check of linux73-rwp-errors.trace)
            if rwp and v.prot == O.PROT_NONE:
                return EINVAL
            if (v.uffd_wp and rwp) or (v.uffd_rwp and not rwp):
                return EBUSY
        for v in mm.vmas_in(lo, hi):
            if v.uffd_wp or v.uffd_rwp:
                # userfaultfd_register_range() (mm/userfaultfd.c:2342): "already registered into
                # this userfaultfd", goto skip: no split, so a THP there stays PMD-mapped (the
                # rig's process has one context; kernel-check --generate seed 1: 212, 516)
                continue
            a, b = max(v.start, lo), min(v.end, hi)
            # vma_modify_flags_uffd()
            self.set_vma_flags(mm, a, b, **({"uffd_rwp": True} if rwp else {"uffd_wp": True}))
            self.vma_merge_range(mm, a, b)
        return O.OK

    def op_uffd_wp(self, op: O.UffdWp) -> int:
        """mwriteprotect_range(): every VMA in the range must be registered for WP."""
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES:
            return EINVAL
        vmas = mm.vmas_in(lo, hi)
        if not vmas:
            return ENOENT
        for v in vmas:
            if not v.uffd_wp:
                return ENOENT
            self.change_protection(mm, v, max(v.start, lo), min(v.end, hi),
                                   "uffd_wp" if op.enable else "uffd_wp_resolve")
        return O.OK

    def op_uffd_rwp(self, op: O.UffdRwp) -> int:
        """userfaultfd_rwprotect() (7.3 mm/userfaultfd.c:4268) -> mrwprotect_range() (:1167).

        The pre-scan (:1197-1211) checks every VMA of the range before any change: one not
        RWP-registered, or none at all, is -ENOENT and nothing changed (holes are skipped,
        for_each_vma_range()). Then per VMA change_protection(MM_CP_UFFD_RWP) (newprot =
        PAGE_NONE, the uffd bit on every present and swap entry) or MM_CP_UFFD_RWP_RESOLVE (the
        bit cleared, vm_page_prot back, MM_CP_TRY_CHANGE_WRITABLE on a VM_WRITE VMA, :1227). A
        process that registered nothing has no context on the rig: the ioctl is refused with
        -ENOENT there too (fuzz/export_c.py)."""
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        if hi > VA_PAGES:
            return EINVAL  # validate_range()
        vmas = mm.vmas_in(lo, hi)
        if not vmas or not all(v.uffd_rwp for v in vmas):
            return ENOENT
        for v in vmas:
            self.change_protection(mm, v, max(v.start, lo), min(v.end, hi),
                                   "uffd_rwp" if op.enable else "uffd_rwp_resolve")
        return O.OK

    def op_uffd_move(self, op: O.UffdMove) -> int:
        """move_pages(): page-table moves between two ranges of one mm."""
        mm = self.mms[op.pid]
        src, dst, n = op.src, op.dst, op.npages
        if src + n > VA_PAGES or dst + n > VA_PAGES:
            return EINVAL  # validate_range(); Linux 7.3 has no overlap check
        dvma = mm.find_vma(dst)
        if dvma is None:
            return ENOENT  # uffd_move_lock() -> uffd_lock_vma()
        dvma = self.anon_vma_prepare(mm, dst)  # find_vma_and_prepare_anon()
        svma = mm.find_vma(src)
        if svma is None:
            return ENOENT
        if src + n > svma.end or dst + n > dvma.end:
            return EINVAL  # "fully within a single existing vma"
        if svma.prot != dvma.prot or not svma.prot & 2 or not dvma.uffd_protected:
            # validate_move_areas(): same access flags, VM_WRITE, dst registered with this uffd
            return EINVAL
        err, moved = self._move_pages_loop(mm, src, dst, n, dvma)
        # move_pages() returns the bytes moved, else the error; the ioctl gives 0 for a whole
        # move and -EAGAIN for a short one (mm/userfaultfd.c userfaultfd_move())
        if moved == 0:
            return err
        return O.OK if moved == n else EAGAIN

    def _move_pages_loop(self, mm: MM, src: int, dst: int, n: int, dvma: Vma) -> tuple[int, int]:
        """move_pages()'s loop: (the error that stopped it or 0, the pages moved before that)."""
        start = src
        end = src + n
        while src < end:
            moved = src - start
            rs, rd = src // HPAGE_PMD_NR, dst // HPAGE_PMD_NR
            if mm.pmd_kind[rd] == PMD_HUGE:
                return EEXIST, moved  # pmd_trans_huge(dst_pmdval): a present THP only
            if mm.pmd_kind[rs] in (PMD_HUGE, PMD_SWAP):  # pmd_trans_huge_lock(src_pmd)
                # move_splits_huge_pmd(): unaligned or short, or the dst PMD is populated
                if src % HPAGE_PMD_NR or dst % HPAGE_PMD_NR or end - src < HPAGE_PMD_NR \
                        or mm.pmd_kind[rd] != PMD_NONE:
                    if mm.pmd_kind[rs] == PMD_HUGE and \
                            not self.mem.anon_exclusive[int(mm.pmd_pfn[rs])]:
                        return EBUSY, moved
                    self.split_huge_pmd(mm, rs)
                    continue
                err = self.move_pages_huge_pmd(mm, rs, rd, dvma)
                if err is None:
                    continue  # the model split the entry: go on at PTE level
                if err:
                    return err, moved
                src, dst = src + HPAGE_PMD_NR, dst + HPAGE_PMD_NR
                continue
            if mm.pmd_kind[rs] == PMD_NONE:
                return ENOENT, moved  # no UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
            if mm.pmd_kind[rd] == PMD_SWAP:
                # [I] the series: a PMD swap entry stands for 512 populated PTEs, as a dst PTE
                # that is not none gives -EEXIST in move_pages_pte()
                return EEXIST, moved
            if mm.pmd_kind[rd] == PMD_NONE:
                mm.pmd_kind[rd] = PMD_TABLE
            err = self.move_pages_pte(mm, src, dst, dvma)
            if err:
                return err, moved
            src, dst = src + 1, dst + 1
        return O.OK, n

    def op_split_thp(self, op: O.SplitThp) -> int:
        """split_huge_pages_all() (mm/huge_memory.c:4719): every large folio, in pfn order;
        split_folio() leaves the ones under writeback and the unmapped ones (swap cache) whole."""
        mem = self.mem
        for head in mem.live_folios():
            head = int(head)
            if mem.head[head] == head and mem.nr_pages(head) > 1:
                self.split_folio(head)
        return O.OK

    def op_fragment(self, op: O.Fragment) -> int:
        if self.swap is None:
            return O.NOT_APPLICABLE
        self.swap.fragment()
        return O.OK

    def op_zswap_enable(self, op: O.ZswapEnable) -> int:
        self.zswap_ever_enabled = True
        self.zswap_enabled = True
        return O.OK
