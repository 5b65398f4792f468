import com.google.gson.Gson;
import io.jaegertracing.internal.JaegerSpan;
import io.jaegertracing.internal.JaegerTracer;
import io.jaegertracing.internal.LogData;
import io.jaegertracing.internal.Reference;
import io.jaegertracing.internal.samplers.ConstSampler;
import io.jaegertracing.spi.Reporter;
import io.jaegertracing.thrift.internal.senders.HttpSender;
import io.opentracing.References;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Sends a few traces with Jaeger's Java client over HTTP (Thrift binary, the
 * collector's /api/traces), then prints every span as one JSON line, so that
 * a test can compare what reached Kafka with what was sent.
 *
 * <p>The spans go through the client's own HttpSender, the sender its
 * RemoteReporter uses; calling it directly makes a refused batch an error
 * here instead of a log line in a background thread.
 *
 * <p>usage: java JaegerSend URL TRACES SPANS_PER_TRACE
 */
public final class JaegerSend {
  public static void main(String[] args) throws Exception {
    String url = args[0];
    int traces = Integer.parseInt(args[1]);
    int spansPerTrace = Integer.parseInt(args[2]);

    List<JaegerSpan> finished = new ArrayList<>();
    Reporter recorder = new Reporter() {
      @Override public synchronized void report(JaegerSpan span) { finished.add(span); }
      @Override public void close() {}
    };
    JaegerTracer tracer = new JaegerTracer.Builder("java-jaeger-client")
        .withReporter(recorder)
        .withSampler(new ConstSampler(true))
        .withTraceId128Bit()
        .withTag("deployment.environment", "test")
        .build();

    for (int t = 0; t < traces; t++) {
      JaegerSpan root = tracer.buildSpan("root-" + t)
          .withTag("span.kind", "server")
          .withTag("http.method", "GET")
          .withTag("http.status_code", 200)
          .withTag("ratio", 0.25)
          .withTag("cached", false)
          .start();
      for (int s = 1; s < spansPerTrace; s++) {
        JaegerSpan child = tracer.buildSpan("child-" + t + "-" + s)
            .asChildOf(root)
            .withTag("span.kind", "client")
            .withTag("peer.service", "db")
            .start();
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("event", "query");
        fields.put("db.statement", "select 1");
        child.log(fields);
        if (s == 1) {
          child.setTag("error", true);
        }
        child.finish();
      }
      // A span that follows from the root: a link, not a parent.
      JaegerSpan follower = tracer.buildSpan("follower-" + t)
          .addReference(References.FOLLOWS_FROM, root.context())
          .withTag("span.kind", "producer")
          .start();
      follower.finish();
      root.finish();
    }

    HttpSender sender = new HttpSender.Builder(url).build();
    for (JaegerSpan span : finished) {
      sender.append(span);
    }
    // Throws SenderException when the collector refuses the batch.
    sender.flush();
    sender.close();
    tracer.close();

    Gson gson = new Gson();
    for (JaegerSpan span : finished) {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("traceIdHigh", hex16(span.context().getTraceIdHigh()));
      out.put("traceIdLow", hex16(span.context().getTraceIdLow()));
      out.put("spanId", hex16(span.context().getSpanId()));
      out.put("parentId", hex16(span.context().getParentId()));
      out.put("operationName", span.getOperationName());
      out.put("startMicros", span.getStart());
      out.put("durationMicros", span.getDuration());
      out.put("tags", span.getTags());
      List<Map<String, Object>> logs = new ArrayList<>();
      if (span.getLogs() != null) {
        for (LogData log : span.getLogs()) {
          Map<String, Object> l = new LinkedHashMap<>();
          l.put("timeMicros", log.getTime());
          l.put("fields", log.getFields());
          logs.add(l);
        }
      }
      out.put("logs", logs);
      List<Map<String, Object>> refs = new ArrayList<>();
      for (Reference ref : span.getReferences()) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("type", ref.getType());
        r.put("spanId", hex16(ref.getSpanContext().getSpanId()));
        refs.add(r);
      }
      out.put("references", refs);
      System.out.println(gson.toJson(out));
    }
  }

  private static String hex16(long value) {
    return String.format("%016x", value);
  }
}
