package dev.spanway.kit.tool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.spanway.kit.TraceRecords;
import io.opentelemetry.proto.common.v1.KeyValue;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import io.opentelemetry.proto.trace.v1.TracesData;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Golden value -> SDK span data -> kit record gives back the golden message, except for what the
 * Java SDK's marshaler does differently and a reader does not see: attributes (of resources,
 * scopes, spans, events and links) come out sorted by key, as the SDK keeps them; resources come
 * in the order of the SDK's grouping map, not first-seen order; an unnamed scope and an unset
 * status are written as empty messages instead of being left out; and span and link flags carry
 * SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE (0x100). Readers take the W3C flags from the low byte.
 */
class GoldenRoundTripTest {
  static Path testdata() {
    return Path.of(System.getProperty("spanway.testdata", "../../testdata"));
  }

  @Test
  void kitRecordsCarryTheGoldenSpans() throws Exception {
    List<Golden.GoldenTrace> traces = Golden.load(testdata());
    assertTrue(traces.size() >= 2, "golden traces found: " + traces.size());
    for (Golden.GoldenTrace t : traces) {
      TraceRecords.Result r = TraceRecords.build(t.spans(), TraceRecords.MAX_VALUE_BYTES);
      assertEquals(List.of(), r.errors());
      assertEquals(1, r.records().size());
      assertEquals(t.key(), r.records().get(0).key());
      TracesData got = byResource(TracesData.parseFrom(r.records().get(0).value()));
      assertEquals(expected(t.value()).toString(), got.toString(), t.manifest().toString());
      assertEquals(expected(t.value()), got, t.manifest().toString());
    }
  }

  /** The golden value as the Java SDK writes the same spans. */
  static TracesData expected(TracesData golden) {
    TracesData.Builder td = golden.toBuilder();
    for (ResourceSpans.Builder rs : td.getResourceSpansBuilderList()) {
      sortAttrs(rs.getResourceBuilder().getAttributesList(), l -> rs.getResourceBuilder().clearAttributes().addAllAttributes(l));
      for (ScopeSpans.Builder ss : rs.getScopeSpansBuilderList()) {
        ss.setScope(ss.getScope());
        sortAttrs(ss.getScopeBuilder().getAttributesList(), l -> ss.getScopeBuilder().clearAttributes().addAllAttributes(l));
        for (Span.Builder s : ss.getSpansBuilderList()) {
          s.setFlags(s.getFlags() | 0x100);
          s.setStatus(s.getStatus());
          sortAttrs(s.getAttributesList(), l -> s.clearAttributes().addAllAttributes(l));
          for (Span.Event.Builder e : s.getEventsBuilderList()) {
            sortAttrs(e.getAttributesList(), l -> e.clearAttributes().addAllAttributes(l));
          }
          for (Span.Link.Builder l : s.getLinksBuilderList()) {
            l.setFlags(l.getFlags() | 0x100);
            sortAttrs(l.getAttributesList(), x -> l.clearAttributes().addAllAttributes(x));
          }
        }
      }
    }
    return byResource(td.build());
  }

  /** Resource spans in a fixed order (by their resource's text form). */
  static TracesData byResource(TracesData td) {
    List<ResourceSpans> sorted =
        td.getResourceSpansList().stream()
            .sorted(Comparator.comparing((ResourceSpans rs) -> rs.getResource().toString()))
            .toList();
    return td.toBuilder().clearResourceSpans().addAllResourceSpans(sorted).build();
  }

  private static void sortAttrs(List<KeyValue> kvs, java.util.function.Consumer<List<KeyValue>> set) {
    List<KeyValue> sorted = kvs.stream().sorted(Comparator.comparing(KeyValue::getKey)).toList();
    set.accept(sorted);
  }
}
