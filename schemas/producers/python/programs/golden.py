"""Publishes the golden otlp_proto traces through the kit, one export call per trace.

    run golden --brokers HOST:PORT --topic TOPIC --testdata DIR

Each DIR/<name>.otlp_proto.value.bin is decoded into the SDK's finished-span
data (ReadableSpan) with every field the value carries, then exported with
KafkaSpanExporter. A reader of TOPIC must then find the same key, headers,
partition and spans as DIR/<name>.otlp_proto.json states. Exits non-zero
unless every export succeeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from spanway_kafka import KafkaSpanExporter

_KINDS = {
    PbSpan.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
    PbSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    PbSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    PbSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    PbSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    PbSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_STATUS = {
    PbStatus.STATUS_CODE_UNSET: StatusCode.UNSET,
    PbStatus.STATUS_CODE_OK: StatusCode.OK,
    PbStatus.STATUS_CODE_ERROR: StatusCode.ERROR,
}
# Span.flags bit 9: the parent (or link) context came from another process.
_IS_REMOTE = 0x200


# The SDK derives dropped counts from its bounded containers, which would clean
# the values (bytes become str, maps are refused); these carry the counts as given.
class _Span(ReadableSpan):
    def __init__(self, dropped, **kwargs):
        super().__init__(**kwargs)
        self._dropped = dropped

    @property
    def dropped_attributes(self):
        return self._dropped[0]

    @property
    def dropped_events(self):
        return self._dropped[1]

    @property
    def dropped_links(self):
        return self._dropped[2]


class _Event(Event):
    def __init__(self, dropped, **kwargs):
        super().__init__(**kwargs)
        self._dropped = dropped

    @property
    def dropped_attributes(self):
        return self._dropped


class _Link(Link):
    def __init__(self, dropped, context, attributes):
        super().__init__(context, attributes)
        self._dropped = dropped

    @property
    def dropped_attributes(self):
        return self._dropped


def value_of(any_value: AnyValue):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(value_of(v) for v in any_value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def attributes(key_values) -> dict:
    return {kv.key: value_of(kv.value) for kv in key_values}


def context(trace_id: bytes, span_id: bytes, flags: int, trace_state: str) -> SpanContext:
    return SpanContext(
        trace_id=int.from_bytes(trace_id, "big"),
        span_id=int.from_bytes(span_id, "big"),
        is_remote=bool(flags & _IS_REMOTE),
        trace_flags=TraceFlags(flags & 0xFF),
        trace_state=TraceState.from_header([trace_state]) if trace_state else None,
    )


def readable_spans(data: TracesData) -> list[ReadableSpan]:
    spans = []
    for rs in data.resource_spans:
        resource = Resource(attributes(rs.resource.attributes), schema_url=rs.schema_url or None)
        for ss in rs.scope_spans:
            scope = None
            if ss.HasField("scope"):
                scope = InstrumentationScope(
                    ss.scope.name,
                    ss.scope.version or None,
                    ss.schema_url or None,
                    attributes(ss.scope.attributes) or None,
                )
            for s in ss.spans:
                span_context = context(s.trace_id, s.span_id, s.flags & 0xFF, s.trace_state)
                parent = None
                if s.parent_span_id:
                    # The OTLP span keeps only the parent's id and whether it was remote.
                    parent = context(s.trace_id, s.parent_span_id, s.flags & _IS_REMOTE, "")
                events = [
                    _Event(
                        e.dropped_attributes_count,
                        name=e.name,
                        attributes=attributes(e.attributes),
                        timestamp=e.time_unix_nano,
                    )
                    for e in s.events
                ]
                links = [
                    _Link(
                        link.dropped_attributes_count,
                        context(link.trace_id, link.span_id, link.flags, link.trace_state),
                        attributes(link.attributes),
                    )
                    for link in s.links
                ]
                status = Status(_STATUS[s.status.code], s.status.message or None)
                spans.append(
                    _Span(
                        (s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count),
                        name=s.name,
                        context=span_context,
                        parent=parent,
                        resource=resource,
                        attributes=attributes(s.attributes),
                        events=events,
                        links=links,
                        kind=_KINDS[s.kind],
                        status=status,
                        start_time=s.start_time_unix_nano,
                        end_time=s.end_time_unix_nano,
                        instrumentation_scope=scope,
                    )
                )
    return spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,...]")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--testdata", required=True, type=Path, help="folder of the golden records")
    parser.add_argument("--timeout-ms", type=int, default=30_000, help="delivery timeout")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="golden: %(name)s: %(message)s")

    manifests = sorted(args.testdata.glob("*.otlp_proto.json"))
    if not manifests:
        print(f"golden: no *.otlp_proto.json in {args.testdata}", file=sys.stderr)
        return 1
    exporter = KafkaSpanExporter(args.brokers, args.topic, delivery_timeout_ms=args.timeout_ms)
    failed = 0
    for manifest_path in manifests:
        name = manifest_path.name[: -len(".json")]
        manifest = json.loads(manifest_path.read_text())
        value = (args.testdata / f"{name}.value.bin").read_bytes()
        spans = readable_spans(TracesData.FromString(value))
        result = exporter.export(spans)
        status = "ok" if result == SpanExportResult.SUCCESS else "FAILED"
        print(f"{name}: key {manifest['key']}: {len(spans)} spans exported: {status}", flush=True)
        failed += result != SpanExportResult.SUCCESS
    exporter.shutdown()
    if failed:
        print(f"golden: {failed} of {len(manifests)} exports failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
