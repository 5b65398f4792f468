"""The SpanExporter that writes finished spans to Kafka as the topic contract says.

Guarantee: ``export`` returns SUCCESS only when every record of the call was
acknowledged by all in-sync replicas (``acks=all``) within the delivery
timeout. Anything else (a broker that cannot be reached, a record refused, a
span too large to publish, a timeout) is FAILURE, with the reason logged on the
``spanway_kafka`` logger; the SDK's processors do not retry, so a FAILURE means
those spans are not known to be on the topic. Retries within the timeout are
librdkafka's, and the idempotent producer keeps them from duplicating records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .records import HEADERS, MAX_RECORD_BYTES, SpanTooLarge, group_by_trace, trace_key, trace_values

_logger = logging.getLogger("spanway_kafka")

#: Codecs librdkafka accepts for ``compression.type``.
COMPRESSIONS = ("zstd", "lz4", "gzip", "snappy", "none")

# Settings the contract fixes; a user's `config` may not change them.
_FIXED = {
    # librdkafka's default, consistent_random, hashes keys with CRC32; the
    # contract wants Java's murmur2 so every producer puts a trace on the same partition.
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "acks": "all",
}

# How long export waits for delivery reports past the delivery timeout:
# librdkafka reports a timed-out record shortly after message.timeout.ms.
_REPORT_GRACE_S = 2.0


class KafkaSpanExporter(SpanExporter):
    """Publishes each trace of an export call as ``otlp_proto`` records to ``topic``.

    ``bootstrap_servers``: ``host:port[,host:port...]``. ``compression``: one of
    :data:`COMPRESSIONS`. ``delivery_timeout_ms``: how long a record may take to
    be acknowledged (librdkafka ``message.timeout.ms``) before the export fails.
    ``max_record_bytes``: the split threshold, at most the contract's 1,000,000.
    ``config``: further librdkafka settings (TLS, SASL, ``client.id``...); those
    the contract fixes (partitioner, idempotence, acks) are refused.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "jaeger-spans",
        *,
        compression: str = "zstd",
        delivery_timeout_ms: int = 30_000,
        max_record_bytes: int = MAX_RECORD_BYTES,
        config: Mapping[str, Any] | None = None,
    ):
        if not bootstrap_servers:
            raise ValueError("bootstrap_servers is empty: give host:port of at least one broker")
        if not topic:
            raise ValueError("topic is empty")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if delivery_timeout_ms <= 0:
            raise ValueError(f"delivery_timeout_ms {delivery_timeout_ms} must be positive")
        if not 0 < max_record_bytes <= MAX_RECORD_BYTES:
            raise ValueError(f"max_record_bytes {max_record_bytes} must be in 1..{MAX_RECORD_BYTES}")
        extra = dict(config or {})
        for name, value in _FIXED.items():
            if name in extra and str(extra[name]).lower() != str(value).lower():
                raise ValueError(f"config {name}={extra[name]!r} is refused: the topic contract needs {value!r}")

        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "compression.type": compression,
            "message.timeout.ms": delivery_timeout_ms,
            # A value of up to 1,000,000 bytes plus key, headers and batch
            # framing must pass librdkafka's own size check; this is the
            # broker's default message.max.bytes.
            "message.max.bytes": 1_048_588,
            "error_cb": _log_client_error,
        }
        settings.update(extra)
        settings.update(_FIXED)
        self._topic = topic
        self._timeout_s = delivery_timeout_ms / 1000
        self._limit = max_record_bytes
        self._producer = Producer(settings)
        self._lock = threading.Lock()
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._closed:
                _logger.error("export after shutdown: %d spans not published", len(spans))
                return SpanExportResult.FAILURE
            return self._export(spans)

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        deadline = time.monotonic() + self._timeout_s + _REPORT_GRACE_S
        batch = _Deliveries()
        ok = True
        for trace_id, trace_spans in group_by_trace(spans).items():
            try:
                values = trace_values(trace_spans, self._limit)
            except SpanTooLarge as error:
                _logger.error("trace %032x: %d spans not published: %s", trace_id, len(trace_spans), error)
                ok = False
                continue
            key = trace_key(trace_id)
            for value in values:
                ok &= self._produce(key, value, batch, deadline)

        while batch.pending() and time.monotonic() < deadline:
            self._producer.poll(0.05)
        pending = batch.pending()
        if pending:
            _logger.error("%d records not acknowledged within %.1f s", pending, self._timeout_s)
            ok = False
        errors = batch.errors()
        if errors:
            _logger.error("%d records not delivered to %s, first: %s", len(errors), self._topic, errors[0])
            ok = False
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def _produce(self, key: bytes, value: bytes, batch: _Deliveries, deadline: float) -> bool:
        """Queues one record; False (logged) if it could not even be queued."""
        while True:
            try:
                self._producer.produce(
                    self._topic, value=value, key=key, headers=HEADERS, on_delivery=batch.track()
                )
                return True
            except BufferError:
                # The local queue is full: serve delivery reports to make room.
                batch.untrack()
                if time.monotonic() >= deadline:
                    _logger.error("producer queue stayed full: record of trace %s not queued", key.decode())
                    return False
                self._producer.poll(0.1)
            except KafkaException as error:
                batch.untrack()
                _logger.error("record of trace %s (%d bytes) refused: %s", key.decode(), len(value), error)
                return False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Waits until every queued record is acknowledged or failed; False on timeout."""
        return self._producer.flush(timeout_millis / 1000) == 0

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            left = self._producer.flush(self._timeout_s + _REPORT_GRACE_S)
            if left:
                _logger.error("shutdown: %d records still unacknowledged", left)


class _Deliveries:
    """Counts the delivery reports of one export call (they arrive on the polling thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending = 0
        self._errors: list[str] = []

    def track(self):
        with self._lock:
            self._pending += 1

        def on_delivery(error, message):
            with self._lock:
                self._pending -= 1
                if error is not None:
                    partition = message.partition()
                    where = f"partition {partition}: " if partition is not None and partition >= 0 else ""
                    self._errors.append(where + error.str())

        return on_delivery

    def untrack(self) -> None:
        with self._lock:
            self._pending -= 1

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)


def _log_client_error(error) -> None:
    # Connection trouble is reported here while librdkafka keeps retrying; the
    # export fails through the delivery reports, this only says why.
    if error.fatal():
        _logger.error("kafka client fatal error: %s", error.str())
    else:
        _logger.warning("kafka client error: %s", error.str())
