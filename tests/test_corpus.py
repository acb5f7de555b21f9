"""Replay the whole corpus: seeds and minimised regressions pass on the correct models, and every
regression that names a catalogue bug (`# bug: NAME`) still shows that bug's divergence."""

import pathlib
import re

import pytest

from pmdswap_fuzz.fuzz.guard import run_guarded as run_trace
from pmdswap_fuzz.fuzz.trace import parse_trace

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "corpus"
TRACES = sorted(CORPUS.glob("*/*.trace"))
BUG_RE = re.compile(r"^#\s*bug:\s*(\S+)", re.M)


def test_corpus_is_not_empty():
    assert len(list(CORPUS.glob("seeds/*.trace"))) >= 20


@pytest.mark.parametrize("path", TRACES, ids=[f"{p.parent.name}/{p.stem}" for p in TRACES])
def test_trace_replays_clean(path):
    ops = parse_trace(path.read_text(), str(path))
    res = run_trace(ops)
    assert res.divergence is None, res.divergence.describe()
    assert res.executed == len(ops)


REGRESSIONS = [p for p in TRACES if BUG_RE.search(p.read_text())]


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_regression_still_catches_its_bug(path):
    text = path.read_text()
    bug = BUG_RE.search(text).group(1)
    ops = parse_trace(text, str(path))
    res = run_trace(ops, bug=bug)
    assert res.divergence is not None, f"{path.name} no longer catches bug {bug}"
