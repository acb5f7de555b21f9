"""Kernel-version profiles: the ONE list of how a real kernel's legacy behaviour differs from the model.

The legacy model (models/legacy.py + models/mm.py) models the series' base tree (mm-new, mid-2026).
A real kernel checked with `pmdswap-fuzz kernel-check` may be older. A profile names that kernel,
says which ops it can express (`capabilities`, read by fuzz/export_c.py) and lists every known
difference, each with its source and how the comparison handles it:

  * "model"   - the profile's model (`make_model`) is the legacy model with this one function
                overridden to the old behaviour (a subclass here; models/ is not changed);
  * "observe" - the observable is derived differently for this kernel (fuzz/kernelcheck.py reads
                `observable_rules`);
  * "export"  - the op cannot be expressed; export_c raises ExportError;
  * "none"    - not visible in any compared observable; listed so nobody has to rediscover it.

fuzz/kernelcheck.py tolerates exactly these and prints the profile's name with every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.legacy import LegacyKernel
from models.memory import ZERO_PFN
from models import ops as O
from models.mm import PMD_HUGE, PTE_PRESENT, PTE_SWAP
from models.ops import HPAGE_PMD_NR

__all__ = ["Difference", "Profile", "PROFILES", "DEFAULT_PROFILE", "make_model"]


@dataclass(frozen=True)
class Difference:
    key: str
    what: str
    source: str
    handling: str  # model / observe / export / none


@dataclass(frozen=True)
class Profile:
    name: str
    kernel: str  # what kernel it describes
    model: str  # the model it is checked against: legacy or pmd
    capabilities: frozenset = frozenset()
    differences: tuple[Difference, ...] = ()
    # observable name -> rule; see fuzz/kernelcheck.py OBSERVABLES
    observable_rules: dict = field(default_factory=dict)

    def has(self, key: str) -> bool:
        return any(d.key == key for d in self.differences)


M61 = "mm/memory.c, Linux 6.1.y (docs/research-notes.md source M61: unifreq/linux-6.1.y @3f562c740933)"

LINUX_6_1 = Profile(
    name="linux-6.1",
    kernel="Linux 6.1 (Debian 12 linux-image-*-cloud-amd64)",
    model="legacy",
    capabilities=frozenset({"split_huge_pages"}),
    differences=(
        Difference(
            "swapin_maps_one_page",
            "do_swap_page() maps only the faulting page of a large folio found in the swap cache; "
            "the mid-2026 tree maps the whole folio when swap_pte_batch() finds all its entries",
            f"{M61}: `page = folio_file_page(folio, swp_offset(entry))` then one set_pte_at(); "
            "'mm: swap: entirely map large folios found in swapcache' (2024, 6.11) added the batch "
            "(research-notes Q9, Q1(b))",
            "model"),
        Difference(
            "pagemap_exclusive_is_mapcount",
            "pagemap bit 56 (PM_MMAP_EXCLUSIVE) is `page_mapcount(page) == 1` for present PTEs, "
            "for a PMD-mapped THP the head page's page_mapcount() for all 512 pages, and never set "
            "for swap entries; the model's `exclusive` is PageAnonExclusive / the swap entry's "
            "exclusive bit. Found by corpus/realkernel/cow-swapped_thp_fork_then_swapout.trace: "
            "after the child's COW of page 0 the parent's PMD reads exclusive on all 512 pages",
            "fs/proc/task_mmu.c, Linux 6.1 pte_to_pagemap_entry()/pagemap_pmd_range(): "
            "`if (page && page_mapcount(page) == 1) flags |= PM_MMAP_EXCLUSIVE;` only for present "
            "and migration entries, and in pagemap_pmd_range() with `page = pmd_page(pmd)` once "
            "before the loop over the 512 subpages; measured: swap PTEs read 0x40800000... (bit 56 clear), "
            "../shared/docs/realkernel.md section 5",
            "observe"),
        Difference(
            "lazyfree_thp_split_before_discard",
            "reclaim of a clean MADV_FREE'd PMD-mapped THP splits the PMD (TTU_SPLIT_HUGE_PMD, "
            "thp_split_pmd +1) and discards the 512 PTEs; the mid-2026 tree discards the PMD whole "
            "(unmap_huge_pmd_locked). If the folio was re-dirtied, 6.1 leaves it PTE-mapped. Found "
            "by corpus/realkernel/pmd_swap-free_then_pageout.trace (kernel thp_split_pmd +1)",
            "Linux 6.10 commit 735ecdfaf4e8 'mm/vmscan: avoid split lazyfree THP during "
            "shrink_folio_list()' (Lance Yang, 2024; v7 4/4 on linux-mm) added the PMD-level "
            "discard; before it try_to_unmap_one() always split a PMD mapping first",
            "model"),
        Difference(
            "pageout_shared_check_is_page_mapcount",
            "MADV_PAGEOUT's 'do not interfere with other mappings' test is page_mapcount() of one "
            "page (for a PMD-mapped THP the head page; for a PTE-mapped one the page at hand), not "
            "folio_maybe_mapped_shared(): a THP the parent maps by PMD and a child by PTEs, with "
            "the head COW-ed away in the child, is swapped out by the parent's MADV_PAGEOUT. Found "
            "by corpus/realkernel/cow-swapped_thp_fork_then_swapout.trace (kernel thp_swpout +1)",
            "mm/madvise.c, Linux 6.1 madvise_cold_or_pageout_pte_range(): "
            "`page = pmd_page(orig_pmd); /* Do not interfere with other mappings of this page */ "
            "if (page_mapcount(page) != 1) goto huge_unlock;` and, per PTE, "
            "`if (page_mapcount(page) != 1) break;` / `continue;`; folio_likely_mapped_shared() "
            "replaced it in 6.10, folio_maybe_mapped_shared() in 6.15",
            "model"),
        Difference(
            "pageout_splits_pte_mapped_thp",
            "MADV_PAGEOUT splits every PTE-mapped large folio it meets (if exclusively mapped) and "
            "reclaims the pages one by one; the mid-2026 tree reclaims the folio whole when the "
            "range covers all its PTEs (folio_pte_batch)",
            "mm/madvise.c, Linux 6.1 madvise_cold_or_pageout_pte_range(): "
            "`if (PageTransCompound(page)) { if (page_mapcount(page) != 1) break; ... "
            "if (split_huge_page(page)) ... }` ('Split it if we are only owner')",
            "model"),
        Difference(
            "uffd_wp_swapin_write_dirties",
            "a write fault on an exclusive swap entry that carries uffd-wp dirties (pte_mkdirty, "
            "so soft-dirty on x86) the PTE before write-protecting it for uffd-wp, then traps: the "
            "trapped store leaves the page soft-dirty. The mid-2026 tree neither mkwrites nor "
            "mkdirties when userfaultfd_pte_wp(). Found by "
            "corpus/realkernel/uffdwp-trap_after_clear_refs.trace (kernel soft-dirty 1 on page 5)",
            f"{M61}: `if (!PageKsm(page) && (exclusive || page_count(page) == 1)) {{ if (vmf->flags "
            "& FAULT_FLAG_WRITE) { pte = maybe_mkwrite(pte_mkdirty(pte), vma); ... } }` before "
            "`if (pte_swp_uffd_wp(vmf->orig_pte)) { pte = pte_mkuffd_wp(pte); pte = "
            "pte_wrprotect(pte); }`; mid-2026 condition in research-notes Q1(a) "
            "(`!userfaultfd_pte_wp(vma, pte)` guards pte_mkdirty)",
            "model"),
        Difference(
            "tail_page_ksm_copy",
            "a fault (or swapoff's unuse_pte) on a swap entry whose slot is cached by a large folio "
            "at a tail position copies the page into a new order-0 page (exclusive, dirty, not in "
            "the swap cache) instead of mapping the cached page; only the head page is mapped in "
            "place. So a later MADV_PAGEOUT writes it to a new slot, and two processes faulting "
            "the same shared entry get two private copies. Found by corpus/seeds/pmd_swap-fork.trace "
            "(exclusive 1 in both processes) and corpus/seeds/pmd_swap-cycles.trace (pswpout +1, "
            "a new slot); measured 511 copied pages per THP in ../shared/docs/realkernel.md "
            "section 5",
            "mm/ksm.c, Linux 6.1 ksm_might_need_to_copy(): returns the page only if "
            "`page->index == linear_page_index(vma, address)`, which a THP tail page (index not "
            "maintained before split) fails, else allocates and copies; called by do_swap_page() "
            f"and unuse_pte() ({M61}: `if (folio != swapcache) exclusive = true;`, "
            "`page_add_new_anon_rmap()`); later kernels return early for large folios",
            "model"),
        Difference(
            "read_fault_never_writable",
            "a read fault on an exclusive swap entry maps the page read-only; a later write goes "
            "through do_wp_page() and reuses it",
            f"{M61}: maybe_mkwrite() only `if (vmf->flags & FAULT_FLAG_WRITE)` (research-notes Q9)",
            "none"),
        Difference(
            "sync_io_skips_swapcache",
            "on a SWP_SYNCHRONOUS_IO device a swap-in of a slot with count 1 bypasses the swap cache "
            "(the mid-2026 tree goes through the cache and drops the folio after mapping); both end "
            "with the page mapped, exclusive and not cached",
            f"{M61}: `if (data_race(si->flags & SWP_SYNCHRONOUS_IO) && __swap_count(entry) == 1)` "
            "(research-notes Q9)",
            "none"),
        Difference(
            "swap_free_before_map",
            "swap_free() and should_try_to_free_swap() run before the PTE is set, without the "
            "SWP_SYNCHRONOUS_IO clause; only swap-cache residency differs, which is not compared",
            f"{M61} (research-notes Q9)",
            "none"),
        Difference(
            "swap_slot_cache",
            "freed swap slots sit in per-CPU swap_slots caches and are returned in batches of 64; "
            "order-0 allocation comes from those caches, so absolute offsets and swap usage differ",
            "mm/swap_slots.c, Linux 6.1; measured in ../shared/docs/realkernel.md section 5",
            "observe"),
        Difference(
            "no_uffdio_move",
            "UFFDIO_MOVE does not exist",
            "added in Linux 6.8 (commit adef440691ba 'userfaultfd: UFFDIO_MOVE uABI')",
            "export"),
        Difference(
            "no_zswap",
            "the cloud kernel is built without zswap",
            "Debian config-6.1.0-*-cloud-amd64: '# CONFIG_ZSWAP is not set' "
            "(../shared/docs/realkernel.md section 3)",
            "export"),
    ),
    observable_rules={"exclusive": "mapcount1", "swap_offsets": "structure"},
)

# A kernel with the series applied, checked against the PMD-swap model: nothing known to differ.
MAINLINE_PMD = Profile(
    name="mainline-pmd",
    kernel="a mid-2026 kernel with the PMD swap entry series",
    model="pmd",
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap"}),
    differences=(
        Difference(
            "swap_slot_cache",
            "absolute swap offsets depend on the allocator's per-CPU state",
            "mm/swapfile.c cluster allocator", "observe"),
    ),
    observable_rules={"exclusive": "model", "swap_offsets": "structure"},
)

MAINLINE_LEGACY = Profile(
    name="mainline-legacy",
    kernel="a mid-2026 kernel without the series (the legacy model's own base tree)",
    model="legacy",
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap"}),
    differences=MAINLINE_PMD.differences,
    observable_rules={"exclusive": "model", "swap_offsets": "structure"},
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LINUX_6_1, MAINLINE_LEGACY, MAINLINE_PMD)}
DEFAULT_PROFILE = LINUX_6_1.name


class Linux61LegacyKernel(LegacyKernel):
    """The legacy model with the `model`-handled differences of profile linux-6.1."""

    name = "legacy@linux-6.1"

    def _swap_pte_batch_ok(self, mm, s, fbase, nr) -> bool:
        # swapin_maps_one_page: no "entirely map large folios found in swapcache" batch
        return False

    def _pageout_present_huge_pmd(self, mm, r: int, a: int, b: int):
        # pageout_shared_check_is_page_mapcount: page_mapcount(pmd_page(orig_pmd)) != 1
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        if int(mem.mapcount[head]) + int(mem.entire_mapcount[head]) != 1:
            return []
        if b - a != HPAGE_PMD_NR:
            return None if self.split_folio(head) == 0 else []
        return [head]

    def _pageout_pte_range(self, mm, a: int, b: int) -> list[int]:
        # pageout_splits_pte_mapped_thp + pageout_shared_check_is_page_mapcount, PTE part
        mem = self.mem
        out: list[int] = []
        p = a
        while p < b:
            if mm.pte_kind[p] != PTE_PRESENT or mm.pte_pfn[p] == ZERO_PFN:
                p += 1
                continue
            pfn = int(mm.pte_pfn[p])
            head = int(mem.head[pfn])
            if mem.nr_pages(head) > 1:
                if int(mem.mapcount[pfn]) + int(mem.entire_mapcount[head]) != 1:
                    break
                if self.split_folio(head) != 0:
                    break
                continue  # re-examine p: the folio is small now
            if mem.mapcount[pfn] == 1:
                out.append(head)
            p += 1
        return out

    def _tail_cached(self, slot: int) -> int:
        """pfn caching `slot` if it is a tail page of a large folio (tail_page_ksm_copy), else -1."""
        sw, mem = self.swap, self.mem
        pfn = int(sw.cache[slot])
        if pfn < 0:
            return -1
        head = int(mem.head[pfn])
        return pfn if mem.nr_pages(head) > 1 and pfn != head else -1

    def _ksm_copy_in(self, mm, page: int, src: int, write: bool) -> None:
        """Map a fresh exclusive copy of cached page `src` at `page` in place of its swap entry."""
        mem, sw = self.mem, self.swap
        slot = int(mm.pte_swp_off[page])
        new = mem.alloc_folio(0)
        mem.data[new] = mem.data[src]
        mem.anon_exclusive[new] = True  # page_add_new_anon_rmap()
        mem.mapcount[new] = 1
        mem.dirty[new] = True  # SetPageDirty() in ksm_might_need_to_copy()
        mm.pte_kind[page] = PTE_PRESENT
        mm.pte_pfn[page] = new
        mm.pte_write[page] = False
        mm.pte_dirty[page] = write
        mm.pte_sd[page] = bool(mm.pte_sd[page]) or write  # pte_mkdirty sets soft-dirty
        mm.pte_swp_off[page] = -1
        mm.pte_swp_excl[page] = False
        mm.anonpages += 1
        mm.swapents -= 1
        sw.put(np.array([slot]))  # swap_free(entry); the large folio stays cached

    def do_swap_page(self, mm, vma, page: int, write: bool) -> int:
        src = self._tail_cached(int(mm.pte_swp_off[page]))
        if src >= 0:
            # tail_page_ksm_copy (+ uffd_wp_swapin_write_dirties: pte_mkdirty before the uffd-wp
            # write-protect, exclusive because the copy is fresh)
            self._ksm_copy_in(mm, page, src, write)
            if write:
                return self.do_wp_page(mm, vma, page)
            return O.OK
        # uffd_wp_swapin_write_dirties: 6.1 mkdirties (and so soft-dirties) before the uffd-wp
        # write-protect, whatever do_wp_page() then does
        dirties = write and bool(mm.pte_uw[page]) and bool(mm.pte_swp_excl[page])
        ret = super().do_swap_page(mm, vma, page, write)
        if dirties and mm.pte_kind[page] == PTE_PRESENT:
            mm.pte_dirty[page] = mm.pte_sd[page] = True
        return ret

    def unuse_pte_range(self, mm, a: int, b: int) -> None:
        # tail_page_ksm_copy: unuse_pte() copies tail pages of a cached large folio too
        for p in np.flatnonzero(mm.pte_kind[a:b] == PTE_SWAP) + a:
            src = self._tail_cached(int(mm.pte_swp_off[p]))
            if src >= 0:
                self._ksm_copy_in(mm, int(p), src, False)
                mm.pte_dirty[p] = False  # pte_mkold(mk_pte()): clean, old, read-only
        super().unuse_pte_range(mm, a, b)

    def try_to_unmap(self, head: int) -> None:
        # lazyfree_thp_split_before_discard: TTU_SPLIT_HUGE_PMD splits every PMD mapping of a
        # lazyfree THP first; the PTE walk then discards (or, if re-dirtied, keeps) the pages
        mem = self.mem
        if mem.nr_pages(head) == HPAGE_PMD_NR and not mem.in_swapcache(head):
            for mm in list(self.mms.values()):
                for r in np.flatnonzero((mm.pmd_kind == PMD_HUGE) & (mm.pmd_pfn == head)):
                    self.split_huge_pmd_locked(mm, int(r))
        super().try_to_unmap(head)


def make_model(profile: Profile):
    """A fresh kernel model for `profile`."""
    if profile.model == "pmd":
        from models.pmd_swap import PmdSwapKernel
        return PmdSwapKernel()
    if profile.name == LINUX_6_1.name:
        return Linux61LegacyKernel()
    return LegacyKernel()
