package dev.spanway.kit.tool;

import com.google.protobuf.ByteString;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.common.AttributesBuilder;
import io.opentelemetry.api.common.KeyValue;
import io.opentelemetry.api.common.Value;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.TraceStateBuilder;
import io.opentelemetry.proto.common.v1.AnyValue;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import io.opentelemetry.proto.trace.v1.TracesData;
import io.opentelemetry.sdk.common.InstrumentationLibraryInfo;
import io.opentelemetry.sdk.common.InstrumentationScopeInfo;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.data.EventData;
import io.opentelemetry.sdk.trace.data.LinkData;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.data.StatusData;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/** Turns OTLP spans (decoded with the generated classes) back into the SDK's {@link SpanData}. */
public final class GoldenSpans {
  private static final int IS_REMOTE = 0x200;

  private GoldenSpans() {}

  /** Finished-span data as the SDK hands it to an exporter. */
  record GoldenSpan(
      String name,
      SpanKind kind,
      SpanContext spanContext,
      SpanContext parentSpanContext,
      StatusData status,
      long startEpochNanos,
      Attributes attributes,
      List<EventData> events,
      List<LinkData> links,
      long endEpochNanos,
      int totalRecordedEvents,
      int totalRecordedLinks,
      int totalAttributeCount,
      InstrumentationScopeInfo scope,
      Resource resource)
      implements SpanData {
    @Override
    public String getName() {
      return name;
    }

    @Override
    public SpanKind getKind() {
      return kind;
    }

    @Override
    public SpanContext getSpanContext() {
      return spanContext;
    }

    @Override
    public SpanContext getParentSpanContext() {
      return parentSpanContext;
    }

    @Override
    public StatusData getStatus() {
      return status;
    }

    @Override
    public long getStartEpochNanos() {
      return startEpochNanos;
    }

    @Override
    public Attributes getAttributes() {
      return attributes;
    }

    @Override
    public List<EventData> getEvents() {
      return events;
    }

    @Override
    public List<LinkData> getLinks() {
      return links;
    }

    @Override
    public long getEndEpochNanos() {
      return endEpochNanos;
    }

    @Override
    public boolean hasEnded() {
      return true;
    }

    @Override
    public int getTotalRecordedEvents() {
      return totalRecordedEvents;
    }

    @Override
    public int getTotalRecordedLinks() {
      return totalRecordedLinks;
    }

    @Override
    public int getTotalAttributeCount() {
      return totalAttributeCount;
    }

    @Override
    @SuppressWarnings("deprecation")
    public InstrumentationLibraryInfo getInstrumentationLibraryInfo() {
      return InstrumentationLibraryInfo.create(scope.getName(), scope.getVersion(), scope.getSchemaUrl());
    }

    @Override
    public InstrumentationScopeInfo getInstrumentationScopeInfo() {
      return scope;
    }

    @Override
    public Resource getResource() {
      return resource;
    }
  }

  public static List<SpanData> fromTracesData(TracesData td) {
    List<SpanData> out = new ArrayList<>();
    for (ResourceSpans rs : td.getResourceSpansList()) {
      Resource resource =
          Resource.create(
              attributes(rs.getResource().getAttributesList()), emptyToNull(rs.getSchemaUrl()));
      for (ScopeSpans ss : rs.getScopeSpansList()) {
        var scopeBuilder = InstrumentationScopeInfo.builder(ss.getScope().getName());
        if (!ss.getScope().getVersion().isEmpty()) {
          scopeBuilder.setVersion(ss.getScope().getVersion());
        }
        if (!ss.getSchemaUrl().isEmpty()) {
          scopeBuilder.setSchemaUrl(ss.getSchemaUrl());
        }
        scopeBuilder.setAttributes(attributes(ss.getScope().getAttributesList()));
        InstrumentationScopeInfo scope = scopeBuilder.build();
        for (Span s : ss.getSpansList()) {
          out.add(span(s, resource, scope));
        }
      }
    }
    return out;
  }

  private static SpanData span(Span s, Resource resource, InstrumentationScopeInfo scope) {
    String traceId = hex(s.getTraceId());
    SpanContext context =
        SpanContext.create(
            traceId,
            hex(s.getSpanId()),
            TraceFlags.fromByte((byte) (s.getFlags() & 0xff)),
            traceState(s.getTraceState()));
    SpanContext parent = SpanContext.getInvalid();
    if (!s.getParentSpanId().isEmpty()) {
      String parentId = hex(s.getParentSpanId());
      parent =
          (s.getFlags() & IS_REMOTE) != 0
              ? SpanContext.createFromRemoteParent(traceId, parentId, TraceFlags.getDefault(), TraceState.getDefault())
              : SpanContext.create(traceId, parentId, TraceFlags.getDefault(), TraceState.getDefault());
    }
    List<EventData> events = new ArrayList<>();
    for (Span.Event e : s.getEventsList()) {
      Attributes a = attributes(e.getAttributesList());
      events.add(
          EventData.create(e.getTimeUnixNano(), e.getName(), a, a.size() + e.getDroppedAttributesCount()));
    }
    List<LinkData> links = new ArrayList<>();
    for (Span.Link l : s.getLinksList()) {
      TraceFlags flags = TraceFlags.fromByte((byte) (l.getFlags() & 0xff));
      TraceState state = traceState(l.getTraceState());
      SpanContext lc =
          (l.getFlags() & IS_REMOTE) != 0
              ? SpanContext.createFromRemoteParent(hex(l.getTraceId()), hex(l.getSpanId()), flags, state)
              : SpanContext.create(hex(l.getTraceId()), hex(l.getSpanId()), flags, state);
      Attributes a = attributes(l.getAttributesList());
      links.add(LinkData.create(lc, a, a.size() + l.getDroppedAttributesCount()));
    }
    Attributes attrs = attributes(s.getAttributesList());
    return new GoldenSpan(
        s.getName(),
        kind(s.getKind()),
        context,
        parent,
        status(s.getStatus()),
        s.getStartTimeUnixNano(),
        attrs,
        events,
        links,
        s.getEndTimeUnixNano(),
        events.size() + s.getDroppedEventsCount(),
        links.size() + s.getDroppedLinksCount(),
        attrs.size() + s.getDroppedAttributesCount(),
        scope,
        resource);
  }

  private static String hex(ByteString b) {
    return HexFormat.of().formatHex(b.toByteArray());
  }

  private static String emptyToNull(String s) {
    return s.isEmpty() ? null : s;
  }

  private static TraceState traceState(String header) {
    if (header.isEmpty()) {
      return TraceState.getDefault();
    }
    TraceStateBuilder b = TraceState.builder();
    for (String member : header.split(",")) {
      int eq = member.indexOf('=');
      if (eq > 0) {
        b.put(member.substring(0, eq).trim(), member.substring(eq + 1).trim());
      }
    }
    return b.build();
  }

  private static SpanKind kind(Span.SpanKind k) {
    return switch (k) {
      case SPAN_KIND_SERVER -> SpanKind.SERVER;
      case SPAN_KIND_CLIENT -> SpanKind.CLIENT;
      case SPAN_KIND_PRODUCER -> SpanKind.PRODUCER;
      case SPAN_KIND_CONSUMER -> SpanKind.CONSUMER;
      // The SDK has no "unspecified" kind: INTERNAL is its default.
      default -> SpanKind.INTERNAL;
    };
  }

  private static StatusData status(io.opentelemetry.proto.trace.v1.Status st) {
    return switch (st.getCode()) {
      case STATUS_CODE_OK -> StatusData.create(StatusCode.OK, st.getMessage());
      case STATUS_CODE_ERROR -> StatusData.create(StatusCode.ERROR, st.getMessage());
      default -> StatusData.unset();
    };
  }

  static Attributes attributes(List<io.opentelemetry.proto.common.v1.KeyValue> kvs) {
    AttributesBuilder b = Attributes.builder();
    for (var kv : kvs) {
      put(b, kv.getKey(), kv.getValue());
    }
    return b.build();
  }

  /** Maps an AnyValue onto the attribute type the SDK would have used for it. */
  private static void put(AttributesBuilder b, String key, AnyValue v) {
    switch (v.getValueCase()) {
      case STRING_VALUE -> b.put(AttributeKey.stringKey(key), v.getStringValue());
      case BOOL_VALUE -> b.put(AttributeKey.booleanKey(key), v.getBoolValue());
      case INT_VALUE -> b.put(AttributeKey.longKey(key), v.getIntValue());
      case DOUBLE_VALUE -> b.put(AttributeKey.doubleKey(key), v.getDoubleValue());
      case ARRAY_VALUE -> putArray(b, key, v.getArrayValue().getValuesList());
      default -> b.put(AttributeKey.valueKey(key), value(v));
    }
  }

  private static void putArray(AttributesBuilder b, String key, List<AnyValue> items) {
    AnyValue.ValueCase kind = items.isEmpty() ? null : items.get(0).getValueCase();
    boolean same = kind != null && items.stream().allMatch(i -> i.getValueCase() == kind);
    if (same && kind == AnyValue.ValueCase.STRING_VALUE) {
      b.put(AttributeKey.stringArrayKey(key), items.stream().map(AnyValue::getStringValue).toList());
    } else if (same && kind == AnyValue.ValueCase.BOOL_VALUE) {
      b.put(AttributeKey.booleanArrayKey(key), items.stream().map(AnyValue::getBoolValue).toList());
    } else if (same && kind == AnyValue.ValueCase.INT_VALUE) {
      b.put(AttributeKey.longArrayKey(key), items.stream().map(AnyValue::getIntValue).toList());
    } else if (same && kind == AnyValue.ValueCase.DOUBLE_VALUE) {
      b.put(AttributeKey.doubleArrayKey(key), items.stream().map(AnyValue::getDoubleValue).toList());
    } else {
      b.put(AttributeKey.valueKey(key), value(AnyValue.newBuilder().setArrayValue(
          io.opentelemetry.proto.common.v1.ArrayValue.newBuilder().addAllValues(items)).build()));
    }
  }

  private static Value<?> value(AnyValue v) {
    return switch (v.getValueCase()) {
      case STRING_VALUE -> Value.of(v.getStringValue());
      case BOOL_VALUE -> Value.of(v.getBoolValue());
      case INT_VALUE -> Value.of(v.getIntValue());
      case DOUBLE_VALUE -> Value.of(v.getDoubleValue());
      case BYTES_VALUE -> Value.of(v.getBytesValue().toByteArray());
      case ARRAY_VALUE -> {
        List<Value<?>> items = new ArrayList<>();
        for (AnyValue i : v.getArrayValue().getValuesList()) {
          items.add(value(i));
        }
        yield Value.of(items);
      }
      case KVLIST_VALUE -> {
        List<KeyValue> kvs = new ArrayList<>();
        for (var kv : v.getKvlistValue().getValuesList()) {
          kvs.add(KeyValue.of(kv.getKey(), value(kv.getValue())));
        }
        yield Value.of(kvs.toArray(new KeyValue[0]));
      }
      default -> Value.empty();
    };
  }
}
