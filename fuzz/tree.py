"""Snapshot trees: the random engine's executions share their first ops.

A tree starts from one seeded generator state and one fresh pair of models with their oracle. It
runs `stride` ops (or a few more: a move's chain of ops is never cut), then forks `fanout` children: each child is a deep copy of the models, the oracle
and the generator's shadow, with its own generator seed, and runs the next `stride` ops; and so on
until the sequences are `length` ops long. Every leaf is one execution: a distinct `length`-op
sequence with the full oracle after every op, exactly as `run_trace` would run it from scratch
(tests/test_tree.py checks that a leaf replayed from scratch ends in the same observations). What
the tree saves is the work on the shared prefixes: with stride 8 and fanout 4, a 32-op execution
costs about 10.7 op steps and one state copy instead of 32 op steps.

A divergence (or a model exception) inside a node ends that branch: it is reported once, with the
ops from the root to the diverging op, and counts as one execution; its subtree is not grown (every
leaf below would repeat the same finding). The last child of a node reuses the node's own state, so
a node with `fanout` children costs `fanout - 1` copies.

Deterministic: the same seed gives the same tree, leaf by leaf.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Callable

from .gen import extend, start
from .guard import crash_divergence
from .oracle import Oracle
from . import runner
from .runner import RunResult

__all__ = ["explore_tree", "STRIDE", "FANOUT"]

STRIDE = 8  # ops run per node
FANOUT = 4  # children per inner node


def explore_tree(seed: int, length: int, bug: str | None, on_exec: Callable[[list, RunResult], None],
                 deadline: float | None = None, stride: int = STRIDE, fanout: int = FANOUT,
                 step_counter: list | None = None) -> int:
    """Grow one tree from `seed`; `on_exec(ops, result)` is called once per execution (leaf, or
    branch ended by a divergence). Stops growing at `deadline` (time.monotonic()). Returns the op
    steps actually run (the work done, for ops/s figures); `step_counter[0]` follows it as it
    grows, for a caller that stops the tree by raising from `on_exec`."""
    if stride < 1 or fanout < 1:
        raise ValueError("stride and fanout must be at least 1")
    legacy, pmd = runner.make_models(bug)  # through the module: tests swap in broken models
    g = start(random.Random(seed))
    steps = step_counter if step_counter is not None else [0]
    steps[:] = [0]

    def grow(oracle: Oracle, g, done: int) -> None:
        # run at least `stride` ops, and every op the last move emitted (a move's chain of ops is
        # not cut at a node boundary, and each child starts with moves of its own seed)
        ops = extend(g, min(length, done + stride))
        target = min(length, len(ops))
        for i in range(done, target):
            steps[0] += 1
            try:
                div = oracle.step(i, ops[i])
            except Exception as e:  # noqa: BLE001 - a model crash is a finding (see guard.py)
                on_exec(ops[:i + 1], crash_divergence(list(ops[:i + 1]), bug, e))
                return
            if div is not None:
                on_exec(ops[:i + 1], RunResult(div, i + 1, oracle.cells))
                return
        if target >= length:
            on_exec(ops[:length], RunResult(None, length, oracle.cells))
            return
        seeds = [g.r.getrandbits(64) for _ in range(fanout)]
        for c, child_seed in enumerate(seeds):
            if deadline is not None and time.monotonic() >= deadline:
                return
            if c < fanout - 1:
                child_oracle, child_g = copy.deepcopy((oracle, g))
            else:  # the last child takes the node's own state: no copy
                child_oracle, child_g = oracle, g
            child_g.r = random.Random(child_seed)
            grow(child_oracle, child_g, target)

    grow(Oracle(legacy, pmd), g, 0)
    return steps[0]
