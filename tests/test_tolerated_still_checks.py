"""Every tolerated difference leaves something unchecked (TOLERATED.unchecked says what); these
tests show that a bug in that state is still caught by what keeps checking each model on its own.

Each bug is in code both models share (so the differential check cannot see it: both models have
it), applied to both kernels, and each is driven into the state a TOLERATED row creates."""

from __future__ import annotations


from pmdswap_fuzz.fuzz.oracle import Oracle
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel

N = O.HPAGE_PMD_NR


class SwapoutDropsUffdWp:
    """try_to_unmap_one() without pte_swp_mkuffd_wp(): a swap PTE loses the bit."""

    def _install_swap_ptes(self, mm, pages, pfns, slots):
        super()._install_swap_ptes(mm, pages, pfns, slots)
        mm.pte_uw[pages] = False


class SwapinReadsZeros:
    """swap_read_folio() that zero-fills instead of reading the device."""

    def swap_read_folio(self, head):
        super().swap_read_folio(head)
        nr = self.mem.nr_pages(head)
        self.mem.data[head:head + nr] = 0

    def _swapin_order0_batch(self, slots):
        super()._swapin_order0_batch(slots)
        self.mem.data[self.swap.cache[slots]] = 0


class SwapoutDropsSoftDirty:
    """try_to_unmap_one() without pte_swp_mksoft_dirty()."""

    def _install_swap_ptes(self, mm, pages, pfns, slots):
        super()._install_swap_ptes(mm, pages, pfns, slots)
        mm.pte_sd[pages] = False


def _oracle(bug=None) -> Oracle:
    if bug is None:
        return Oracle(LegacyKernel(), PmdSwapKernel())
    legacy = type("Legacy" + bug.__name__, (bug, LegacyKernel), {})
    pmd = type("Pmd" + bug.__name__, (bug, PmdSwapKernel), {})
    return Oracle(legacy(), pmd())


def _run(orc, ops):
    for i, op in enumerate(ops):
        d = orc.step(i, op)
        if d is not None:
            return d
    return None


def test_the_uffd_wp_shadow_catches_a_shared_uffd_wp_bug():
    """Both models lose uffd-wp alike, so the cross-model rule is silent; the shadow is not."""
    ops = [O.Mmap(0, 0, 64, hugepage=False), O.Write(0, 0, 8, value=1), O.UffdRegister(0, 0, 64),
           O.UffdWp(0, 0, 8, True), O.Pageout(0, 0, 8)]
    assert _run(_oracle(), ops) is None
    d = _run(_oracle(SwapoutDropsUffdWp), ops)
    assert d is not None and d.rule == "uffd-wp-expected" and d.op_index == 4


def test_uffd_move_whole_detached_process_still_has_its_uffd_wp_checked():
    """TOLERATED uffd_move_whole detaches the process from every cross-model rule; a later uffd-wp
    loss in shared swap-out code is still reported by the shadow."""
    ops = [O.Mmap(0, 0, 2 * N, hugepage=True), O.Write(0, 0, N, value=1),
           O.UffdRegister(0, 0, 2 * N), O.Pageout(0, 0, N),
           O.UffdMove(0, 0, N, N),  # whole entry moved; legacy -EBUSY: detached
           O.Mmap(0, 3 * N, 64, hugepage=False), O.Write(0, 3 * N, 4, value=2),
           O.UffdRegister(0, 3 * N, 64), O.UffdWp(0, 3 * N, 4, True), O.Pageout(0, 3 * N, 4)]
    orc = _oracle()
    assert _run(orc, ops) is None and 0 in orc.detached
    orc = _oracle(SwapoutDropsUffdWp)
    d = _run(orc, ops)
    assert d is not None and d.rule == "uffd-wp-expected" and 0 in orc.detached


def test_pmd_zapped_tainted_region_still_has_its_contents_checked():
    """TOLERATED pmd_zapped (MADV_FREE of a whole swap PMD) taints the region; a swap-in that loses
    the data there is still a divergence from the expected-contents shadow."""
    ops = [O.Mmap(0, 0, N, hugepage=True), O.Write(0, 0, N, value=1), O.Pageout(0, 0, N),
           O.Free(0, 0, N), O.Write(0, 5, 1, value=2), O.Pageout(0, 0, N), O.Evict(),
           O.Fault(0, 5, write=False)]
    orc = _oracle()
    assert _run(orc, ops) is None and (0, 0) in orc.tainted
    d = _run(_oracle(SwapinReadsZeros), ops)
    assert d is not None and d.rule == "contents-expected"


def test_dirty_swapout_region_still_has_its_written_pages_checked():
    """TOLERATED pmd_swapout_dirty_not_sd makes soft-dirty one-sided in the region; a written page
    whose soft-dirty bit shared swap-out code drops is still reported (written-pages shadow)."""
    ops = [O.Mmap(0, 0, N, hugepage=True), O.Write(0, 0, N, value=1), O.ClearRefs(0),
           O.Pageout(0, 0, N), O.Evict(), O.Write(0, 3, 1, value=2), O.Pageout(0, 0, N)]
    orc = _oracle()
    assert _run(orc, ops) is None and orc.sd_legacy_more[0][:N].all()
    d = _run(_oracle(SwapoutDropsSoftDirty), ops)
    assert d is not None and d.rule == "soft-dirty" and "written since clear_refs" in d.detail
