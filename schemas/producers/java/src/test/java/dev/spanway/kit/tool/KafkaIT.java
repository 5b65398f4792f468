package dev.spanway.kit.tool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.spanway.kit.KafkaSpanExporter;
import dev.spanway.kit.TraceRecords;
import dev.spanway.kit.TraceRecordsTest;
import io.opentelemetry.proto.trace.v1.TracesData;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Against a real Kafka (-Dspanway.kafka=HOST:PORT, default 127.0.0.1:9092), no fakes. Not part of
 * `run unit`: `run unit -Dtest=KafkaIT`. Each test creates its own topics.
 */
class KafkaIT {
  static String brokers() {
    return System.getProperty("spanway.kafka", "127.0.0.1:9092");
  }

  static String createTopic(int partitions) throws Exception {
    String name = "kit-java-" + partitions + "-" + UUID.randomUUID();
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", brokers()))) {
      admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(20, TimeUnit.SECONDS);
    }
    return name;
  }

  static List<ConsumerRecord<byte[], byte[]>> consume(String topic, int want) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers());
    p.put(ConsumerConfig.GROUP_ID_CONFIG, "kit-java-it-" + UUID.randomUUID());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "2000000");
    List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> c =
        new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      c.subscribe(List.of(topic));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (out.size() < want && System.nanoTime() < deadline) {
        c.poll(Duration.ofMillis(500)).forEach(out::add);
      }
    }
    assertTrue(out.size() >= want, "got " + out.size() + " of " + want + " records from " + topic);
    return out;
  }

  static String header(ConsumerRecord<byte[], byte[]> r, String name) {
    Header h = r.headers().lastHeader(name);
    return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
  }

  @Test
  void goldenTracesLandWhereTheManifestsSay() throws Exception {
    List<Golden.GoldenTrace> traces = Golden.load(GoldenRoundTripTest.testdata());
    Pattern counts = Pattern.compile("\"partition_for_partition_count\"\\s*:\\s*\\{([^}]*)\\}");
    for (int partitions : new int[] {1, 6, 12}) {
      String topic = createTopic(partitions);
      assertEquals(0, Golden.run(Args.parse(new String[] {
          "--brokers", brokers(), "--topic", topic, "--testdata", GoldenRoundTripTest.testdata().toString()})));
      Map<String, ConsumerRecord<byte[], byte[]>> byKey = new HashMap<>();
      consume(topic, traces.size()).forEach(r -> byKey.put(new String(r.key(), StandardCharsets.UTF_8), r));
      for (Golden.GoldenTrace t : traces) {
        ConsumerRecord<byte[], byte[]> r = byKey.get(t.key());
        assertNotNull(r, "no record keyed " + t.key());
        Matcher m = counts.matcher(Files.readString(t.manifest()));
        assertTrue(m.find());
        Matcher e = Pattern.compile("\"" + partitions + "\"\\s*:\\s*(\\d+)").matcher(m.group(1));
        assertTrue(e.find());
        assertEquals(Integer.parseInt(e.group(1)), r.partition(), t.key() + " with " + partitions + " partitions");
        assertEquals("otlp_proto", header(r, "encoding"));
        assertEquals("1", header(r, "schema-version"));
        assertEquals(
            GoldenRoundTripTest.expected(t.value()),
            GoldenRoundTripTest.byResource(TracesData.parseFrom(r.value())),
            t.key());
      }
    }
  }

  @Test
  void exampleSplitsTheBigTrace(@TempDir Path dir) throws Exception {
    String topic = createTopic(6);
    Path out = dir.resolve("sent.binpb");
    assertEquals(0, Example.run(Args.parse(new String[] {
        "--brokers", brokers(), "--topic", topic, "--run-id", topic, "--out", out.toString(), "--big-trace"})));
    int sent = TraceRecordsTest.spans(TracesData.parseFrom(Files.readAllBytes(out))).size();
    assertEquals(10 * 5 + 2500, sent);
    Map<String, Integer> partitionOf = new HashMap<>();
    int onTopic = 0;
    int large = 0;
    List<ConsumerRecord<byte[], byte[]>> records = consume(topic, 22);
    for (ConsumerRecord<byte[], byte[]> r : records) {
      assertTrue(r.value().length <= TraceRecords.MAX_VALUE_BYTES, "record of " + r.value().length);
      String k = new String(r.key(), StandardCharsets.UTF_8);
      Integer before = partitionOf.put(k, r.partition());
      assertTrue(before == null || before == r.partition(), "trace " + k + " on two partitions");
      onTopic += TraceRecordsTest.spans(TracesData.parseFrom(r.value())).size();
      if (r.value().length > 500_000) {
        large++;
      }
    }
    assertEquals(sent, onTopic);
    assertEquals(11, partitionOf.size());
    assertTrue(large >= 2, "big trace in " + large + " large records");
  }

  @Test
  void exampleFailsQuicklyWithoutABroker(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("sent.binpb");
    long start = System.nanoTime();
    int code = Example.run(Args.parse(new String[] {
        "--brokers", "127.0.0.1:1", "--topic", "nowhere", "--run-id", "none", "--out", out.toString(),
        "--traces", "3", "--timeout-ms", "5000"}));
    long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    assertEquals(1, code);
    assertTrue(tookMs < 35_000, "took " + tookMs + " ms");
    assertEquals(0, Files.size(out));
  }

  static {
    // Referenced so that a renamed constant breaks this test at compile time.
    assertEquals("otlp_proto", KafkaSpanExporter.ENCODING_OTLP_PROTO);
  }
}
