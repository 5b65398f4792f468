"""The murmur2 partitioner against Kafka's own test vectors and the golden manifests."""

import json
import unittest
from pathlib import Path

from spanway_kafka import murmur2, murmur2_partition, trace_key

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"


class Murmur2(unittest.TestCase):
    def test_matches_kafka_utils_murmur2(self):
        # Values of Kafka's UtilsTest (Java ints, so signed).
        cases = {
            b"21": -973932308,
            b"foobar": -790332482,
            b"a-little-bit-long-string": -985981536,
            b"a-little-bit-longer-string": -1486304829,
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
            b"abc": 479470107,
        }
        for data, signed in cases.items():
            with self.subTest(data=data):
                self.assertEqual(murmur2(data), signed & 0xFFFFFFFF)

    def test_golden_partitions(self):
        manifests = sorted(TESTDATA.glob("*.otlp_proto.json"))
        self.assertGreaterEqual(len(manifests), 2, f"golden manifests missing in {TESTDATA}")
        for path in manifests:
            manifest = json.loads(path.read_text())
            key = manifest["key"].encode()
            self.assertEqual(trace_key(int(manifest["key"], 16)), key)
            for count, partition in manifest["partition_for_partition_count"].items():
                with self.subTest(manifest=path.name, partitions=count):
                    self.assertEqual(murmur2_partition(key, int(count)), partition)

    def test_refuses_zero_partitions(self):
        with self.assertRaises(ValueError):
            murmur2_partition(b"k", 0)


if __name__ == "__main__":
    unittest.main()
