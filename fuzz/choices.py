"""A source of choices for the generator made of bytes: libFuzzer's input drives `fuzz.gen`.

The generator asks a `random.Random` for its decisions (random(), randrange(), randint(), choice()).
`ByteChoices` answers the same calls from a byte string, in order, so every byte string is a
sequence of the generator's decisions and a mutation of the bytes is a mutation of decisions: the
steering (pageout then evict then fault, fork after swap-out...) holds for every input, and
libFuzzer's coverage guidance works on top of it.

Total: when the bytes run out, the answers go on from a PRNG seeded with a hash of the bytes, so a
short input still gives a whole sequence (deterministic for the same bytes). Ending the sequence
there instead was measured worse: from an empty corpus libFuzzer's inputs grow a few bytes per
mutation, and after 30 s its corpus's sequences had a median of 16 of the 32 ops (of 59 inputs,
none reached the catalogue bug clear_soft_dirty_skips_swap_pmd, which 3 of 40 random 32-op
byte strings reach).
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["ByteChoices"]


class ByteChoices:
    """The subset of random.Random that fuzz.gen calls, answered from `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.tail: random.Random | None = None  # the PRNG after the bytes (made when needed)

    def _take(self, n: int) -> int:
        """The next n bytes as a little-endian integer; from the tail PRNG once they are used up."""
        if self.pos + n > len(self.data):
            if self.tail is None:
                self.pos = len(self.data)
                self.tail = random.Random(hashlib.sha256(self.data).digest())
            return self.tail.getrandbits(8 * n)
        v = int.from_bytes(self.data[self.pos:self.pos + n], "little")
        self.pos += n
        return v

    def _below(self, n: int) -> int:
        """An integer in [0, n): one byte for n <= 256, two up to 65536, else four."""
        if n <= 1:
            return 0
        width = 1 if n <= 0x100 else 2 if n <= 0x10000 else 4
        return self._take(width) % n

    def random(self) -> float:
        return self._take(2) / 0x10000

    def randrange(self, start: int, stop: int | None = None) -> int:
        if stop is None:
            start, stop = 0, start
        if stop <= start:
            raise ValueError(f"empty range for randrange({start}, {stop})")
        return start + self._below(stop - start)

    def randint(self, a: int, b: int) -> int:
        return self.randrange(a, b + 1)

    def choice(self, seq):
        if not seq:
            raise IndexError("cannot choose from an empty sequence")
        return seq[self._below(len(seq))]
