#!/usr/bin/env python3
"""Print fingerprints of what the models and the oracle do, to check that a refactor changes nothing.

Run it before and after a change and compare the lines (`diff`); every line is a count plus a
digest, so a difference says which part moved:

  models     every op's result in both models (the correct ones) and each model's final observe()
             over generated sequences: a change in kernel code shows here
  oracle     the same sequences through the runner: divergence signature, ops run, coverage cells
  bugs       each catalogue bug over a fixed set of sequences: how many find it, first finding
  hypothesis the hypothesis engine's sequence test on fixed seeds: the sequences it ran, results
  bytes      fixed byte strings through the byte decoder (changes when the byte format does)

Everything is seeded; nothing depends on the clock. About three minutes on one CPU.
Usage: .venv/bin/python tools/behaviour_fingerprint.py [--traces N] [--bug-traces N]
"""

from __future__ import annotations

import argparse
import hashlib
import random

import numpy as np

from pmdswap_fuzz.fuzz.gen import generate
from pmdswap_fuzz.fuzz.guard import run_guarded
from pmdswap_fuzz.fuzz.runner import make_models
from pmdswap_fuzz.fuzz.trace import format_op
from pmdswap_fuzz.models.bugs import BUGS
from pmdswap_fuzz.models.observe import observe


def _digest(h: hashlib._Hash, *parts: object) -> None:
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(p.tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"|")


def _observation_digest(h: hashlib._Hash, k: object) -> None:
    obs = observe(k)  # type: ignore[arg-type]
    for pid, po in obs.procs.items():
        _digest(h, pid, po.state, po.pmd_level, po.vmas, po.smaps)
    _digest(h, obs.swap_count, obs.swap_cached, obs.swap_free, sorted(obs.vmstat.items()))


def _sequences(n: int, length: int = 32) -> list[list]:
    return [generate(random.Random(seed), length) for seed in range(1, n + 1)]


def models_line(seqs: list[list]) -> str:
    h = hashlib.sha256()
    ops = 0
    for seq in seqs:
        legacy, pmd = make_models()
        for op in seq:
            for k in (legacy, pmd):
                try:
                    _digest(h, k.apply(op))
                except Exception as e:  # noqa: BLE001 - a raising model is part of the behaviour
                    _digest(h, type(e).__name__)
            ops += 1
        _observation_digest(h, legacy)
        _observation_digest(h, pmd)
    return f"models ops {ops} {h.hexdigest()[:16]}"


def oracle_line(seqs: list[list]) -> str:
    h = hashlib.sha256()
    execs = divs = 0
    cells: set = set()
    for seq in seqs:
        res = run_guarded(seq)
        execs += 1
        sig = res.divergence.signature() if res.divergence else None
        divs += sig is not None
        cells |= set(res.cells)
        _digest(h, sig, res.executed, sorted(res.cells))
    return f"oracle execs {execs} divs {divs} cells {len(cells)} {h.hexdigest()[:16]}"


def bugs_line(n: int) -> str:
    h = hashlib.sha256()
    seqs = _sequences(n)
    found = 0
    for name in sorted(BUGS):
        first = None
        hits = 0
        for i, seq in enumerate(seqs):
            res = run_guarded(seq, name)
            if res.divergence is not None:
                hits += 1
                if first is None:
                    first = (i, res.divergence.signature(), res.executed)
        found += first is not None
        _digest(h, name, hits, first)
    return f"bugs found {found} of {len(BUGS)} over {n} sequences {h.hexdigest()[:16]}"


def hypothesis_line(batches: int) -> str:
    import hypothesis

    from pmdswap_fuzz.fuzz.hypo import DivergenceFound, engine_settings, sequence_test

    h = hashlib.sha256()
    execs = 0

    def on_exec(ops, res) -> None:
        nonlocal execs
        execs += 1
        _digest(h, [format_op(op) for op in ops], res.executed,
                res.divergence.signature() if res.divergence else None)

    rnd = random.Random(1)
    for _ in range(batches):
        test = engine_settings("ci", max_examples=10)(sequence_test(None, 32, on_exec))
        test = hypothesis.seed(rnd.getrandbits(64))(test)
        try:
            test()
        except DivergenceFound as e:
            _digest(h, "found", e.divergence.signature())
    return f"hypothesis execs {execs} {h.hexdigest()[:16]}"


def bytes_line(n: int) -> str:
    from pmdswap_fuzz.fuzz.decode import decode

    h = hashlib.sha256()
    rnd = random.Random(1)
    ops = 0
    for _ in range(n):
        seq = decode(rnd.randbytes(rnd.randrange(16, 400)))
        ops += len(seq)
        res = run_guarded(seq)
        _digest(h, [format_op(op) for op in seq], res.executed,
                res.divergence.signature() if res.divergence else None)
    return f"bytes ops {ops} {h.hexdigest()[:16]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=300)
    ap.add_argument("--bug-traces", type=int, default=40)
    ap.add_argument("--hypothesis-batches", type=int, default=10)
    a = ap.parse_args()
    seqs = _sequences(a.traces)
    for line in (models_line(seqs), oracle_line(seqs), bugs_line(a.bug_traces),
                 hypothesis_line(a.hypothesis_batches), bytes_line(a.traces)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
