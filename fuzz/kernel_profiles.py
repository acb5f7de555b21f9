"""Kernel-version profiles: the ONE list of how a real kernel's legacy behaviour differs from the model.

The legacy model (models/legacy.py + models/mm.py) models the series' base tree (mm-new, mid-2026),
whose closest installable kernel is Linux 7.3 (Debian experimental: it has the series' prep patches
and none of the core series). A real kernel checked with `pmdswap-fuzz kernel-check` may be older.
A profile names that kernel and the Debian package that ships it (`package`, fetched by
fuzz/kernel_fetch.py when kernel-check is given no --kernel), says which ops it can express
(`capabilities`, read by fuzz/export_c.py) and lists every known difference, each with its source
and how the comparison handles it:

  * "model"   - the profile's model (`make_model`) is the legacy model with this one function
                overridden to the old behaviour (a subclass here; models/ is not changed).
                Each override asks `self.old(key)`, so a model can leave one difference out:
                `kernel-check --prove-differences` does that for each in turn and lists the
                traces that fail without it (every such difference must have one);
  * "observe" - the observable is derived differently for this kernel (fuzz/kernelcheck.py reads
                `observable_rules`);
  * "export"  - the op cannot be expressed; export_c raises ExportError;
  * "none"    - not visible in any compared observable; listed so nobody has to rediscover it.

fuzz/kernelcheck.py tolerates exactly these and prints the profile's name with every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import errno

import numpy as np

from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.memory import ZERO_PFN
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.mm import PMD_HUGE, PTE_PRESENT, PTE_SWAP
from pmdswap_fuzz.models.ops import HPAGE_PMD_NR

from .kernel_fetch import KERNEL_PACKAGES, KernelPackage

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
    package: KernelPackage | None = None  # the Debian kernel package; None: bring your own kernel

    def has(self, key: str) -> bool:
        return any(d.key == key for d in self.differences)


M61 = "mm/memory.c, Linux 6.1.y (docs/research-notes.md source M61: unifreq/linux-6.1.y @3f562c740933)"

LINUX_6_1 = Profile(
    name="linux-6.1",
    kernel="Linux 6.1 (Debian 12 linux-image-*-cloud-amd64)",
    package=KERNEL_PACKAGES["linux-6.1"],
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
            "before the loop over the 512 subpages; measured under qemu on Debian's 6.1 cloud "
            "kernel (swap PTEs read 0x40800000..., bit 56 clear)",
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
            "a new slot); measured under qemu on Debian's 6.1 cloud kernel: 511 copied pages per "
            "THP",
            "mm/ksm.c, Linux 6.1 ksm_might_need_to_copy(): returns the page only if "
            "`page->index == linear_page_index(vma, address)`, which a THP tail page (index not "
            "maintained before split) fails, else allocates and copies; called by do_swap_page() "
            f"and unuse_pte() ({M61}: `if (folio != swapcache) exclusive = true;`, "
            "`page_add_new_anon_rmap()`); later kernels return early for large folios",
            "model"),
        Difference(
            "split_dirty_pmd_not_soft_dirty",
            "a split of a dirty present PMD gives soft-dirty PTEs the other way round from 7.3. "
            "A direct split (reclaim's TTU_SPLIT_HUGE_PMD, partial mprotect/munmap/DONTNEED) "
            "leaves the PTEs clean and soft-dirty only if the PMD was (the folio is marked dirty "
            "instead), where 7.3's pte_mkdirty() (which on x86 also sets _PAGE_SOFT_DIRTY) makes "
            "all 512 soft-dirty even after clear_refs. The folio split (split_huge_page(), "
            "through migration entries: partial MADV_PAGEOUT) makes them soft-dirty when the PMD "
            "was dirty, where 7.3 keeps only the PMD's soft-dirty bit. Found by "
            "corpus/realkernel/softdirty-across_swap.trace (after clear_refs, pageout splits the "
            "THP: model soft-dirty 1 on pages 0-511, kernel 0) and "
            "corpus/realkernel/linux73-m2-split_dirty_pmd_softdirty.trace (partial pageout after "
            "clear_refs: model 0 on pages 512-1023, kernel 1)",
            "mm/huge_memory.c, Linux 6.1 __split_huge_pmd_locked(): commit 624a2c94f5b7 'Partly "
            "revert \"mm/thp: carry over dirty bit when thp splits on pmd\"' (6.1-rc) dropped "
            "`if (dirty) entry = pte_mkdirty(entry);` from the direct branch, e833bc503405 'mm/thp: "
            "re-apply mkdirty for small pages after split' (6.2) put it back; the freeze branch "
            "sets make_migration_entry_dirty() and 6.1's mm/migrate.c remove_migration_pte() does "
            "`if (is_migration_entry_dirty(entry)) pte = pte_mkdirty(pte);` with no soft-dirty "
            "clear ('mm: remember young/dirty bit for page migrations', 6.1). Linux 7.3: "
            "mm/huge_memory.c __split_huge_pmd_locked() `/* NOTE: this may set soft-dirty too on "
            "some archs */ if (dirty) entry = pte_mkdirty(entry);`, mm/migrate.c:393-398 "
            "`else pte = pte_clear_soft_dirty(pte);`",
            "model"),
        Difference(
            "no_pt_reclaim",
            "MADV_DONTNEED of a whole 2 MiB keeps the emptied PTE table (no CONFIG_PT_RECLAIM), so "
            "the next fault maps a 4 KiB page, not a THP. Found by "
            "corpus/realkernel/linux73-m1-dontneed_frees_table.trace and "
            "corpus/realkernel/linux73-m6-adjacent_mmaps_merge.trace (the fault after the "
            "DONTNEED: model a THP, kernel one page)",
            "CONFIG_PT_RECLAIM (mm/Kconfig) and zap_pte_range()'s reclaim_pt were added in Linux "
            "6.14 ('mm: pgtable: reclaim empty PTE page in madvise(MADV_DONTNEED)', Qi Zheng); "
            "Linux 7.3 mm/madvise.c madvise_dontneed_single_vma() `.reclaim_pt = true`",
            "model"),
        Difference(
            "no_multi_vma_mremap_move",
            "a same-size MREMAP_FIXED move must lie inside one VMA: no VMA at the start is "
            "-EFAULT at once (the syscall's vma_lookup()); otherwise mremap_to() unmaps the "
            "destination first (do_munmap()) and vma_to_resize() then fails with -EFAULT when the "
            "range runs past the VMA's end, so the destination stays unmapped; 7.3 moves every "
            "VMA of the range (remap_move()). Found by "
            "corpus/realkernel/linux73-m7-multi_vma_move.trace (op 6: model 0, kernel -EFAULT "
            "and the destination unmapped; op 7: a hole at the start unmaps nothing)",
            f"{M61.replace('mm/memory.c', 'mm/mremap.c')}: SYSCALL mremap `vma = vma_lookup(mm, "
            "addr); if (!vma) { ret = -EFAULT; goto out; }`, then mremap_to() `if (flags & MREMAP_FIXED) "
            "{ ret = do_munmap(mm, new_addr, new_len, uf_unmap_early); ... }` before `vma = "
            "vma_to_resize(addr, old_len, new_len, flags)`, which returns -EFAULT for `!vma` and "
            "`old_len > vma->vm_end - addr`; the multi-VMA move came with 'mm/mremap: permit "
            "mremap() move of multiple VMAs' (Lorenzo Stoakes, 2025); Linux 7.3 mm/mremap.c:1933 "
            "remap_move()",
            "model"),
        Difference(
            "no_split_zero_page_remap",
            "splitting an anonymous THP keeps its zero-filled subpages as anonymous pages; from "
            "6.12 on they are mapped to the shared zero page (and freed). Found by "
            "corpus/realkernel/linux73-m3-zero_page_on_split.trace (partial pageout after the "
            "split: pages 0-2,4-255 model present on the zero page, kernel swapped)",
            "added in Linux 6.12 ('mm: remap unused subpages to shared zeropage when splitting "
            "isolated thp', Usama Arif): Linux 7.3 mm/huge_memory.c __folio_split() "
            "remap_page(..., TTU_USE_SHARED_ZEROPAGE), mm/migrate.c "
            "try_to_map_unused_to_zeropage()",
            "model"),
        Difference(
            "no_zeromap",
            "a zero-filled folio is written to the swap device like any other (PSWPOUT, "
            "THP_SWPOUT, under writeback); from 6.12 on it only gets a zero mark. Found by "
            "corpus/realkernel/linux73-m4-zeromap.trace (pageout of a read-faulted, all-zero THP: "
            "model pswpout +0, kernel +512)",
            "added in Linux 6.12 ('mm: store zero pages to be swapped out in a bitmap', Usama "
            "Arif); Linux 7.3 mm/page_io.c swap_writeout() is_folio_zero_filled() -> "
            "swap_zeromap_folio_set()",
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
            "mm/swap_slots.c, Linux 6.1; measured under qemu on Debian's 6.1 cloud kernel",
            "observe"),
        Difference(
            "unfaulted_target_refuses_merge",
            "is_mergeable_anon_vma() checks list_is_singular() on the VMA merged into, and an "
            "unfaulted VMA's anon_vma_chain is empty: a range with an anon_vma never merges into "
            "a neighbour without one (7.3 does, copying the anon_vma, unless the range is a fork "
            "child's). Found by corpus/realkernel/linux73-evict_mlock_merges_vmas.trace (op 6: the "
            "child's unfaulted VMA and its faulted neighbour stay apart through evict's mlock "
            "pass, so the unfaulted one keeps VM_SOFTDIRTY clear: model 1, kernel 0)",
            "mm/mmap.c, Linux 6.1: is_mergeable_anon_vma() `if ((!anon_vma1 || !anon_vma2) && "
            "(!vma || list_is_singular(&vma->anon_vma_chain))) return 1; return anon_vma1 == "
            "anon_vma2;`, called as is_mergeable_anon_vma(anon_vma, prev->anon_vma, prev) by "
            "can_vma_merge_after(); fixed in April 2025 (Lorenzo Stoakes, 'Fixes: 965f55dea0e3 "
            "(\"mmap: avoid merging cloned VMAs\")': \"broken for ~15 years\")",
            "model"),
        Difference(
            "vm_softdirty_not_sticky",
            "VM_SOFTDIRTY is ignored when VMAs are compared for a merge but is not sticky: the "
            "merged VMA has the flags of the VMA the op changed (mprotect_fixup(), mlock_fixup(), "
            "madvise_update_vma() and userfaultfd_register() set vm_flags = newflags after "
            "vma_merge()), or, for mremap's copy_vma(), of the neighbour it merged into "
            "(vma_merge() keeps prev's, else next's flags); mmap_region() still sets VM_SOFTDIRTY "
            "on a new or expanded VMA. 7.3 ORs it in (VMA_STICKY_FLAGS). Found by "
            "corpus/realkernel/linux73-mremap_self_merge_softdirty.trace (op 3: the copy merges "
            "with its source and a soft-dirty neighbour: model 1, kernel 0 for both parts)",
            "mm/mmap.c, Linux 6.1: is_mergeable_vma() `if ((vma->vm_flags ^ vm_flags) & "
            "~VM_SOFTDIRTY) return 0;`, vma_merge() -> __vma_adjust() keeps the surviving VMA's "
            "vm_flags, copy_vma() passes vma->vm_flags to vma_merge(); mm/mprotect.c "
            "mprotect_fixup() and mm/mlock.c mlock_fixup() write newflags to the merged VMA; "
            "VMA_STICKY_FLAGS came with Linux 6.18/6.19 [I] (7.3 include/linux/mm.h)",
            "model"),
        Difference(
            "no_uffdio_move",
            "UFFDIO_MOVE does not exist",
            "added in Linux 6.8 (commit adef440691ba 'userfaultfd: UFFDIO_MOVE uABI')",
            "export"),
        Difference(
            "no_zswap",
            "the cloud kernel is built without zswap",
            "Debian config-6.1.0-*-cloud-amd64: '# CONFIG_ZSWAP is not set' "
            "(boot/config-6.1.0-*-cloud-amd64 in the package)",
            "export"),
    ),
    observable_rules={"exclusive": "mapcount1", "swap_offsets": "structure"},
)

S73 = "Linux 7.3-rc7 (Debian linux-source-7.3 7.3~rc7-1~exp1)"
C73 = "Debian config of linux-image-7.3-cloud-amd64 7.3~rc7-1~exp1 (usr/lib/modules/*/config)"

PAGEMAP_EXCLUSIVE_7X = Difference(
    "pagemap_exclusive_is_mapcount",
    "pagemap bit 56 (PM_MMAP_EXCLUSIVE) is the kernel's own rule, not the model's `exclusive` "
    "(PageAnonExclusive / the swap entry's exclusive bit): `folio_precise_page_mapcount(folio, "
    "page) == 1` (the page's _mapcount + 1, plus the folio's entire mapcount if large) for present "
    "PTEs of a normal page (not the shared zero page: vm_normal_page() is NULL), for a PMD-mapped "
    "THP the head page's count for all 512 pages, and never for swap entries. The comparison "
    "derives it from the model's mapcounts (rule mapcount1, fuzz/kernelcheck.py "
    "_model_exclusive); the model itself is not changed",
    f"{S73}: fs/proc/task_mmu.c:1977-1981 __folio_page_mapped_exclusively() "
    "(`if (IS_ENABLED(CONFIG_PAGE_MAPCOUNT)) return folio_precise_page_mapcount(folio, page) == 1;`"
    "), :2038 `page = vm_normal_page(vma, addr, pte)` and :2076-2080 only `if ((flags & "
    "PM_PRESENT) && ...)` in pte_to_pagemap_entry(); :2109 `page = pmd_page(pmd)` set once and "
    ":2146-2152 the 512-page loop of pagemap_pmd_range_thp() testing that same `page`; "
    "fs/proc/internal.h:186-197 folio_precise_page_mapcount(); CONFIG_PAGE_MAPCOUNT=y in "
    f"{C73}",
    "observe")

SWAP_OFFSETS_7X = Difference(
    "swap_slot_cache",
    "absolute swap offsets differ: order-0 slots come from the per-CPU / global cluster "
    "`next` offsets, the model takes the lowest free slot; compared by structure only",
    f"{S73}: mm/swapfile.c:120-126 percpu_swap_cluster, :964 alloc_swap_scan_cluster(), :1098 "
    "cluster_alloc_swap_entry(); measured under qemu on Debian's 7.2.13 and 7.3-rc7 kernels",
    "observe")

# The series' base tree, the legacy model's own behaviour: no model differences; only how pagemap
# bit 56 and swap offsets are observed.
LINUX_7_3 = Profile(
    name="linux-7.3",
    kernel="Linux 7.3 (Debian experimental/sid linux-image-7.3*-cloud-amd64)",
    package=KERNEL_PACKAGES["linux-7.3"],
    model="legacy",
    # CONFIG_ZSWAP=y; CONFIG_USERFAULTFD_RWP=y (mm/Kconfig def_bool y on x86-64, and in the cloud
    # kernel's config): UFFDIO_REGISTER_MODE_RWP, UFFDIO_RWPROTECT, UFFD_FEATURE_RWP[_ASYNC]
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap", "uffd_rwp"}),
    differences=(PAGEMAP_EXCLUSIVE_7X, SWAP_OFFSETS_7X),
    observable_rules={"exclusive": "mapcount1", "swap_offsets": "structure"},
)

# A kernel with the series applied, checked against the PMD-swap model: nothing known to differ.
MAINLINE_PMD = Profile(
    name="mainline-pmd",
    kernel="a mid-2026 kernel with the PMD swap entry series",
    model="pmd",
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap", "uffd_rwp"}),
    differences=(
        Difference(
            "swap_slot_cache",
            "absolute swap offsets depend on the allocator's per-CPU state",
            "mm/swapfile.c cluster allocator", "observe"),
    ),
    observable_rules={"exclusive": "model", "swap_offsets": "structure"},
)

S72 = "Linux 7.2.13 (Debian linux-source-7.2 7.2.13-1)"

# One step older than the base tree: 7.3's differences from 7.2 that the legacy model shows.
LINUX_7_2 = Profile(
    name="linux-7.2",
    kernel="Linux 7.2 (Debian sid linux-image-7.2.*-cloud-amd64)",
    package=KERNEL_PACKAGES["linux-7.2"],
    model="legacy",
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap"}),  # CONFIG_ZSWAP=y
    differences=(
        PAGEMAP_EXCLUSIVE_7X,
        SWAP_OFFSETS_7X,
        Difference(
            "swapin_free_swapcache_by_refcount",
            "do_swap_page() tries folio_free_swap() after mapping on a write fault only when the "
            "folio's refcount says the faulting process is its only user, and tests that after "
            "clearing FAULT_FLAG_WRITE if it mapped the page writable: so an exclusive entry "
            "swapped in by a write stays in the swap cache (its slot allocated, the folio dirty) "
            "until reclaim or a later COW, where 7.3 frees the cache at once (`FAULT_FLAG_WRITE && "
            "exclusive`), and a non-exclusive sole user frees it here rather than in "
            "do_wp_page(). Only swap-cache residency and which slot a later swap-out uses differ; "
            "neither is compared (offsets by structure only). The writable test also accepted "
            "`folio_ref_count(folio) == 1` (a folio outside the swap cache: only KSM's copy, "
            "which the model does not have)",
            f"{S72}: mm/memory.c:4513-4540 should_try_to_free_swap() (`folio_ref_count(folio) == "
            "(extra_refs + folio_nr_pages(folio))`), :5051-5062 (`exclusive || "
            "folio_ref_count(folio) == 1`, `vmf->flags &= ~FAULT_FLAG_WRITE`), :5099; "
            f"{S73}: mm/memory.c:4648-4675 (`return (fault_flags & FAULT_FLAG_WRITE) && "
            "exclusive;`), :5188 `if (exclusive)`, :5234",
            "none"),
        Difference(
            "no_uffd_rwp",
            "no userfaultfd read-write protection (UFFDIO_REGISTER_MODE_RWP, UFFDIO_RWPROTECT): "
            "7.3 generalises the uffd-wp PTE bit (pte_uffd_wp -> pte_uffd) for it. The exporter "
            "refuses `uffd_register rwp=1` and `uffd_rwp` for this profile (no \"uffd_rwp\" "
            "capability), as UFFDIO_MOVE on 6.1; uffd-wp behaves the same",
            f"{S73}: include/uapi/linux/userfaultfd.h:293 UFFDIO_REGISTER_MODE_RWP, :114 "
            "UFFDIO_RWPROTECT, mm/userfaultfd.c:1167 mrwprotect_range(), CONFIG_USERFAULTFD_RWP=y; "
            f"absent from {S72}",
            "none"),
        Difference(
            "mmlist_after_parent",
            "a forked child that copies swap entries joins swapoff's mm list right after its "
            "parent; 7.3 (prep patch mm_prepare_for_swap_entries()) adds it at the list head. "
            "Only the order in which swapoff visits processes changes",
            f"{S72}: mm/memory.c:956-963 copy_nonpresent_pte() `list_add(&dst_mm->mmlist, "
            f"&src_mm->mmlist)`; {S73}: mm/internal.h:1624-1632 mm_prepare_for_swap_entries() "
            "`list_add(&mm->mmlist, &init_mm.mmlist)`, called at mm/memory.c:1022 and "
            "mm/rmap.c:2174",
            "none"),
        Difference(
            "swap_io_unbatched",
            "swap writes are submitted one bio per folio as reclaim goes; 7.3 batches them in a "
            "swap_io_ctx submitted at the end of shrink_folio_list() (synchronous devices at "
            "once). Only the timing of writeback changes, which the model does not have (the "
            "exporter waits for writeback before `evict`)",
            f"{S72}: mm/page_io.c:251 swap_writeout(), :449 swap_writepage_bdev_async(); "
            f"{S73}: mm/page_io.c:204 swap_writeout(ctx, folio), :684 swap_write_submit()",
            "none"),
        Difference(
            "lazyfree_batch_off_with_uffd_wp",
            "try_to_unmap_one() does not batch the PTEs of a lazyfree large folio in a uffd-wp "
            "VMA (one PTE at a time); the outcome (every clean PTE discarded) is the same",
            f"{S72}: mm/rmap.c:1972 folio_unmap_pte_batch() `if (userfaultfd_wp(vma)) return "
            f"1;`, dropped in {S73} (mm/rmap.c:1954)",
            "none"),
    ),
    observable_rules={"exclusive": "mapcount1", "swap_offsets": "structure"},
)

MAINLINE_LEGACY = Profile(
    name="mainline-legacy",
    kernel="a mid-2026 kernel without the series (the legacy model's own base tree)",
    model="legacy",
    capabilities=frozenset({"split_huge_pages", "uffdio_move", "zswap", "uffd_rwp"}),
    differences=MAINLINE_PMD.differences,
    observable_rules={"exclusive": "model", "swap_offsets": "structure"},
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LINUX_7_3, LINUX_7_2, LINUX_6_1,
                                                     MAINLINE_LEGACY, MAINLINE_PMD)}
DEFAULT_PROFILE = LINUX_7_3.name


class Linux61LegacyKernel(LegacyKernel):
    """The legacy model with the `model`-handled differences of profile linux-6.1."""

    name = "legacy@linux-6.1"

    def __init__(self, without: frozenset = frozenset()) -> None:
        """`without`: difference keys to leave out (7.3 behaviour there), for
        `kernel-check --prove-differences`."""
        unknown = set(without) - {d.key for d in LINUX_6_1.differences if d.handling == "model"}
        if unknown:
            raise ValueError(f"not a model-handled difference of linux-6.1: {sorted(unknown)}")
        self.without = frozenset(without)
        super().__init__()

    def old(self, key: str) -> bool:
        """Does this model follow 6.1 in difference `key`?"""
        return key not in self.without

    def op_mremap(self, op: O.MremapMove) -> int:
        # no_multi_vma_mremap_move: mremap_to() unmaps the destination, then vma_to_resize()
        if not self.old("no_multi_vma_mremap_move"):
            return super().op_mremap(op)
        mm = self.mms[op.pid]
        lo, hi = self._range(op)
        d, dend = op.dst, op.dst + op.npages
        if hi > O.VA_PAGES or dend > O.VA_PAGES or (d < hi and lo < dend):
            return super().op_mremap(op)  # the checks before the unmap are 7.3's
        v = mm.find_vma(lo)
        if v is None:
            return -errno.EFAULT  # the syscall's vma_lookup(mm, addr), before anything
        if hi <= v.end:
            return super().op_mremap(op)  # inside one VMA: the move itself is 7.3's
        self.do_vmi_munmap(mm, d, dend)
        return -errno.EFAULT

    _merging_copy = False  # inside move_vma(): copy_vma()'s merge keeps the neighbour's flags

    def move_vma(self, mm, a: int, b: int, new: int) -> None:
        self._merging_copy = True
        try:
            super().move_vma(mm, a, b, new)
        finally:
            self._merging_copy = False

    @staticmethod
    def _merge_sides(a, b, lo: int, hi: int):
        """(src, tgt) as 6.1's vma_merge() sees a pair: the VMA the op changed (in [lo, hi); the
        right one when both are) and the one it merges into."""
        return (b, a) if b.start < hi and b.end > lo else (a, b)

    def _vmas_mergeable(self, a, b, lo: int, hi: int) -> bool:
        # unfaulted_target_refuses_merge: is_mergeable_anon_vma(src's, tgt's, tgt) needs tgt's
        # anon_vma_chain singular, and an unfaulted tgt's is empty
        if not super()._vmas_mergeable(a, b, lo, hi):
            return False
        if not self.old("unfaulted_target_refuses_merge"):
            return True
        src, tgt = self._merge_sides(a, b, lo, hi)
        return not (src.anon_vma and not tgt.anon_vma)

    def _merged_softdirty(self, a, b, lo: int, hi: int) -> bool:
        # vm_softdirty_not_sticky: the changed VMA's own flags (vm_flags = newflags after the
        # merge), or for copy_vma() the neighbour's it merged into (prev's, else next's)
        if not self.old("vm_softdirty_not_sticky"):
            return super()._merged_softdirty(a, b, lo, hi)
        if self._merging_copy:
            return a.softdirty if a.start < lo else b.softdirty
        return self._merge_sides(a, b, lo, hi)[0].softdirty

    def _swap_pte_batch_ok(self, mm, s, fbase, nr) -> bool:
        # swapin_maps_one_page: no "entirely map large folios found in swapcache" batch
        if not self.old("swapin_maps_one_page"):
            return super()._swap_pte_batch_ok(mm, s, fbase, nr)
        return False

    def _pageout_present_huge_pmd(self, mm, r: int, a: int, b: int):
        # pageout_shared_check_is_page_mapcount: page_mapcount(pmd_page(orig_pmd)) != 1
        if not self.old("pageout_shared_check_is_page_mapcount"):
            return super()._pageout_present_huge_pmd(mm, r, a, b)
        mem = self.mem
        head = int(mm.pmd_pfn[r])
        if int(mem.mapcount[head]) + int(mem.entire_mapcount[head]) != 1:
            return []
        if b - a != HPAGE_PMD_NR:
            return None if self.split_folio(head) == 0 else []
        return [head]

    def _pageout_pte_range(self, mm, a: int, b: int) -> list[int]:
        # pageout_splits_pte_mapped_thp + pageout_shared_check_is_page_mapcount, PTE part
        if not self.old("pageout_splits_pte_mapped_thp"):
            return super()._pageout_pte_range(mm, a, b)
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
                if (int(mem.mapcount[pfn]) + int(mem.entire_mapcount[head]) != 1
                        if self.old("pageout_shared_check_is_page_mapcount")
                        else self.folio_maybe_mapped_shared(head)):
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
        src = self._tail_cached(int(mm.pte_swp_off[page])) if self.old("tail_page_ksm_copy") \
            else -1
        if src >= 0:
            # tail_page_ksm_copy (+ uffd_wp_swapin_write_dirties: pte_mkdirty before the uffd-wp
            # write-protect, exclusive because the copy is fresh)
            self._ksm_copy_in(mm, page, src, write)
            if write:
                return self.do_wp_page(mm, vma, page)
            return O.OK
        # uffd_wp_swapin_write_dirties: 6.1 mkdirties (and so soft-dirties) before the uffd-wp
        # write-protect, whatever do_wp_page() then does
        dirties = self.old("uffd_wp_swapin_write_dirties") and write and bool(mm.pte_uw[page]) \
            and bool(mm.pte_swp_excl[page])
        ret = super().do_swap_page(mm, vma, page, write)
        if dirties and mm.pte_kind[page] == PTE_PRESENT:
            mm.pte_dirty[page] = mm.pte_sd[page] = True
        return ret

    def unuse_pte_range(self, mm, a: int, b: int) -> None:
        # tail_page_ksm_copy: unuse_pte() copies tail pages of a cached large folio too
        swapped = np.flatnonzero(mm.pte_kind[a:b] == PTE_SWAP) + a
        for p in swapped if self.old("tail_page_ksm_copy") else ():
            src = self._tail_cached(int(mm.pte_swp_off[p]))
            if src >= 0:
                self._ksm_copy_in(mm, int(p), src, False)
                mm.pte_dirty[p] = False  # pte_mkold(mk_pte()): clean, old, read-only
        super().unuse_pte_range(mm, a, b)

    def _split_present_huge_pmd(self, mm, r: int, freeze: bool = False) -> None:
        # split_dirty_pmd_not_soft_dirty: the direct split has no pte_mkdirty() in 6.1 (clean
        # PTEs, soft-dirty only from the PMD; the folio is still marked dirty); the freeze split's
        # remove_migration_pte() does pte_mkdirty() for a dirty entry, soft-dirty on x86
        if not self.old("split_dirty_pmd_not_soft_dirty"):
            return super()._split_present_huge_pmd(mm, r, freeze)
        sd, dirty = bool(mm.pmd_sd[r]), bool(mm.pmd_dirty[r])
        super()._split_present_huge_pmd(mm, r, freeze)
        sl = slice(r * HPAGE_PMD_NR, (r + 1) * HPAGE_PMD_NR)
        if freeze:
            mm.pte_sd[sl] = sd or dirty
        else:
            mm.pte_sd[sl] = sd
            mm.pte_dirty[sl] = False

    def madvise_dontneed_single_vma(self, mm, lo: int, hi: int) -> None:
        # no_pt_reclaim: zap only; an emptied PTE table stays
        if not self.old("no_pt_reclaim"):
            return super().madvise_dontneed_single_vma(mm, lo, hi)
        self.unmap_page_range(mm, lo, hi)

    def remap_unused_to_zeropage(self, head: int) -> None:
        # no_split_zero_page_remap: zero-filled subpages stay anonymous after a split
        if not self.old("no_split_zero_page_remap"):
            return super().remap_unused_to_zeropage(head)
        return None

    def swap_writeout(self, head: int) -> None:
        # no_zeromap: every folio is written (the 7.3 model's swap_writeout() without its
        # is_folio_zero_filled() branch)
        if not self.old("no_zeromap"):
            return super().swap_writeout(head)
        self._swap_writepage(head)

    def try_to_unmap(self, head: int) -> None:
        # lazyfree_thp_split_before_discard: TTU_SPLIT_HUGE_PMD splits every PMD mapping of a
        # lazyfree THP first; the PTE walk then discards (or, if re-dirtied, keeps) the pages
        mem = self.mem
        if self.old("lazyfree_thp_split_before_discard") and mem.nr_pages(head) == HPAGE_PMD_NR \
                and not mem.in_swapcache(head):
            for mm in list(self.mms.values()):
                for r in np.flatnonzero((mm.pmd_kind == PMD_HUGE) & (mm.pmd_pfn == head)):
                    self.split_huge_pmd_locked(mm, int(r))
        super().try_to_unmap(head)


def make_model(profile: Profile, without: frozenset = frozenset()):
    """A fresh kernel model for `profile`; `without`: model-handled differences to leave out."""
    if without and profile.name != LINUX_6_1.name:
        raise ValueError(f"profile {profile.name} has no model-handled differences")
    if profile.model == "pmd":
        from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel
        return PmdSwapKernel()
    if profile.name == LINUX_6_1.name:
        return Linux61LegacyKernel(without)
    return LegacyKernel()
