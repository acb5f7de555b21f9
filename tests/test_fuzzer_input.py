"""libFuzzer's bytes drive the generator (fuzz.fuzzer_input, fuzz.choices): issue 16 item 1 for atheris."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pmdswap_fuzz.fuzz.decode import MAX_OPS, decode, encode
from pmdswap_fuzz.fuzz.fuzzer_input import (FLAT, RAW_MAGIC, RawInputError, ops_from_input, seed_input,
                               tag_raw, untag_raw)
from pmdswap_fuzz.fuzz.gen import generate
from pmdswap_fuzz.fuzz.loader import load_input
from pmdswap_fuzz.fuzz.trace import parse_trace_bytes

REPO = Path(__file__).resolve().parent.parent


def _bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def test_every_byte_string_is_a_sequence_and_the_same_bytes_the_same_ops():
    rng = random.Random(3)
    for n in list(range(0, 40)) + [100, 400, 1200]:
        data = _bytes(rng, n)
        ops = ops_from_input(data, 32)
        assert ops == ops_from_input(data, 32)
        if data and data[0] != FLAT:
            assert len(ops) == 32  # short inputs go on from the tail PRNG: always a whole sequence


def test_a_changed_byte_changes_the_generators_decisions_not_everything():
    """The bytes are the generator's decisions in order: changing the last byte the sequence used
    keeps the ops decided before it, and a change of a used byte often changes the sequence (not
    always: the low byte of a random() or a chance() landing on the same side decide nothing)."""
    from pmdswap_fuzz.fuzz.choices import ByteChoices
    from pmdswap_fuzz.fuzz.gen import generate_from_choices
    rng = random.Random(5)
    data = bytes([0]) + _bytes(rng, 600)
    ch = ByteChoices(data[1:])
    base = generate_from_choices(ch, 32)
    assert base == ops_from_input(data, 32) and ch.tail is None
    used = ch.pos  # payload bytes the 32 ops consumed
    last = bytearray(data)
    last[used] ^= 0xFF  # data[0] is the form byte
    assert ops_from_input(bytes(last), 32)[:24] == base[:24]
    changed = 0
    for pos in rng.sample(range(1, used + 1), 40):
        m = bytearray(data)
        m[pos] ^= 0xFF
        changed += ops_from_input(bytes(m), 32) != base
    assert changed >= 10


def test_bytes_and_the_seeded_prng_drive_the_same_generator():
    """Op mix of 300 sequences from random bytes against 300 from the random engine's PRNG: the
    same steering, so the distributions are close (total variation distance under 0.1)."""
    rng = random.Random(11)
    a, b = Counter(), Counter()
    for i in range(300):
        a.update(op.name for op in ops_from_input(bytes([0]) + _bytes(rng, 300), 32))
        b.update(op.name for op in generate(random.Random(i), 32))
    ta, tb = sum(a.values()), sum(b.values())
    tv = sum(abs(a[k] / ta - b[k] / tb) for k in set(a) | set(b)) / 2
    assert tv < 0.1, (tv, a.most_common(8), b.most_common(8))


def test_text_traces_seed_the_corpus_in_the_flat_form():
    seeds = sorted((REPO / "corpus" / "seeds").glob("*.trace"))
    assert seeds
    for path in seeds:
        ops = parse_trace_bytes(path.read_bytes(), str(path))
        assert ops_from_input(seed_input(ops)) == ops[:MAX_OPS], path.name


def test_a_saved_raw_input_replays_its_ops_and_an_untagged_one_keeps_the_flat_meaning(tmp_path):
    rng = random.Random(7)
    data = bytes([4]) + _bytes(rng, 200)
    raw = tag_raw(data, 24)
    assert raw.startswith(RAW_MAGIC)
    assert untag_raw(raw) == (data, 24)
    p = tmp_path / "finding.bin"
    p.write_bytes(raw)
    assert load_input(p)[0] == ops_from_input(data, 24)
    old = tmp_path / "old.bin"  # an input saved before the tag: the flat decoder, as ever
    flat = encode(generate(random.Random(1), 10))
    old.write_bytes(flat)
    assert load_input(old)[0] == decode(flat)


def test_a_raw_input_of_another_generator_is_refused_naming_the_trace(tmp_path):
    data = bytes([0]) + bytes(range(100))
    raw = bytearray(tag_raw(data))
    raw[len(RAW_MAGIC) + 3] ^= 0xFF  # another generator's fingerprint
    with pytest.raises(RawInputError):
        untag_raw(bytes(raw))
    p = tmp_path / "x.bin"
    p.write_bytes(bytes(raw))
    r = subprocess.run([sys.executable, "-m", "fuzz", "repro", str(p)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "made by generator" in r.stderr and ".trace saved beside it" in r.stderr
