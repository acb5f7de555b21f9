"""Per-page masks of a process's VMA list, memoised by the list (shared by observe and invariants)."""

from __future__ import annotations

import numpy as np

from .mm import MM
from .ops import VA_PAGES

__all__ = ["VmaMasks"]


class VmaMasks:
    """Per-page masks that depend only on the VMA list: computed once per distinct list (a pure
    memo, read-only arrays, so nothing an op does can change a cached mask)."""

    _cache: dict = {}
    _LIMIT = 4096  # distinct VMA lists kept; the memo is cleared past this bound

    def __init__(self, key: tuple) -> None:
        inside = np.zeros(VA_PAGES, np.int8)
        vm_sd = np.zeros(VA_PAGES, bool)
        for start, end, softdirty in key:
            inside[start:end] = 1
            vm_sd[start:end] = softdirty  # VM_SOFTDIRTY shows on every page
        self.inside = inside  # int8: 1 inside a VMA (NONE), 0 outside (UNMAPPED)
        self.vm_sd = vm_sd
        self.tracked = ~vm_sd  # soft-dirty tracking on: outside VMAs, or a VMA without VM_SOFTDIRTY
        self.outside = inside == 0
        self.starts = np.array([s for s, _, _ in key], np.intp)
        self.ends = np.array([e for _, e, _ in key], np.intp)
        for arr in (inside, vm_sd, self.tracked, self.outside, self.starts, self.ends):
            arr.setflags(write=False)

    @classmethod
    def of(cls, mm: MM) -> "VmaMasks":
        key = tuple((v.start, v.end, v.softdirty) for v in mm.vmas)
        m = cls._cache.get(key)
        if m is None:
            if len(cls._cache) >= cls._LIMIT:
                cls._cache.clear()
            m = cls._cache[key] = cls(key)
        return m
