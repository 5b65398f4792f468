"""Keys, headers, trace grouping, flags and splitting, without a broker."""

import logging
import unittest

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from spanway_kafka import HEADERS, KafkaSpanExporter, SpanTooLarge, trace_key, trace_values
from spanway_kafka.records import group_by_trace, split


def finished_spans(build):
    """Runs `build(tracer)` under a real SDK provider and returns the finished spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("unit.scope", "0.1"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def decode_all(values):
    return [TracesData.FromString(v) for v in values]


def span_names(datas):
    return [s.name for d in datas for rs in d.resource_spans for ss in rs.scope_spans for s in ss.spans]


class Keys(unittest.TestCase):
    def test_lowercase_32_hex_with_leading_zeros(self):
        self.assertEqual(trace_key(0xABCD), b"0000000000000000000000000000abcd")
        self.assertEqual(
            trace_key(0x5B8EFFF798038103D269B633813FC60C), b"5b8efff798038103d269b633813fc60c"
        )

    def test_refuses_invalid_ids(self):
        for bad in (0, 1 << 128):
            with self.assertRaises(ValueError):
                trace_key(bad)

    def test_headers(self):
        self.assertEqual(HEADERS, [("encoding", b"otlp_proto"), ("schema-version", b"1")])


class Grouping(unittest.TestCase):
    def test_one_group_per_trace_in_first_seen_order(self):
        def build(tracer):
            for name in ("a", "b"):
                with tracer.start_as_current_span(name):
                    with tracer.start_as_current_span(name + "-child"):
                        pass

        spans = finished_spans(build)
        groups = group_by_trace(spans)
        self.assertEqual(len(groups), 2)
        self.assertEqual([[s.name for s in g] for g in groups.values()], [["a-child", "a"], ["b-child", "b"]])


class Values(unittest.TestCase):
    def test_small_trace_is_one_value_with_sampled_flag(self):
        def build(tracer):
            with tracer.start_as_current_span("root", kind=SpanKind.SERVER):
                with tracer.start_as_current_span("child"):
                    pass

        sdk_spans = finished_spans(build)
        values = trace_values(sdk_spans)
        self.assertEqual(len(values), 1)
        (data,) = decode_all(values)
        spans = data.resource_spans[0].scope_spans[0].spans
        self.assertEqual([s.name for s in spans], ["child", "root"])
        for span, sdk_span in zip(spans, sdk_spans):
            # bits 0-7: the W3C trace flags (bit 0 = sampled); bit 8: the SDK's "has is_remote".
            self.assertEqual(span.flags & 0xFF, int(sdk_span.get_span_context().trace_flags))
            self.assertEqual(span.flags & 0x101, 0x101)
        self.assertEqual(data.resource_spans[0].scope_spans[0].scope.name, "unit.scope")

    def test_split_at_span_boundaries_keeps_resource_scope_and_order(self):
        def build(tracer):
            with tracer.start_as_current_span("root"):
                for i in range(200):
                    with tracer.start_as_current_span(f"s{i}", attributes={"blob": "y" * 300}):
                        pass

        spans = finished_spans(build)
        limit = 20_000
        values = trace_values(spans, limit)
        self.assertGreater(len(values), 3)
        for value in values:
            self.assertLessEqual(len(value), limit)
        datas = decode_all(values)
        self.assertEqual(span_names(datas), [s.name for s in spans])
        for data in datas:
            rs = data.resource_spans[0]
            attributes = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            self.assertEqual(attributes["service.name"], "unit")
            self.assertEqual(rs.scope_spans[0].scope.name, "unit.scope")
        # Parts are filled, not cut into many tiny records.
        total = sum(len(v) for v in values)
        self.assertLessEqual(len(values), total // (limit * 3 // 4) + 1)

    def test_big_trace_fits_the_contract_limit(self):
        def build(tracer):
            with tracer.start_as_current_span("bulk"):
                for i in range(2_499):
                    with tracer.start_as_current_span(f"row {i}", attributes={"row.data": "x" * 600}):
                        pass

        spans = finished_spans(build)
        values = trace_values(spans)
        self.assertGreaterEqual(len(values), 2)
        self.assertTrue(all(len(v) <= 1_000_000 for v in values))
        self.assertEqual(len(span_names(decode_all(values))), 2_500)

    def test_split_of_several_resources(self):
        data = TracesData()
        for service in ("a", "b"):
            rs = data.resource_spans.add()
            rs.resource.attributes.add(key="service.name").value.string_value = service
            ss = rs.scope_spans.add()
            for i in range(5):
                span = ss.spans.add(name=f"{service}{i}", trace_id=b"\x01" * 16, span_id=bytes([1] * 7 + [i + 1]))
                span.attributes.add(key="blob").value.string_value = "z" * 100
        values = split(data, 400)
        datas = decode_all(values)
        self.assertEqual(span_names(datas), [f"{s}{i}" for s in "ab" for i in range(5)])
        for d in datas:
            for rs in d.resource_spans:
                service = rs.resource.attributes[0].value.string_value
                self.assertTrue(all(s.name.startswith(service) for ss in rs.scope_spans for s in ss.spans))

    def test_single_span_over_the_limit_is_an_error_naming_it(self):
        def build(tracer):
            with tracer.start_as_current_span("huge", attributes={"blob": "h" * 5_000}):
                pass

        with self.assertRaisesRegex(SpanTooLarge, r"span [0-9a-f]{16} of trace [0-9a-f]{32} \('huge'\)"):
            trace_values(finished_spans(build), 1_000)


class ExporterChecks(unittest.TestCase):
    def test_refuses_settings_the_contract_fixes(self):
        for name, value in (("partitioner", "consistent_random"), ("enable.idempotence", False), ("acks", "1")):
            with self.subTest(name=name), self.assertRaisesRegex(ValueError, name):
                KafkaSpanExporter("127.0.0.1:1", "t", config={name: value})

    def test_refuses_bad_arguments(self):
        for kwargs in ({"compression": "brotli"}, {"delivery_timeout_ms": 0}, {"max_record_bytes": 1_000_001}):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                KafkaSpanExporter("127.0.0.1:1", "t", **kwargs)

    def test_span_too_large_fails_the_export_at_once(self):
        def build(tracer):
            with tracer.start_as_current_span("huge", attributes={"blob": "h" * 5_000}):
                pass

        # Nothing listens on port 1; no record is produced, so no broker is needed.
        exporter = KafkaSpanExporter("127.0.0.1:1", "t", max_record_bytes=1_000, delivery_timeout_ms=1_000)
        with self.assertLogs("spanway_kafka", logging.ERROR) as logs:
            self.assertEqual(exporter.export(finished_spans(build)), SpanExportResult.FAILURE)
        self.assertIn("over the record limit", "\n".join(logs.output))


if __name__ == "__main__":
    unittest.main()
