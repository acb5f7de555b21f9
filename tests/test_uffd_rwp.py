"""userfaultfd RWP (Linux 7.3, UFFD_FEATURE_RWP_ASYNC) in both models: each scenario asserts the
7.3 outcome with the kernel function it comes from (docs/models.md, "userfaultfd RWP"). The
traces corpus/realkernel/linux73-rwp-*.trace exercise the same paths on the real 7.3 kernel.

On an RWP VMA the uffd bit (the model's pte_uw / pmd_uw, pagemap bit 57) marks a PROT_NONE entry:
an access resolves it in async mode (do_uffd_rwp(), do_huge_pmd_uffd_rwp()): the bit goes, the
entry is accessible again, writable if anon-exclusive."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.mm import PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT
from pmdswap_fuzz.models.observe import PRESENT, SWAPPED
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel
from pmdswap_fuzz.fuzz.runner import run_trace
from pmdswap_fuzz.fuzz.trace import parse_trace_bytes
from scenario_helpers import apply, assert_pages, val

N = O.HPAGE_PMD_NR
KERNELS = [LegacyKernel, PmdSwapKernel]


def _protected_thp(k, value: int = 3) -> None:
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 0, N, value=value))
    apply(k, O.UffdRegister(0, 0, N, rwp=True))
    apply(k, O.UffdRwp(0, 0, N, enable=True))


@pytest.mark.parametrize("cls", KERNELS)
def test_rwpprotect_makes_a_present_thp_protnone_and_an_access_resolves_the_pmd(cls):
    """change_huge_pmd(MM_CP_UFFD_RWP): pmd_modify(PAGE_NONE) + pmd_mkuffd (7.3
    mm/huge_memory.c:2742-2817); a read is do_huge_pmd_uffd_rwp() (:2291): the whole PMD is
    resolved, and made writable again (anon-exclusive, can_change_pmd_writable())."""
    k = cls()
    _protected_thp(k)
    mm = k.mms[0]
    assert mm.pmd_kind[0] == PMD_HUGE and mm.pmd_uw[0] and not mm.pmd_write[0]
    assert_pages(k, 0, np.arange(N), state=PRESENT, uffd_wp=True, contents=val(3, np.arange(N)))
    apply(k, O.Fault(0, 3, write=False))
    assert mm.pmd_kind[0] == PMD_HUGE and not mm.pmd_uw[0] and mm.pmd_write[0]
    assert_pages(k, 0, np.arange(N), uffd_wp=False, contents=val(3, np.arange(N)))


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_read_and_write_resolve_one_pte_each(cls):
    """do_uffd_rwp() (7.3 mm/memory.c:6260) on small pages: only the accessed PTE loses the bit;
    the write goes through (the resolved PTE is writable: anon-exclusive)."""
    k = cls()
    apply(k, O.Mmap(0, 0, 16, hugepage=False))
    apply(k, O.Write(0, 0, 16, value=7))
    apply(k, O.UffdRegister(0, 0, 16, rwp=True))
    apply(k, O.UffdRwp(0, 0, 16, enable=True))
    assert not k.mms[0].pte_write[:16].any()
    apply(k, O.Fault(0, 1, write=False))
    apply(k, O.Write(0, 2, 1, value=9))
    assert_pages(k, 0, [1, 2], uffd_wp=False)
    assert_pages(k, 0, [0, 3, 15], uffd_wp=True, contents=val(7, [0, 3, 15]))
    assert_pages(k, 0, [2], contents=val(9, [2]))
    assert k.mms[0].pte_write[1] and k.mms[0].pte_write[2]
    apply(k, O.UffdRwp(0, 8, 8, enable=False))  # MM_CP_UFFD_RWP_RESOLVE + TRY_CHANGE_WRITABLE
    assert_pages(k, 0, np.arange(8, 16), uffd_wp=False)
    assert k.mms[0].pte_write[8:16].all()


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_swapin_selftest(cls):
    """The series selftest's rwp_swapin: map a THP, write it, RWP-protect it, MADV_PAGEOUT, evict
    the swap cache, then access it. The uffd bit stays on the swap entries (legacy: 512 PTE swap
    entries; the series: one swap PMD, pmd_swp_uffd); the swap-in maps PAGE_NONE again
    (do_swap_page() 7.3 mm/memory.c:5171; the series' do_huge_pmd_swap_page() [I]) and the access
    is then resolved: tracked, contents back, the bit gone where the access reached (one page in
    legacy, all 512 under the series' PMD)."""
    k = cls()
    _protected_thp(k)
    apply(k, O.Pageout(0, 0, N))
    apply(k, O.Evict())
    mm = k.mms[0]
    if cls is PmdSwapKernel:
        assert mm.pmd_kind[0] == PMD_SWAP and mm.pmd_uw[0]
    else:
        assert mm.pmd_kind[0] == PMD_TABLE and mm.pte_uw[:N].all()
    assert_pages(k, 0, np.arange(N), state=SWAPPED, uffd_wp=True)
    apply(k, O.Fault(0, 7, write=False))
    assert_pages(k, 0, [7], state=PRESENT, uffd_wp=False, contents=val(3, [7]))
    if cls is PmdSwapKernel:
        assert mm.pmd_kind[0] == PMD_HUGE and not mm.pmd_uw[0]
        assert_pages(k, 0, np.arange(N), state=PRESENT, uffd_wp=False)
    else:
        assert_pages(k, 0, [6, 8], state=SWAPPED, uffd_wp=True)
    apply(k, O.Write(0, 8, 1, value=4))
    assert_pages(k, 0, np.arange(N), contents=np.where(np.arange(N) == 8, val(4, np.arange(N)),
                                                       val(3, np.arange(N))))


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_swapin_maps_protnone_before_the_access_resolves_it(cls):
    """do_swap_page() alone (7.3 mm/memory.c:5175-5189, :5256): rwp_restore keeps the PTE
    PROT_NONE with the bit, no write upgrade and no do_wp_page() even for a write fault; the
    resolution is do_uffd_rwp() on the retry. Checked on the first step: handle_mm_fault once."""
    k = cls()
    apply(k, O.Mmap(0, 0, 4, hugepage=False))
    apply(k, O.Write(0, 0, 4, value=5))
    apply(k, O.UffdRegister(0, 0, 4, rwp=True))
    apply(k, O.UffdRwp(0, 0, 4, enable=True))
    apply(k, O.Pageout(0, 0, 4))
    apply(k, O.Evict())
    mm = k.mms[0]
    vma = mm.find_vma(0)
    assert k.handle_mm_fault(mm, 0, True, False) == O.OK
    assert mm.pte_kind[0] == PTE_PRESENT and mm.pte_uw[0] and not mm.pte_write[0]
    assert not mm.pte_dirty[0]  # pte_mkdirty() is inside the !rwp_restore branch
    assert k.handle_mm_fault(mm, 0, True, False) == O.OK  # the retry: do_uffd_rwp()
    assert not mm.pte_uw[0] and mm.pte_write[0]
    assert vma.uffd_rwp


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_mprotect_keeps_protnone(cls):
    """change_present_ptes(): `if (userfaultfd_rwp(vma) && pte_uffd(ptent)) ptent =
    pte_modify(ptent, PAGE_NONE)` (7.3 mm/mprotect.c:306): mprotect(RW) over a protected range
    leaves it protected; a read-only mprotect of part of a THP splits it, the PTEs keep the bit."""
    k = cls()
    _protected_thp(k)
    apply(k, O.Mprotect(0, 0, 100, O.PROT_READ))
    apply(k, O.Mprotect(0, 0, 100, O.PROT_RW))
    mm = k.mms[0]
    assert mm.pmd_kind[0] == PMD_TABLE
    assert mm.pte_uw[:N].all() and not mm.pte_write[:N].any()
    apply(k, O.Fault(0, 50, write=True))
    assert_pages(k, 0, [50], uffd_wp=False)
    assert_pages(k, 0, [49, 51, 300], uffd_wp=True)


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_fork_child_is_normalised_parent_keeps_it(cls):
    """Without UFFD_FEATURE_EVENT_FORK the child is not registered: __copy_present_ptes()
    normalises the marker (pte_modify to vm_page_prot, pte_clear_uffd, 7.3 mm/memory.c:1184),
    copy_nonpresent_pte() clears the swap entry's (:1104); the parent keeps its bits."""
    k = cls()
    _protected_thp(k)
    apply(k, O.Pageout(0, 0, 100))  # PMD split, 100 swap PTEs, the rest PTE-mapped
    apply(k, O.Fork(0))
    assert_pages(k, 1, np.arange(N), uffd_wp=False)
    assert_pages(k, 0, np.arange(N), uffd_wp=True)
    assert not k.mms[1].find_vma(0).uffd_rwp
    apply(k, O.Fault(1, 200, write=False))
    assert_pages(k, 0, [200], uffd_wp=True)
    apply(k, O.UffdRwp(1, 0, N, enable=True), expect=-errno.ENOENT)


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_register_errors(cls):
    """userfaultfd_register() pre-scan (7.3 mm/userfaultfd.c:3813-3891): a WP<->RWP mode switch
    of a registered VMA is refused with -EBUSY (:3880, after `ret = -EBUSY`: checked on the real
    kernel), RWP on a PROT_NONE VMA is -EINVAL (:3832); mrwprotect_range() (:1199) gives -ENOENT
    for a VMA not RWP-registered and nothing changes; mwriteprotect_range() likewise for RWP."""
    k = cls()
    apply(k, O.Mmap(0, 0, 16, hugepage=False))
    apply(k, O.Mmap(0, 512, 16, hugepage=False))
    apply(k, O.Write(0, 0, 16, value=1))
    apply(k, O.Write(0, 512, 16, value=1))
    apply(k, O.UffdRegister(0, 0, 16))
    apply(k, O.UffdRegister(0, 0, 16, rwp=True), expect=-errno.EBUSY)
    apply(k, O.UffdRegister(0, 512, 16, rwp=True))
    apply(k, O.UffdRegister(0, 512, 16), expect=-errno.EBUSY)
    apply(k, O.UffdRwp(0, 0, 16, enable=True), expect=-errno.ENOENT)
    apply(k, O.UffdWp(0, 512, 16, enable=True), expect=-errno.ENOENT)
    apply(k, O.UffdRwp(0, 0, 1024, enable=True), expect=-errno.ENOENT)  # pre-scan: none changed
    assert_pages(k, 0, np.arange(512, 528), uffd_wp=False)
    apply(k, O.Mmap(0, 1024, 16, hugepage=False))
    apply(k, O.Mprotect(0, 1024, 16, O.PROT_NONE))
    apply(k, O.UffdRegister(0, 1024, 16, rwp=True), expect=-errno.EINVAL)


@pytest.mark.parametrize("cls", KERNELS)
def test_rwp_swapoff_and_uffd_move_rearm(cls):
    """unuse_pte() restores PAGE_NONE for an entry with the bit (7.3 mm/swapfile.c:2515), so it
    still traps after swapoff; UFFDIO_MOVE into an RWP VMA re-arms the moved PTE (7.3
    mm/userfaultfd.c:1365) and the whole moved THP (mm/huge_memory.c:2988)."""
    k = cls()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Mmap(0, 1024, N, hugepage=True))
    apply(k, O.Write(0, 0, N, value=2))
    apply(k, O.UffdRegister(0, 0, N, rwp=True))
    apply(k, O.UffdRegister(0, 1024, N, rwp=True))
    apply(k, O.UffdRwp(0, 0, 16, enable=True))  # part of the THP: split
    apply(k, O.Pageout(0, 0, 16))
    apply(k, O.Evict())
    apply(k, O.Swapoff())
    assert_pages(k, 0, np.arange(16), state=PRESENT, uffd_wp=True)
    assert not k.mms[0].pte_write[:16].any()
    apply(k, O.Fault(0, 3, write=False))
    assert_pages(k, 0, [3], uffd_wp=False)
    apply(k, O.Mmap(0, 1536, N, hugepage=True))
    apply(k, O.Write(0, 1536, N, value=6))
    apply(k, O.UffdMove(0, 1536, 1024, N))
    assert k.mms[0].pmd_kind[2] == PMD_HUGE and k.mms[0].pmd_uw[2] and not k.mms[0].pmd_write[2]
    assert_pages(k, 0, np.arange(1024, 1024 + N), uffd_wp=True, contents=val(6, np.arange(1536, 1536 + N)))


def test_rwp_uffd_wp_unchanged_on_a_wp_vma():
    """The uffd bit on a WP VMA is still uffd-wp: a store traps (UFFD_WP_TRAP), a read does not
    resolve anything (the RWP paths test userfaultfd_rwp(vma) first)."""
    for cls in KERNELS:
        k = cls()
        apply(k, O.Mmap(0, 0, N, hugepage=True))
        apply(k, O.Write(0, 0, N, value=1))
        apply(k, O.UffdRegister(0, 0, N))
        apply(k, O.UffdWp(0, 0, N, enable=True))
        apply(k, O.Fault(0, 5, write=False))
        assert_pages(k, 0, np.arange(N), uffd_wp=True)
        apply(k, O.Fault(0, 5, write=True), expect=O.UFFD_WP_TRAP)


SELFTEST = b"""pmdswap-trace 1
mmap pid=0 start=0 npages=512 hugepage=1
write pid=0 start=0 npages=512 value=3
uffd_register pid=0 start=0 npages=512 rwp=1
uffd_rwp pid=0 start=0 npages=512 enable=1
pageout pid=0 start=0 npages=512
evict
fault pid=0 page=7 write=0
"""


@pytest.mark.parametrize("bug", ["swapout_drops_rwp"])
def test_rwp_catalogue_bugs_seen_by_the_oracle_on_the_selftest(bug):
    """The RWP catalogue bug diverges on the rwp_swapin selftest trace; the correct models agree."""
    ops = parse_trace_bytes(SELFTEST)
    assert run_trace(ops).divergence is None
    assert run_trace(ops, bug=bug).divergence is not None


def test_a_swap_pmd_split_by_zswap_resolves_only_the_page_reached():
    """.ci/run's seeded random campaign (seed 1): with zswap holding the slots the PMD model
    splits the swap PMD (v7 zswap rule) and swaps in one page, so one access resolves one page's
    RWP bit, not 512; the expectation shadow once took the swap PMD before the op for a present
    one and expected all 512 resolved."""
    from pmdswap_fuzz.fuzz.oracle import Oracle
    from pmdswap_fuzz.fuzz.runner import make_models
    ops = [O.Mmap(0, 0, 512), O.ZswapEnable(), O.Fork(0), O.Write(1, 0, 1, value=1),
           O.UffdRegister(1, 0, 512, rwp=True), O.UffdRwp(1, 0, 512, enable=True),
           O.Pageout(1, 0, 512), O.Fault(1, 0, write=False)]
    orc = Oracle(*make_models(None))
    for i, op in enumerate(ops):
        d = orc.step(i, op)
        assert d is None, d.describe()
    for k in (orc.legacy, orc.pmd):
        mm = k.mms[1]
        assert not mm.pte_uw[0] and mm.pte_uw[1:512].all(), k.name
