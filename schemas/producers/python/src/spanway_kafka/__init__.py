"""Publishes OpenTelemetry spans to the spanway Kafka topic (contract version 1).

``KafkaSpanExporter`` is an SDK ``SpanExporter``: one ``otlp_proto`` record per
trace (split at span boundaries over 1,000,000 bytes), keyed by the trace id,
partitioned with Kafka's murmur2, written by an idempotent producer with
``acks=all``. ``export`` returns FAILURE when a record was not acknowledged.
"""

from .exporter import KafkaSpanExporter
from .partition import murmur2, murmur2_partition
from .records import HEADERS, MAX_RECORD_BYTES, SpanTooLarge, encode_request, trace_key, trace_values

__all__ = [
    "HEADERS",
    "MAX_RECORD_BYTES",
    "KafkaSpanExporter",
    "SpanTooLarge",
    "encode_request",
    "murmur2",
    "murmur2_partition",
    "trace_key",
    "trace_values",
]
