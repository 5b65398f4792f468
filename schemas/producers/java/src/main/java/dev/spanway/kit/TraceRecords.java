package dev.spanway.kit;

import io.opentelemetry.exporter.internal.otlp.traces.TraceRequestMarshaler;
import io.opentelemetry.sdk.trace.data.SpanData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The records of one export call: spans grouped by trace, one TracesData value per trace, split
 * at span boundaries when the value would pass the size limit. Pure logic, no I/O.
 *
 * <p>Values are encoded with the SDK's own OTLP marshaler ({@link TraceRequestMarshaler}, what
 * the OTLP exporters send). It writes an {@code ExportTraceServiceRequest}, which is the same
 * message as {@code TracesData} on the wire (field 1: repeated ResourceSpans).
 */
public final class TraceRecords {
  /** The contract's limit on a record value before compression. */
  public static final int MAX_VALUE_BYTES = 1_000_000;

  private TraceRecords() {}

  /** One record value for one trace. */
  public record TraceRecord(String key, byte[] value, int spans) {}

  /** What {@link #build} returns: the records that can be published and what cannot. */
  public record Result(List<TraceRecord> records, List<String> errors) {}

  /** Groups spans by trace id, keeping the order in which traces and spans first appear. */
  public static Map<String, List<SpanData>> groupByTrace(Collection<SpanData> spans) {
    Map<String, List<SpanData>> groups = new LinkedHashMap<>();
    for (SpanData s : spans) {
      groups.computeIfAbsent(s.getTraceId(), k -> new ArrayList<>()).add(s);
    }
    return groups;
  }

  /**
   * Encodes the spans of an export call as records: one per trace, or several for a trace whose
   * value would pass {@code limit}. A span that is over the limit on its own is reported in the
   * errors and left out; the other spans are still returned as records.
   */
  public static Result build(Collection<SpanData> spans, int limit) {
    List<TraceRecord> records = new ArrayList<>();
    List<String> errors = new ArrayList<>();
    for (Map.Entry<String, List<SpanData>> e : groupByTrace(spans).entrySet()) {
      // SpanContext keeps trace ids as 32 lowercase hex characters already.
      String key = e.getKey();
      List<SpanData> trace = e.getValue();
      TraceRequestMarshaler whole = TraceRequestMarshaler.create(trace);
      if (whole.getBinarySerializedSize() <= limit) {
        records.add(new TraceRecord(key, encode(whole), trace.size()));
        continue;
      }
      split(key, trace, limit, records, errors);
    }
    return new Result(records, errors);
  }

  /**
   * Packs spans greedily by the sum of their sizes when encoded alone. That sum bounds the size of
   * the packed value from above in practice (spans sharing a resource and scope share their
   * wrappers); the packed value is measured anyway and halved if it is still over the limit.
   */
  private static void split(
      String key, List<SpanData> trace, int limit, List<TraceRecord> records, List<String> errors) {
    List<SpanData> chunk = new ArrayList<>();
    long chunkBytes = 0;
    for (SpanData span : trace) {
      int alone = TraceRequestMarshaler.create(List.of(span)).getBinarySerializedSize();
      if (alone > limit) {
        errors.add(
            String.format(
                "span %s of trace %s encodes to %d bytes with its resource and scope, over the"
                    + " %d-byte record limit: not published",
                span.getSpanId(), key, alone, limit));
        continue;
      }
      if (!chunk.isEmpty() && chunkBytes + alone > limit) {
        emit(key, chunk, limit, records);
        chunk = new ArrayList<>();
        chunkBytes = 0;
      }
      chunk.add(span);
      chunkBytes += alone;
    }
    if (!chunk.isEmpty()) {
      emit(key, chunk, limit, records);
    }
  }

  private static void emit(String key, List<SpanData> chunk, int limit, List<TraceRecord> out) {
    TraceRequestMarshaler m = TraceRequestMarshaler.create(chunk);
    if (m.getBinarySerializedSize() <= limit || chunk.size() == 1) {
      out.add(new TraceRecord(key, encode(m), chunk.size()));
      return;
    }
    int half = chunk.size() / 2;
    emit(key, chunk.subList(0, half), limit, out);
    emit(key, chunk.subList(half, chunk.size()), limit, out);
  }

  static byte[] encode(TraceRequestMarshaler m) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(m.getBinarySerializedSize());
    try {
      m.writeBinaryTo(out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }
}
