package dev.spanway.kit;

import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * An OpenTelemetry {@link SpanExporter} that publishes finished spans to the spans topic as
 * schemas/README.md says: one otlp_proto record per trace of each export call (a TracesData
 * holding only that trace's spans, encoded by the SDK's own OTLP marshaler), keyed by the trace id
 * in 32 lowercase hex characters, headers {@code encoding=otlp_proto} and {@code
 * schema-version=1}, Kafka's default (murmur2) partitioner, values of at most 1,000,000 bytes
 * (larger traces are split at span boundaries).
 *
 * <p>The producer is idempotent with {@code acks=all}. The {@link CompletableResultCode} of {@link
 * #export} succeeds only when every record of the call was acknowledged; it fails when a record
 * was not acknowledged within the delivery timeout or a span was too large to publish. Nothing is
 * dropped without a failed result.
 */
public final class KafkaSpanExporter implements SpanExporter {
  private static final Logger logger = Logger.getLogger(KafkaSpanExporter.class.getName());

  /** Header names and values every record carries. */
  public static final String HEADER_ENCODING = "encoding";

  public static final String ENCODING_OTLP_PROTO = "otlp_proto";
  public static final String HEADER_SCHEMA_VERSION = "schema-version";
  public static final String SCHEMA_VERSION = "1";

  private final Producer<byte[], byte[]> producer;
  private final String topic;
  private final Duration deliveryTimeout;
  private final int maxValueBytes;
  private final AtomicBoolean shutdown = new AtomicBoolean();
  private final AtomicInteger acknowledgedRecords = new AtomicInteger();

  private KafkaSpanExporter(Builder b) {
    this.topic = b.topic;
    this.deliveryTimeout = b.deliveryTimeout;
    this.maxValueBytes = b.maxValueBytes;
    this.producer = new KafkaProducer<>(producerConfig(b));
  }

  /** Starts a builder; bootstrap servers and topic are required. */
  public static Builder builder() {
    return new Builder();
  }

  /** The producer settings the contract needs, then the caller's extra properties. */
  static Properties producerConfig(Builder b) {
    long timeoutMs = b.deliveryTimeout.toMillis();
    long lingerMs = 5;
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, b.bootstrapServers);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, b.compression);
    p.put(ProducerConfig.LINGER_MS_CONFIG, Long.toString(lingerMs));
    // Kafka requires delivery.timeout.ms >= linger.ms + request.timeout.ms.
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(timeoutMs));
    p.put(
        ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG,
        Long.toString(Math.max(1, Math.min(30_000, timeoutMs - lingerMs))));
    // send() waits this long for metadata (e.g. no broker reachable) before it throws.
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(timeoutMs));
    // partitioner.class stays unset: keyed records are hashed with murmur2, the contract's
    // partitioner.
    p.putAll(b.extra);
    return p;
  }

  @Override
  public CompletableResultCode export(Collection<SpanData> spans) {
    if (shutdown.get()) {
      return CompletableResultCode.ofExceptionalFailure(
          new IllegalStateException("kafka exporter: export after shutdown"));
    }
    TraceRecords.Result built = TraceRecords.build(spans, maxValueBytes);
    List<String> errors = new ArrayList<>(built.errors());
    List<TraceRecords.TraceRecord> records = built.records();
    CompletableResultCode result = new CompletableResultCode();
    AtomicInteger pending = new AtomicInteger(records.size() + 1);
    AtomicInteger ackedSpans = new AtomicInteger();
    Runnable finishOne =
        () -> {
          if (pending.decrementAndGet() != 0) {
            return;
          }
          List<String> all;
          synchronized (errors) {
            all = List.copyOf(errors);
          }
          if (all.isEmpty()) {
            result.succeed();
            return;
          }
          String message =
              String.format(
                  "kafka exporter: %d of %d spans in this export not published: %s",
                  spans.size() - ackedSpans.get(), spans.size(), String.join("; ", all));
          logger.log(Level.WARNING, message);
          result.failExceptionally(new KafkaExportException(message));
        };
    long deadline = System.nanoTime() + deliveryTimeout.toNanos();
    for (TraceRecords.TraceRecord r : records) {
      if (System.nanoTime() - deadline > 0) {
        // An earlier send already waited the whole timeout (no metadata): do not wait again per
        // record.
        synchronized (errors) {
          errors.add("trace " + r.key() + ": not sent, the delivery timeout has passed");
        }
        finishOne.run();
        continue;
      }
      ProducerRecord<byte[], byte[]> rec =
          new ProducerRecord<>(topic, r.key().getBytes(StandardCharsets.UTF_8), r.value());
      rec.headers().add(new RecordHeader(HEADER_ENCODING, bytes(ENCODING_OTLP_PROTO)));
      rec.headers().add(new RecordHeader(HEADER_SCHEMA_VERSION, bytes(SCHEMA_VERSION)));
      try {
        producer.send(
            rec,
            (metadata, exception) -> {
              if (exception != null) {
                synchronized (errors) {
                  errors.add(
                      String.format(
                          "trace %s: record of %d spans not acknowledged: %s",
                          r.key(), r.spans(), exception));
                }
              } else {
                ackedSpans.addAndGet(r.spans());
                acknowledgedRecords.incrementAndGet();
              }
              finishOne.run();
            });
      } catch (RuntimeException e) {
        synchronized (errors) {
          errors.add(String.format("trace %s: record of %d spans not sent: %s", r.key(), r.spans(), e));
        }
        finishOne.run();
      }
    }
    finishOne.run();
    return result;
  }

  /** Waits for everything the producer still buffers. */
  @Override
  public CompletableResultCode flush() {
    try {
      producer.flush();
      return CompletableResultCode.ofSuccess();
    } catch (RuntimeException e) {
      return CompletableResultCode.ofExceptionalFailure(e);
    }
  }

  /** Flushes and closes the producer; later exports fail. */
  @Override
  public CompletableResultCode shutdown() {
    if (!shutdown.compareAndSet(false, true)) {
      return CompletableResultCode.ofSuccess();
    }
    try {
      producer.flush();
      producer.close(deliveryTimeout);
      return CompletableResultCode.ofSuccess();
    } catch (RuntimeException e) {
      return CompletableResultCode.ofExceptionalFailure(e);
    }
  }

  /** Records acknowledged so far. */
  public int acknowledgedRecords() {
    return acknowledgedRecords.get();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** The failure an export result carries. */
  public static final class KafkaExportException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    KafkaExportException(String message) {
      super(message);
    }
  }

  /** Configuration of a {@link KafkaSpanExporter}, validated before any connection. */
  public static final class Builder {
    private String bootstrapServers;
    private String topic;
    private String compression = "zstd";
    private Duration deliveryTimeout = Duration.ofSeconds(30);
    private int maxValueBytes = TraceRecords.MAX_VALUE_BYTES;
    private final Properties extra = new Properties();

    private Builder() {}

    /** Brokers to bootstrap from, {@code host:port[,host:port]}. */
    public Builder setBootstrapServers(String servers) {
      this.bootstrapServers = servers;
      return this;
    }

    /** Topic the records go to. */
    public Builder setTopic(String topic) {
      this.topic = topic;
      return this;
    }

    /** Compression of record batches: zstd (default), gzip, lz4, snappy or none. */
    public Builder setCompression(String codec) {
      this.compression = codec.toLowerCase(Locale.ROOT);
      return this;
    }

    /** How long an export waits for acknowledgements before it fails; default 30 s. */
    public Builder setDeliveryTimeout(Duration timeout) {
      this.deliveryTimeout = timeout;
      return this;
    }

    /** Split threshold of a record value; default and maximum 1,000,000 bytes. */
    public Builder setMaxValueBytes(int bytes) {
      this.maxValueBytes = bytes;
      return this;
    }

    /**
     * Extra producer properties (TLS, SASL, client.id). Properties that change acks, idempotence
     * or the partitioner break the contract.
     */
    public Builder putProducerProperty(String key, String value) {
      extra.put(key, value);
      return this;
    }

    public KafkaSpanExporter build() {
      if (bootstrapServers == null || bootstrapServers.isBlank()) {
        throw new IllegalArgumentException("bootstrap servers: at least one host:port is required");
      }
      if (topic == null || topic.isBlank()) {
        throw new IllegalArgumentException("topic: a topic name is required");
      }
      if (!List.of("zstd", "gzip", "lz4", "snappy", "none").contains(compression)) {
        throw new IllegalArgumentException(
            "compression \"" + compression + "\" is not one of zstd, gzip, lz4, snappy, none");
      }
      Objects.requireNonNull(deliveryTimeout, "delivery timeout");
      if (deliveryTimeout.isNegative() || deliveryTimeout.toMillis() < 1) {
        throw new IllegalArgumentException("delivery timeout " + deliveryTimeout + ": must be positive");
      }
      if (maxValueBytes < 1 || maxValueBytes > TraceRecords.MAX_VALUE_BYTES) {
        throw new IllegalArgumentException(
            "max value bytes " + maxValueBytes + ": must be between 1 and " + TraceRecords.MAX_VALUE_BYTES);
      }
      return new KafkaSpanExporter(this);
    }
  }
}
