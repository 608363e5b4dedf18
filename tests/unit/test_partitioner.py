"""The partitioner must put a key on the same partition as Kafka's default partitioner."""

from __future__ import annotations

import random
import warnings

import pytest

from services.core.partitioner import murmur2, partition_for

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources.read_text (deprecated).
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

# From Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (testMurmur2).
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


def _keys() -> list[bytes]:
    rng = random.Random(20261120)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"acme-kr", b"\x00", b"\xff" * 7]
    keys += [f"account-{i}".encode() for i in range(150)]
    korean = "가나다라마바사아자차카타파하한빛전자고객계정삼성현대"
    for _ in range(150):
        length = rng.randint(1, 20)
        keys.append("".join(rng.choice(korean) for _ in range(length)).encode())
    keys += ["한빛전자".encode(), "엘지-유플러스".encode(), "고객:😀".encode()]
    keys += [rng.randbytes(rng.randint(0, 64)) for _ in range(50)]
    return keys


KEYS = _keys()


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka_test_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_murmur2_is_a_signed_java_int() -> None:
    values = [murmur2(k) for k in KEYS]
    assert all(-(2**31) <= v < 2**31 for v in values)
    assert any(v < 0 for v in values)
    assert any(v > 0 for v in values)


def test_murmur2_agrees_with_kafka_python() -> None:
    assert len(KEYS) >= 300
    for key in KEYS:
        assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF, key


@pytest.mark.parametrize("partitions", [1, 3, 12, 50])
def test_partition_for_agrees_with_kafka_python(partitions: int) -> None:
    for key in KEYS:
        expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
        assert partition_for(key, partitions) == expected, key


@pytest.mark.parametrize("partitions", [3, 12, 50])
def test_partition_for_spreads_keys(partitions: int) -> None:
    used = {partition_for(k, partitions) for k in KEYS}
    assert used == set(range(partitions))


def test_partition_for_of_a_korean_key_is_that_of_its_utf8_bytes() -> None:
    key = "한빛전자".encode()
    assert partition_for(key, 12) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % 12
    assert partition_for(key, 1) == 0


@pytest.mark.parametrize("partitions", [0, -1, -12])
def test_partition_for_rejects_non_positive_counts(partitions: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        partition_for(b"acme-kr", partitions)
