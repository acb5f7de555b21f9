"""What libFuzzer's bytes mean: the one place the atheris engine's inputs become ops.

The first byte picks the form, the rest is its payload:

    0x01   the flat op decoder (fuzz.decode) of the payload: how text traces become seed inputs
           (`encode` is invertible, the generator is not), and mutations of a seed stay one-field
           edits of its ops
    other  the generator (fuzz.gen), the payload its stream of choices (fuzz.choices): every input
           is a steered sequence, a mutation is a change of the generator's decisions; libFuzzer's
           own inputs are this form 255 times in 256

A raw input saved as an artifact (`.bin`) starts with `RAW_MAGIC`, its form, the sequence length it
was generated with and, for the generator form, the generator's fingerprint: the generator changes
as it learns new steering, so such a file replays only on the generator that made it; elsewhere the
loader refuses it, naming the `.trace`
saved beside it, instead of quietly running other ops. A file without the magic is the older flat
form and decodes as it always did.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from pmdswap_fuzz.models import ops as O

from .choices import ByteChoices
from .decode import MAX_OPS, decode, encode

__all__ = ["FLAT", "GENERATED", "RAW_MAGIC", "generator_fingerprint", "ops_from_input",
           "seed_input", "tag_raw", "untag_raw", "RawInputError"]

GENERATED, FLAT = 0, 1
RAW_MAGIC = b"\x00pmdswap-raw\x00"
_FP_LEN = 8
DEFAULT_LENGTH = 32  # ops per generated sequence, as `run --length`


@functools.cache
def generator_fingerprint() -> bytes:
    """8 bytes of SHA-256 over the sources that give generated inputs their meaning (read once:
    they do not change under a running process)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("gen.py", "choices.py", "decode.py"):
        h.update((here / name).read_bytes())
    h.update(repr([cls.name for cls in O.OPS]).encode())
    return h.digest()[:_FP_LEN]


def ops_from_input(data: bytes, length: int = DEFAULT_LENGTH) -> list[O.Op]:
    """The ops of one libFuzzer input (total: every byte string is an op list, maybe empty); a
    generated sequence has at most `length` ops, a flat one at most MAX_OPS."""
    from .gen import generate_from_choices  # gen imports decode; keep this module light
    if not data:
        return []
    if data[0] == FLAT:
        return decode(data[1:])
    return generate_from_choices(ByteChoices(data[1:]), length)


def seed_input(ops: list[O.Op]) -> bytes:
    """A text trace as a libFuzzer input (the flat form)."""
    return bytes([FLAT]) + encode(ops[:MAX_OPS])


def tag_raw(data: bytes, length: int = DEFAULT_LENGTH) -> bytes:
    """A libFuzzer input as saved in the artifacts: magic, form, length, generator fingerprint."""
    form = FLAT if data and data[0] == FLAT else GENERATED
    fp = generator_fingerprint() if form == GENERATED else b"\0" * _FP_LEN
    return RAW_MAGIC + bytes([form]) + length.to_bytes(2, "little") + fp + data


class RawInputError(Exception):
    """A tagged raw input this tree cannot give its meaning to."""


def untag_raw(data: bytes) -> tuple[bytes, int] | None:
    """(libFuzzer input, generated length) of a saved raw input, or None when `data` carries no
    tag (the older flat form). Raises RawInputError for a generated input of another generator."""
    if not data.startswith(RAW_MAGIC):
        return None
    head = len(RAW_MAGIC)
    if len(data) < head + 3 + _FP_LEN:
        raise RawInputError("truncated raw-input header")
    form = data[head]
    length = int.from_bytes(data[head + 1:head + 3], "little")
    fp, payload = data[head + 3:head + 3 + _FP_LEN], data[head + 3 + _FP_LEN:]
    if form == GENERATED and fp != generator_fingerprint():
        raise RawInputError(f"made by generator {fp.hex()}, this tree's is "
                            f"{generator_fingerprint().hex()}: its bytes mean other ops here; the "
                            ".trace saved beside it replays the same ops")
    return payload, max(1, length)
