package dev.spanway.kit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import io.opentelemetry.proto.trace.v1.TracesData;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.context.Context;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

public class TraceRecordsTest {
  /** Finished spans made by the real SDK, kept in memory. */
  static final class Collect implements SpanExporter {
    final List<SpanData> spans = new ArrayList<>();

    @Override
    public CompletableResultCode export(Collection<SpanData> batch) {
      spans.addAll(batch);
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode flush() {
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode shutdown() {
      return CompletableResultCode.ofSuccess();
    }
  }

  /** {@code n} spans of one trace from two services and two scopes, attribute of size(i) bytes. */
  static List<SpanData> trace(String traceId, int n, java.util.function.IntUnaryOperator size) {
    Collect c = new Collect();
    List<SdkTracerProvider> providers = new ArrayList<>();
    for (String svc : List.of("a", "b")) {
      providers.add(
          SdkTracerProvider.builder()
              .setResource(Resource.create(Attributes.of(AttributeKey.stringKey("service.name"), svc)))
              .addSpanProcessor(SimpleSpanProcessor.create(c))
              .build());
    }
    Context parent =
        Context.root()
            .with(
                io.opentelemetry.api.trace.Span.wrap(
                    SpanContext.createFromRemoteParent(
                        traceId, "00000000000000ff", TraceFlags.getSampled(), TraceState.getDefault())));
    for (int i = 0; i < n; i++) {
      SdkTracerProvider p = providers.get(i % 3 == 2 ? 1 : 0);
      p.get(i % 3 == 1 ? "two" : "one")
          .spanBuilder("span " + i)
          .setParent(parent)
          .setSpanKind(SpanKind.INTERNAL)
          .setAttribute("payload", "p".repeat(size.applyAsInt(i)))
          .setAttribute("index", (long) i)
          .startSpan()
          .end();
    }
    providers.forEach(SdkTracerProvider::close);
    return c.spans;
  }

  @Test
  void oneRecordPerTraceKeyedByLowercaseHex() throws Exception {
    List<SpanData> spans = new ArrayList<>();
    spans.addAll(trace("0000000000000000000000000000abcd", 2, i -> 1));
    spans.addAll(trace("5b8efff798038103d269b633813fc60c", 3, i -> 1));
    TraceRecords.Result r = TraceRecords.build(spans, TraceRecords.MAX_VALUE_BYTES);
    assertEquals(List.of(), r.errors());
    assertEquals(2, r.records().size());
    assertEquals("0000000000000000000000000000abcd", r.records().get(0).key());
    assertEquals(2, r.records().get(0).spans());
    assertEquals("5b8efff798038103d269b633813fc60c", r.records().get(1).key());
    for (TraceRecords.TraceRecord rec : r.records()) {
      for (Span s : spans(TracesData.parseFrom(rec.value()))) {
        assertEquals(rec.key(), HexFormat.of().formatHex(s.getTraceId().toByteArray()));
      }
    }
  }

  @Test
  void splitKeepsEverySpanOnceWithinTheLimit() throws Exception {
    List<SpanData> spans = trace("5b8efff798038103d269b633813fc60c", 300, i -> 200 + i);
    for (int limit : new int[] {2_000, 10_000, 33_333, 1_000_000}) {
      TraceRecords.Result r = TraceRecords.build(spans, limit);
      assertEquals(List.of(), r.errors());
      Set<String> seen = new HashSet<>();
      int total = 0;
      for (TraceRecords.TraceRecord rec : r.records()) {
        assertTrue(rec.value().length <= limit, "record of " + rec.value().length + " > " + limit);
        assertEquals("5b8efff798038103d269b633813fc60c", rec.key());
        TracesData td = TracesData.parseFrom(rec.value());
        for (ResourceSpans rs : td.getResourceSpansList()) {
          String svc = rs.getResource().getAttributes(0).getValue().getStringValue();
          for (ScopeSpans ss : rs.getScopeSpansList()) {
            for (Span s : ss.getSpansList()) {
              int i = Integer.parseInt(s.getName().substring(5));
              assertEquals(i % 3 == 2 ? "b" : "a", svc, "resource of span " + i);
              assertEquals(i % 3 == 1 ? "two" : "one", ss.getScope().getName(), "scope of span " + i);
              assertTrue(seen.add(s.getName()), "span " + i + " twice");
            }
          }
        }
        total += rec.spans();
      }
      assertEquals(300, total);
      assertEquals(300, seen.size());
      if (limit < 1_000_000) {
        assertTrue(r.records().size() > 1, "limit " + limit + ": " + r.records().size() + " records");
      }
    }
  }

  @Test
  void spanOverTheLimitIsReportedAndTheOthersStillGo() {
    List<SpanData> spans = trace("5b8efff798038103d269b633813fc60c", 3, i -> i == 1 ? 5_000 : 10);
    TraceRecords.Result r = TraceRecords.build(spans, 1_000);
    assertEquals(1, r.errors().size());
    assertTrue(r.errors().get(0).contains("over the 1000-byte record limit"), r.errors().get(0));
    assertEquals(2, r.records().stream().mapToInt(TraceRecords.TraceRecord::spans).sum());
  }

  public static List<Span> spans(TracesData td) {
    List<Span> out = new ArrayList<>();
    td.getResourceSpansList().forEach(rs -> rs.getScopeSpansList().forEach(ss -> out.addAll(ss.getSpansList())));
    return out;
  }
}
