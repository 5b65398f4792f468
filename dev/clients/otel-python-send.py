"""Sends a known set of traces with the OpenTelemetry Python SDK over OTLP/gRPC or OTLP/HTTP.

Run through dev/clients/otel-python, which provides the pinned SDK. Every
span that the exporter reports as delivered is written to --out as one
ExportTraceServiceRequest, encoded by the exporter's own encoder, so that a
test can compare what reached Kafka with what was sent.

The set: three traces, 31 spans, from two instrumentation scopes, with
every span kind, string/int/float/bool/array attributes, events, a link
across traces, and OK and ERROR statuses. One resource names the run
(spanway.test.run) so that a test can tell its spans from others.
"""

import argparse
import sys

import grpc
from grpc import Compression
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

EXPECTED_SPANS = 31


class Recording(SpanExporter):
    """Passes spans to the real exporter and keeps the ones it delivered."""

    def __init__(self, inner):
        self.inner = inner
        self.delivered = []
        self.failed = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            self.delivered.extend(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def emit(provider):
    web = provider.get_tracer("shop.web", "1.4.0")
    db = provider.get_tracer("shop.db")

    with web.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.response.status_code": 200},
    ) as checkout:
        checkout.add_event("auth ok", {"user.tier": "gold"})
        with db.start_as_current_span(
            "SELECT orders",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.rows": 3,
                "db.cost": 1.5,
                "db.cached": False,
                "db.tables": ["orders", "items"],
            },
        ):
            pass
        with web.start_as_current_span("render") as render:
            render.add_event(
                "exception",
                {"exception.type": "KeyError", "exception.message": "total"},
            )
            render.set_status(Status(StatusCode.ERROR, "template missing"))
        checkout_context = checkout.get_span_context()

    with web.start_as_current_span(
        "process order",
        kind=SpanKind.CONSUMER,
        links=[Link(checkout_context, {"link.reason": "checkout"})],
    ):
        with web.start_as_current_span("publish receipt", kind=SpanKind.PRODUCER) as publish:
            publish.set_status(Status(StatusCode.OK))

    with web.start_as_current_span("batch job"):
        for step in range(25):
            with web.start_as_current_span(f"step-{step}", attributes={"step": step}):
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="host:port of the receiver")
    parser.add_argument(
        "--protocol",
        choices=["grpc", "http/protobuf"],
        default="grpc",
        help="OTLP/gRPC (TraceService/Export) or OTLP/HTTP protobuf (POST /v1/traces)",
    )
    parser.add_argument("--out", required=True, help="file for the delivered spans")
    parser.add_argument("--run-id", default="manual", help="value of spanway.test.run")
    parser.add_argument(
        "--ca-file",
        help="PEM CA certificate: connect over TLS and trust the server's certificate if it signed it",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="request header (gRPC metadata; lower-case keys), e.g. 'authorization=Bearer TOKEN'",
    )
    args = parser.parse_args()
    headers = dict(h.split("=", 1) for h in args.header) or None
    scheme = "https" if args.ca_file else "http"

    resource = Resource.create(
        {
            "service.name": "py-shop",
            "service.version": "2.0.1",
            "spanway.test.run": args.run_id,
        }
    )
    provider = TracerProvider(resource=resource)
    if args.protocol == "grpc":
        credentials = None
        if args.ca_file:
            with open(args.ca_file, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        inner = OTLPSpanExporter(
            endpoint=f"{scheme}://{args.endpoint}",
            insecure=not args.ca_file,
            credentials=credentials,
            headers=headers,
            compression=Compression.Gzip,
            timeout=20,
        )
    else:
        inner = HttpSpanExporter(
            endpoint=f"{scheme}://{args.endpoint}/v1/traces",
            certificate_file=args.ca_file,
            headers=headers,
            compression=HttpCompression.Gzip,
            timeout=20,
        )
    exporter = Recording(inner)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    emit(provider)
    provider.shutdown()  # flushes the batch processor

    with open(args.out, "wb") as out:
        out.write(encode_spans(exporter.delivered).SerializeToString())
    print(f"delivered {len(exporter.delivered)} spans, failed {exporter.failed}", file=sys.stderr)
    if exporter.failed or len(exporter.delivered) != EXPECTED_SPANS:
        sys.exit(1)


if __name__ == "__main__":
    main()
