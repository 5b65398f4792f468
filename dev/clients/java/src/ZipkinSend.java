import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import zipkin2.Endpoint;
import zipkin2.Span;
import zipkin2.codec.SpanBytesEncoder;
import zipkin2.reporter.urlconnection.URLConnectionSender;

/**
 * Sends a few traces with Zipkin's reporter (URLConnectionSender, JSON v2,
 * gzip) to the collector's /api/v2/spans, then prints the spans it sent as
 * one JSON array, so that a test can compare what reached Kafka with them.
 *
 * <p>The sender is called directly rather than through AsyncReporter so that
 * a refused message is an exception here, not a dropped-span counter.
 *
 * <p>usage: java ZipkinSend URL TRACES SPANS_PER_TRACE
 */
public final class ZipkinSend {
  private static final SecureRandom RANDOM = new SecureRandom();

  public static void main(String[] args) throws Exception {
    String url = args[0];
    int traces = Integer.parseInt(args[1]);
    int spansPerTrace = Integer.parseInt(args[2]);

    Endpoint frontend = Endpoint.newBuilder().serviceName("frontend").ip("192.168.9.2").port(8080).build();
    Endpoint backend = Endpoint.newBuilder().serviceName("backend").ip("10.1.2.3").port(9000).build();
    long now = System.currentTimeMillis() * 1000L;
    List<Span> spans = new ArrayList<>();
    for (int t = 0; t < traces; t++) {
      // Every other trace uses a 64-bit id, as older Zipkin clients do.
      String traceId = t % 2 == 0 ? hex(16) : hex(8);
      String rootId = hex(8);
      spans.add(Span.newBuilder()
          .traceId(traceId).id(rootId).name("get /api/" + t)
          .kind(Span.Kind.SERVER).localEndpoint(frontend)
          .timestamp(now).duration(5000L)
          .putTag("http.method", "GET").putTag("http.path", "/api/" + t)
          .addAnnotation(now + 10, "wr")
          .build());
      for (int s = 1; s < spansPerTrace; s++) {
        Span.Builder child = Span.newBuilder()
            .traceId(traceId).id(hex(8)).parentId(rootId).name("call-" + s)
            .localEndpoint(frontend).remoteEndpoint(backend)
            .timestamp(now + 100L * s).duration(1000L)
            .putTag("component", "http-client");
        switch (s % 3) {
          case 1 -> child.kind(Span.Kind.CLIENT).putTag("error", "timeout");
          case 2 -> child.kind(Span.Kind.PRODUCER).addAnnotation(now + 100L * s + 5, "sent");
          default -> child.kind(Span.Kind.CONSUMER).shared(true);
        }
        spans.add(child.build());
      }
    }

    List<byte[]> encoded = new ArrayList<>();
    for (Span span : spans) {
      encoded.add(SpanBytesEncoder.JSON_V2.encode(span));
    }
    URLConnectionSender sender = URLConnectionSender.newBuilder()
        .endpoint(url)
        .compressionEnabled(true)
        .build();
    // Throws IOException when the collector answers an error status.
    sender.send(encoded);
    sender.close();
    System.out.println(new String(SpanBytesEncoder.JSON_V2.encodeList(spans), "UTF-8"));
  }

  private static String hex(int bytes) {
    byte[] b = new byte[bytes];
    do {
      RANDOM.nextBytes(b);
    } while (b[0] == 0);
    StringBuilder sb = new StringBuilder();
    for (byte x : b) {
      sb.append(String.format("%02x", x));
    }
    return sb.toString();
  }
}
