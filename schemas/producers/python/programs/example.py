"""A small two-service program traced with the OpenTelemetry Python SDK and the kit.

    run example --brokers HOST:PORT --topic TOPIC --run-id ID --out FILE
                [--traces N] [--big-trace] [--timeout-ms MS] [--compression C]

Services `frontend` and `payments` each have their own TracerProvider
(resource service.name=<svc>, spanway.test.run=ID) with a BatchSpanProcessor
and a KafkaSpanExporter. Per trace: frontend SERVER "GET /checkout" -> frontend
INTERNAL "price cart" (an event, every attribute type) and frontend CLIENT
"POST /pay" -> payments SERVER "POST /pay" (context propagated in-process;
ERROR on every 5th trace) -> payments CLIENT "SELECT cards". --big-trace adds a
trace of 2,500 spans with 600-byte attributes, over the record limit, which
the kit must split. Every span the kit reported as exported is written to FILE
as one ExportTraceServiceRequest (the kit's encoding of them); stdout says
`exported N spans`. Exits non-zero when an export failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from spanway_kafka import KafkaSpanExporter, encode_request
from spanway_kafka.exporter import COMPRESSIONS

BIG_TRACE_SPANS = 2_500
BIG_ATTRIBUTE_BYTES = 600


class Recording(SpanExporter):
    """Passes spans to the kit and keeps those it reported as exported."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.exported = []
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans):
        result = self.inner.export(spans)
        with self._lock:
            if result == SpanExportResult.SUCCESS:
                self.exported.extend(spans)
            else:
                self.failed += len(spans)
        return result

    def force_flush(self, timeout_millis=30_000):
        return self.inner.force_flush(timeout_millis)

    def shutdown(self):
        self.inner.shutdown()


def provider_for(service: str, run_id: str, exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "spanway.test.run": run_id})
    )
    # One export call must be able to hold the whole big trace, so that the
    # kit (not the processor) is what cuts it into records.
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=16_384,
            max_export_batch_size=8_192,
            schedule_delay_millis=2_000,
        )
    )
    return provider


def checkout(frontend: trace.Tracer, payments: trace.Tracer, n: int) -> None:
    with frontend.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/checkout"},
    ):
        with frontend.start_as_current_span("price cart", kind=SpanKind.INTERNAL) as pricing:
            pricing.set_attributes(
                {
                    "cart.currency": "EUR",
                    "cart.items": 3 + n,
                    "cart.total": 42.5 + n,
                    "cart.member": n % 2 == 0,
                    "cart.skus": ["sku-1", "sku-2", f"sku-{n}"],
                }
            )
            pricing.add_event("discount applied", {"discount.code": "WINTER", "discount.percent": 10})
        with frontend.start_as_current_span(
            "POST /pay",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "peer.service": "payments"},
        ):
            # In-process stand-in for an HTTP call: the client injects its
            # context into headers, the server extracts it.
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            pay(payments, propagate.extract(carrier), failing=n % 5 == 4)


def pay(payments: trace.Tracer, parent, failing: bool) -> None:
    with payments.start_as_current_span(
        "POST /pay",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/pay"},
    ) as server:
        with payments.start_as_current_span(
            "SELECT cards",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": "cards",
                "peer.service": "postgresql",
                "server.address": "db",
            },
        ):
            pass
        if failing:
            server.set_status(Status(StatusCode.ERROR, "card declined"))


def big_trace(frontend: trace.Tracer) -> None:
    blob = "x" * BIG_ATTRIBUTE_BYTES
    with frontend.start_as_current_span("bulk import", kind=SpanKind.SERVER):
        for i in range(BIG_TRACE_SPANS - 1):
            with frontend.start_as_current_span(f"import row {i}", attributes={"row.data": blob}):
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--run-id", required=True, help="value of spanway.test.run")
    parser.add_argument("--out", required=True, help="file for the exported spans")
    parser.add_argument("--traces", type=int, default=10)
    parser.add_argument("--big-trace", action="store_true")
    parser.add_argument("--timeout-ms", type=int, default=30_000, help="delivery timeout")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="example: %(name)s: %(message)s")

    recordings = {}
    providers = {}
    for service in ("frontend", "payments"):
        kit = KafkaSpanExporter(
            args.brokers,
            args.topic,
            compression=args.compression,
            delivery_timeout_ms=args.timeout_ms,
            config={"client.id": f"spanway-example-{service}"},
        )
        recordings[service] = Recording(kit)
        providers[service] = provider_for(service, args.run_id, recordings[service])
    frontend = providers["frontend"].get_tracer("spanway.example.frontend", "1.0.0")
    payments = providers["payments"].get_tracer("spanway.example.payments", "1.0.0")

    for n in range(args.traces):
        checkout(frontend, payments, n)
    if args.big_trace:
        big_trace(frontend)

    # Both providers flush at once, so a broker that cannot be reached costs
    # one delivery timeout, not one per provider.
    def close(provider: TracerProvider) -> None:
        provider.force_flush(args.timeout_ms + 10_000)
        provider.shutdown()

    closers = [threading.Thread(target=close, args=(p,)) for p in providers.values()]
    for t in closers:
        t.start()
    for t in closers:
        t.join()

    exported = [span for r in recordings.values() for span in r.exported]
    failed = sum(r.failed for r in recordings.values())
    with open(args.out, "wb") as out:
        out.write(encode_request(exported).SerializeToString())
    print(f"exported {len(exported)} spans", flush=True)
    if failed:
        print(f"example: {failed} spans were not exported (see the errors above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
