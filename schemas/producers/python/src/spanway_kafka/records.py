"""Turns finished spans into the record keys, headers and values of the topic contract.

Pure logic, no I/O: the exporter calls it, the unit tests drive it without a broker.

Each trace becomes one ``TracesData`` value, encoded by the SDK's own OTLP encoder
(``encode_spans``); a value over the size limit is cut at span boundaries into
several values, each a valid ``TracesData`` that repeats the resource and scope of
the spans it holds. A span that alone is over the limit cannot be published:
:class:`SpanTooLarge` names it, and the exporter reports the export as failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.trace import ReadableSpan

#: The largest record value the contract allows, before compression.
MAX_RECORD_BYTES = 1_000_000

#: Headers of every record this kit writes (values are UTF-8, no terminator).
HEADERS = [("encoding", b"otlp_proto"), ("schema-version", b"1")]

# Upper bounds of what a span, a ScopeSpans or a ResourceSpans adds around its
# own bytes when it is nested in its parent: a one-byte tag and a length varint
# (at most 5 bytes for anything under 4 GiB), plus the nested Resource or
# InstrumentationScope message's own tag and length.
_NESTING = 6
_HEADER_NESTING = 2 * _NESTING


class SpanTooLarge(ValueError):
    """A single span encodes to more than the record limit; it cannot be published."""


def trace_key(trace_id: int) -> bytes:
    """The record key: the trace id as 32 lowercase hex characters, UTF-8."""
    if not 0 < trace_id < 1 << 128:
        raise ValueError(f"trace id {trace_id:#x} is not a valid non-zero 128-bit id")
    return format(trace_id, "032x").encode("ascii")


def group_by_trace(spans: Iterable[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    """The spans of one export call by trace id, in the order they first appear."""
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        traces.setdefault(span.get_span_context().trace_id, []).append(span)
    return traces


def encode_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The SDK's OTLP encoding of ``spans``, with the W3C trace flags restored.

    ``encode_spans`` (1.45) writes only the ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE``
    bits into ``Span.flags`` and ``Link.flags`` and leaves bits 0-7, which OTLP
    reserves for the W3C trace flags (bit 0 = sampled), at zero. Readers of the
    topic take the sampled flag from there, so it is put back from each span's
    and link's context.
    """
    request = encode_spans(spans)
    flags_by_span: dict[bytes, ReadableSpan] = {
        span.get_span_context().span_id.to_bytes(8, "big"): span for span in spans
    }
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for pb_span in scope_spans.spans:
                sdk_span = flags_by_span.get(pb_span.span_id)
                if sdk_span is None:
                    continue
                pb_span.flags |= int(sdk_span.get_span_context().trace_flags) & 0xFF
                for pb_link, link in zip(pb_span.links, sdk_span.links):
                    pb_link.flags |= int(link.context.trace_flags) & 0xFF
    return request


def trace_values(spans: Sequence[ReadableSpan], limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """The record values for the spans of one trace, each at most ``limit`` bytes."""
    # ExportTraceServiceRequest and TracesData both hold `repeated ResourceSpans
    # resource_spans = 1` and nothing else, so their encodings are the same bytes.
    data = TracesData()
    data.resource_spans.extend(encode_request(spans).resource_spans)
    return split(data, limit)


def split(data: TracesData, limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """``data`` encoded, cut at span boundaries into values of at most ``limit`` bytes.

    Spans keep their order; consecutive spans of one resource and scope stay
    together. Raises :class:`SpanTooLarge` when one span cannot fit on its own.
    """
    whole = data.SerializeToString()
    if len(whole) <= limit:
        return [whole]

    # (resource index, scope index, span) for every span, in order.
    entries = [
        (ri, si, span)
        for ri, rs in enumerate(data.resource_spans)
        for si, ss in enumerate(rs.scope_spans)
        for span in ss.spans
    ]
    values: list[bytes] = []
    chunk: list[tuple[int, int, PbSpan]] = []
    estimate = 0
    for entry in entries:
        cost = _span_cost(data, entry, chunk[-1] if chunk else None)
        if chunk and estimate + cost > limit:
            values.extend(_encode_checked(data, chunk, limit))
            chunk, estimate = [], 0
            cost = _span_cost(data, entry, None)
        chunk.append(entry)
        estimate += cost
    if chunk:
        values.extend(_encode_checked(data, chunk, limit))
    return values


def _span_cost(data: TracesData, entry, previous) -> int:
    """An upper bound of the bytes ``entry`` adds to a chunk whose last entry is ``previous``."""
    ri, si, span = entry
    cost = span.ByteSize() + _NESTING
    if previous is None or previous[0] != ri:
        rs = data.resource_spans[ri]
        cost += rs.resource.ByteSize() + len(rs.schema_url.encode()) + _HEADER_NESTING
    if previous is None or previous[:2] != (ri, si):
        ss = data.resource_spans[ri].scope_spans[si]
        cost += ss.scope.ByteSize() + len(ss.schema_url.encode()) + _HEADER_NESTING
    return cost


def _encode_checked(data: TracesData, chunk, limit: int) -> list[bytes]:
    """Encodes a chunk, halving it should the estimate have been short."""
    value = _build(data, chunk).SerializeToString()
    if len(value) <= limit:
        return [value]
    if len(chunk) == 1:
        span = chunk[0][2]
        raise SpanTooLarge(
            f"span {span.span_id.hex()} of trace {span.trace_id.hex()} ({span.name!r}) "
            f"encodes to {len(value)} bytes, over the record limit of {limit} bytes"
        )
    middle = len(chunk) // 2
    return _encode_checked(data, chunk[:middle], limit) + _encode_checked(data, chunk[middle:], limit)


def _build(data: TracesData, chunk) -> TracesData:
    """A TracesData holding the spans of ``chunk`` under copies of their resource and scope."""
    out = TracesData()
    current_rs = current_ss = None
    last = None
    for ri, si, span in chunk:
        if last is None or last[0] != ri:
            src = data.resource_spans[ri]
            current_rs = out.resource_spans.add()
            if src.HasField("resource"):
                current_rs.resource.CopyFrom(src.resource)
            current_rs.schema_url = src.schema_url
            last = None
        if last is None or last != (ri, si):
            src = data.resource_spans[ri].scope_spans[si]
            current_ss = current_rs.scope_spans.add()
            if src.HasField("scope"):
                current_ss.scope.CopyFrom(src.scope)
            current_ss.schema_url = src.schema_url
        current_ss.spans.append(span)
        last = (ri, si)
    return out
