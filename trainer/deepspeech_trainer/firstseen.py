"""A bounded map from 64-bit fingerprints to 64-bit values: where each audio object was first used.

Preflight checks datasets of any number of rows in a pod with a fixed memory limit, so the duplicate
check keeps its memory bounded: two flat arrays of 8-byte slots (open addressing) instead of a dict of
Python objects (about 16 bytes per entry instead of over 100), and at most `capacity` entries. Once
full, fingerprints are still looked up but no longer added; `full` says so, so the report can say
which part of the data the check covered.
"""

from __future__ import annotations

from array import array

DEFAULT_CAPACITY = 1_500_000  # 2 x 16 MiB of slots at most
_MASK = (1 << 64) - 1
_MIN_SLOTS = 1024


class FirstSeen:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.count = 0
        self.full = False
        self._keys = array("Q", bytes(8 * _MIN_SLOTS))  # 0 marks an empty slot
        self._values = array("Q", bytes(8 * _MIN_SLOTS))

    def first(self, fingerprint: int, value: int) -> int | None:
        """The value stored for `fingerprint`; None if it is new, after storing `value` when there is room."""
        key = (fingerprint & _MASK) or 1
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        while True:
            k = keys[i]
            if k == 0:
                break
            if k == key:
                return self._values[i]
            i = (i + 1) & mask
        if self.count >= self.capacity:
            self.full = True
            return None
        keys[i] = key
        self._values[i] = value
        self.count += 1
        if self.count * 4 > len(keys) * 3:
            self._grow()
        return None

    def _grow(self) -> None:
        old_keys, old_values = self._keys, self._values
        size = len(old_keys) * 2
        keys = array("Q", bytes(8 * size))
        values = array("Q", bytes(8 * size))
        mask = size - 1
        for k, v in zip(old_keys, old_values, strict=True):
            if k:
                i = k & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = k
                values[i] = v
        self._keys, self._values = keys, values
