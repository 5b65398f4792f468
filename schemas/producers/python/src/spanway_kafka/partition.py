"""Kafka's Java default partitioner, as the topic contract requires.

The exporter does not call this: it configures librdkafka with
``partitioner=murmur2_random``, which hashes keyed records the same way. It is
here so that tests (and users) can check, without a broker, which partition
a trace id lands on.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, 32-bit, seed 0x9747b28c, as an unsigned int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def murmur2_partition(key: bytes, partition_count: int) -> int:
    """``toPositive(murmur2(key)) % partition_count``, the partition of a keyed record."""
    if partition_count < 1:
        raise ValueError(f"partition count {partition_count} must be at least 1")
    return (murmur2(key) & 0x7FFFFFFF) % partition_count
