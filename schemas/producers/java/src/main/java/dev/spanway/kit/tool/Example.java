package dev.spanway.kit.tool;

import dev.spanway.kit.KafkaSpanExporter;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.exporter.internal.otlp.traces.TraceRequestMarshaler;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@code example}: two services instrumented with the OpenTelemetry Java SDK, each with its own
 * SdkTracerProvider, BatchSpanProcessor and kit exporter, making checkout traces (frontend ->
 * payments -> postgresql, context carried between the services in W3C traceparent headers). Every
 * span the kit reports as exported is written to --out as one ExportTraceServiceRequest, encoded by
 * the SDK's OTLP marshaler.
 */
final class Example {
  private Example() {}

  /** Passes spans to the kit and keeps those it reported exported. */
  static final class Recording implements SpanExporter {
    private final SpanExporter inner;
    final List<SpanData> delivered = new ArrayList<>();
    final AtomicInteger failed = new AtomicInteger();

    Recording(SpanExporter inner) {
      this.inner = inner;
    }

    @Override
    public CompletableResultCode export(Collection<SpanData> spans) {
      List<SpanData> batch = List.copyOf(spans);
      CompletableResultCode r = inner.export(batch);
      r.whenComplete(
          () -> {
            if (r.isSuccess()) {
              synchronized (delivered) {
                delivered.addAll(batch);
              }
            } else {
              failed.addAndGet(batch.size());
              Throwable t = r.getFailureThrowable();
              System.err.printf(
                  "export of %d spans failed: %s%n", batch.size(), t == null ? "failed" : t.getMessage());
            }
          });
      return r;
    }

    @Override
    public CompletableResultCode flush() {
      return inner.flush();
    }

    @Override
    public CompletableResultCode shutdown() {
      return inner.shutdown();
    }
  }

  record Service(SdkTracerProvider provider, Tracer tracer, Recording exporter) {}

  static Service service(String name, String runId, KafkaSpanExporter.Builder builder, Duration timeout) {
    Recording rec = new Recording(builder.build());
    Resource resource =
        Resource.getDefault()
            .merge(
                Resource.create(
                    Attributes.of(
                        AttributeKey.stringKey("service.name"), name,
                        AttributeKey.stringKey("spanway.test.run"), runId)));
    SdkTracerProvider provider =
        SdkTracerProvider.builder()
            .setResource(resource)
            .addSpanProcessor(
                // Queue and batch large enough that the big trace reaches the kit in one export
                // call (the kit must split it, not the processor); the program flushes at the
                // end, so a long schedule delay costs nothing. The processor's deadline stays
                // above the kit's delivery timeout so that the kit decides when to give up.
                BatchSpanProcessor.builder(rec)
                    .setMaxQueueSize(8192)
                    .setMaxExportBatchSize(8192)
                    .setScheduleDelay(Duration.ofMinutes(1))
                    .setExporterTimeout(timeout.plusSeconds(15))
                    .build())
            .build();
    return new Service(provider, provider.get("spanway.example." + name, "1.0.0"), rec);
  }

  static int run(Args args) throws Exception {
    String brokers = args.required("brokers");
    String topic = args.required("topic");
    String runId = args.required("run-id");
    Path out = Path.of(args.required("out"));
    int traces = args.integer("traces", 10);
    Duration timeout = Duration.ofMillis(args.integer("timeout-ms", 30_000));
    KafkaSpanExporter.Builder builder =
        KafkaSpanExporter.builder()
            .setBootstrapServers(brokers)
            .setTopic(topic)
            .setCompression(args.get("compression", "zstd"))
            .setDeliveryTimeout(timeout);
    Service frontend = service("frontend", runId, builder, timeout);
    Service payments = service("payments", runId, builder, timeout);
    List<Service> services = List.of(frontend, payments);

    for (int i = 0; i < traces; i++) {
      checkout(frontend, payments, i);
    }
    if (args.flag("big-trace")) {
      big(frontend);
    }

    // Flush every provider at once (with no broker each waits the delivery timeout; in parallel
    // that is paid once), then shut them down.
    long waitMs = timeout.toMillis() + 25_000;
    List<CompletableResultCode> flushes = new ArrayList<>();
    for (Service s : services) {
      flushes.add(s.provider().forceFlush());
    }
    boolean flushed = CompletableResultCode.ofAll(flushes).join(waitMs, TimeUnit.MILLISECONDS).isSuccess();
    List<CompletableResultCode> shutdowns = new ArrayList<>();
    for (Service s : services) {
      shutdowns.add(s.provider().shutdown());
    }
    boolean closed = CompletableResultCode.ofAll(shutdowns).join(waitMs, TimeUnit.MILLISECONDS).isSuccess();

    List<SpanData> delivered = new ArrayList<>();
    int failed = 0;
    for (Service s : services) {
      synchronized (s.exporter().delivered) {
        delivered.addAll(s.exporter().delivered);
      }
      failed += s.exporter().failed.get();
    }
    try (OutputStream o = Files.newOutputStream(out)) {
      TraceRequestMarshaler.create(delivered).writeBinaryTo(o);
    }
    System.out.printf("exported %d spans%n", delivered.size());
    if (failed > 0) {
      System.err.printf("%d spans were not exported%n", failed);
      return 1;
    }
    if (!flushed || !closed) {
      System.err.println("flushing or shutting down a tracer provider failed");
      return 1;
    }
    return 0;
  }

  private static final TextMapGetter<Map<String, String>> GETTER =
      (carrier, key) -> carrier == null ? null : carrier.get(key);

  /** One trace across the two services; every 5th trace the payments server span fails. */
  static void checkout(Service frontend, Service payments, int i) {
    Span root =
        frontend.tracer().spanBuilder("GET /checkout").setSpanKind(SpanKind.SERVER)
            .setAttribute("http.request.method", "GET").setAttribute("url.path", "/checkout")
            .startSpan();
    try (Scope scope = root.makeCurrent()) {
      Span internal =
          frontend.tracer().spanBuilder("compute cart").setSpanKind(SpanKind.INTERNAL)
              .setAttribute("cart.currency", "EUR")
              .setAttribute("cart.items", (long) (i % 4 + 1))
              .setAttribute("cart.total", 19.99 + i)
              .setAttribute("cart.gift", i % 2 == 0)
              .setAttribute(AttributeKey.stringArrayKey("cart.skus"), List.of("sku-1", "sku-2"))
              .startSpan();
      internal.addEvent("cart priced", Attributes.of(AttributeKey.longKey("cart.discount"), 5L));
      internal.end();

      Span client =
          frontend.tracer().spanBuilder("POST /pay").setSpanKind(SpanKind.CLIENT)
              .setAttribute("http.request.method", "POST").setAttribute("peer.service", "payments")
              .startSpan();
      // In-process stand-in for an HTTP call: the client injects traceparent, the server
      // extracts it.
      Map<String, String> headers = new HashMap<>();
      W3CTraceContextPropagator.getInstance()
          .inject(Context.current().with(client), headers, Map::put);
      Context serverContext =
          W3CTraceContextPropagator.getInstance().extract(Context.root(), headers, GETTER);
      paymentsServer(payments, serverContext, i % 5 == 4);
      client.end();
    } finally {
      root.end();
    }
  }

  private static void paymentsServer(Service payments, Context parent, boolean fail) {
    Span server =
        payments.tracer().spanBuilder("POST /pay").setParent(parent).setSpanKind(SpanKind.SERVER)
            .setAttribute("http.request.method", "POST").startSpan();
    try (Scope scope = server.makeCurrent()) {
      payments.tracer().spanBuilder("SELECT cards").setSpanKind(SpanKind.CLIENT)
          .setAttribute("db.system", "postgresql")
          .setAttribute("db.name", "cards")
          .setAttribute("peer.service", "postgresql")
          .setAttribute("server.address", "db")
          .startSpan()
          .end();
      if (fail) {
        server.setStatus(StatusCode.ERROR, "card declined");
      }
    } finally {
      server.end();
    }
  }

  /** 2,500 spans with a 600-byte attribute each, about 1.7 MB encoded: the kit must split it. */
  private static void big(Service frontend) {
    String payload = "x".repeat(600);
    Span root = frontend.tracer().spanBuilder("GET /report").setSpanKind(SpanKind.SERVER).startSpan();
    try (Scope scope = root.makeCurrent()) {
      for (int i = 0; i < 2499; i++) {
        frontend.tracer().spanBuilder("row " + i)
            .setAttribute("report.row", payload).setAttribute("report.index", (long) i)
            .startSpan().end();
      }
    } finally {
      root.end();
    }
  }
}
