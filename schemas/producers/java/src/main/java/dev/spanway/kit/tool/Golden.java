package dev.spanway.kit.tool;

import dev.spanway.kit.KafkaSpanExporter;
import io.opentelemetry.proto.trace.v1.TracesData;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.data.SpanData;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code golden}: each {@code *.otlp_proto.json} manifest names a record value (TracesData). It
 * is decoded, turned back into the SDK's span data and exported through the kit, one export call
 * per golden trace.
 */
final class Golden {
  private static final Pattern VALUE_FILE = Pattern.compile("\"value_file\"\\s*:\\s*\"([^\"]+)\"");
  private static final Pattern KEY = Pattern.compile("\"key\"\\s*:\\s*\"([^\"]+)\"");

  private Golden() {}

  /** A golden manifest's trace: its key and its spans as SDK span data. */
  record GoldenTrace(Path manifest, String key, TracesData value, List<SpanData> spans) {}

  static List<GoldenTrace> load(Path dir) throws IOException {
    List<Path> manifests = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.otlp_proto.json")) {
      ds.forEach(manifests::add);
    }
    manifests.sort(null);
    if (manifests.isEmpty()) {
      throw new IOException("no *.otlp_proto.json manifest in " + dir);
    }
    List<GoldenTrace> out = new ArrayList<>();
    for (Path m : manifests) {
      String json = Files.readString(m);
      String valueFile = field(VALUE_FILE, json, m);
      TracesData td = TracesData.parseFrom(Files.readAllBytes(m.resolveSibling(valueFile)));
      out.add(new GoldenTrace(m, field(KEY, json, m), td, GoldenSpans.fromTracesData(td)));
    }
    return out;
  }

  private static String field(Pattern p, String json, Path m) throws IOException {
    Matcher x = p.matcher(json);
    if (!x.find()) {
      throw new IOException(m + ": no " + p.pattern());
    }
    return x.group(1);
  }

  static int run(Args args) throws Exception {
    String brokers = args.required("brokers");
    String topic = args.required("topic");
    Path testdata = Path.of(args.required("testdata"));
    int timeoutMs = args.integer("timeout-ms", 30_000);
    List<GoldenTrace> traces = load(testdata);
    KafkaSpanExporter exporter =
        KafkaSpanExporter.builder()
            .setBootstrapServers(brokers)
            .setTopic(topic)
            .setCompression(args.get("compression", "zstd"))
            .setDeliveryTimeout(Duration.ofMillis(timeoutMs))
            .build();
    int failed = 0;
    for (GoldenTrace t : traces) {
      CompletableResultCode r = exporter.export(t.spans()).join(timeoutMs + 10_000L, TimeUnit.MILLISECONDS);
      if (!r.isSuccess()) {
        System.err.printf(
            "export of %s failed: %s%n",
            t.manifest().getFileName(),
            r.getFailureThrowable() != null ? r.getFailureThrowable().getMessage() : "not done in time");
        failed++;
        continue;
      }
      System.out.printf(
          "exported trace %s: %d spans from %s%n", t.key(), t.spans().size(), t.manifest().getFileName());
    }
    exporter.shutdown().join(30, TimeUnit.SECONDS);
    if (failed > 0) {
      System.err.printf("%d of %d golden traces failed to export%n", failed, traces.size());
      return 1;
    }
    return 0;
  }
}
