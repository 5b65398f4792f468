// Package kafkaexporter is an OpenTelemetry Go SDK SpanExporter that
// publishes finished spans to a Kafka topic as the spanway topic contract
// says (schemas/README.md): one otlp_proto record per trace of each export
// call (a TracesData holding only that trace's spans), keyed by the trace id
// in 32 lowercase hex characters, with the headers encoding=otlp_proto and
// schema-version=1, partitioned with Kafka's murmur2 hash like the Java
// client, values of at most 1,000,000 bytes (larger traces are split at span
// boundaries).
//
// ExportSpans returns only when every record was acknowledged by all in-sync
// replicas (idempotent producer, acks=all) or failed: a record that is not
// acknowledged within the delivery timeout, or a span too large to publish,
// makes the call return an error, which the SDK counts as a failed export.
// Nothing is dropped without an error.
package kafkaexporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config of the exporter. Zero values take the defaults named below.
type Config struct {
	// Brokers to bootstrap from, host:port.
	Brokers []string
	// Topic the records go to.
	Topic string
	// Compression codec of record batches: zstd (default), gzip, lz4,
	// snappy or none.
	Compression string
	// DeliveryTimeout bounds how long an export waits for its records to be
	// acknowledged; past it the export fails. Default 30 s.
	DeliveryTimeout time.Duration
	// MaxValueBytes is the split threshold for a record value. Default (and
	// maximum allowed by the contract) MaxValueBytes.
	MaxValueBytes int
	// ClientOptions are appended to the kit's own franz-go options, e.g. TLS
	// or SASL. Options that change acks, idempotence or the partitioner
	// break the contract.
	ClientOptions []kgo.Opt
}

// DefaultDeliveryTimeout is the delivery timeout when none is configured.
const DefaultDeliveryTimeout = 30 * time.Second

// Exporter publishes spans to Kafka. It is safe for concurrent use.
type Exporter struct {
	cfg    Config
	client *kgo.Client

	mu       sync.Mutex
	shutdown bool
	stats    Stats
}

// Stats counts what the exporter published, for tests and logs.
type Stats struct {
	Records int // records acknowledged
	Spans   int // spans in acknowledged records
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// Partitioner is the contract's partitioner: keyed records go to
// (murmur2(key) & 0x7fffffff) % partitions, as Kafka's Java client does.
func Partitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// Compression parses a codec name.
func Compression(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	default:
		return kgo.CompressionCodec{}, fmt.Errorf("compression %q is not one of zstd, gzip, lz4, snappy, none", name)
	}
}

// New validates cfg and creates the producer. It does not contact the
// brokers: connection problems show up as failed exports.
func New(cfg Config) (*Exporter, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("brokers: at least one host:port is required")
	}
	if cfg.Topic == "" {
		return nil, errors.New("topic: a topic name is required")
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.DeliveryTimeout < 0 {
		return nil, fmt.Errorf("delivery timeout %s: must be positive", cfg.DeliveryTimeout)
	}
	if cfg.MaxValueBytes == 0 {
		cfg.MaxValueBytes = MaxValueBytes
	}
	if cfg.MaxValueBytes < 0 || cfg.MaxValueBytes > MaxValueBytes {
		return nil, fmt.Errorf("max value bytes %d: must be between 1 and %d", cfg.MaxValueBytes, MaxValueBytes)
	}
	codec, err := Compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(Partitioner()),
		// Idempotence is franz-go's default and needs acks from all
		// in-sync replicas; both are stated so that they stay.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		// A 1,000,000-byte value plus key, headers and batch framing passes
		// franz-go's default batch cap of 1,000,012 bytes; the broker's
		// default message.max.bytes is 1,048,588.
		kgo.ProducerBatchMaxBytes(1_048_576),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProduceRequestTimeout(cfg.DeliveryTimeout),
	}
	opts = append(opts, cfg.ClientOptions...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the Kafka client: %w", err)
	}
	return &Exporter{cfg: cfg, client: client}, nil
}

// ExportSpans publishes spans and waits for every record's acknowledgement.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	closed := e.shutdown
	e.mu.Unlock()
	if closed {
		return errors.New("kafka exporter: export after shutdown")
	}
	records, errs := BuildRecords(spans, e.cfg.MaxValueBytes)

	ctx, cancel := context.WithTimeout(ctx, e.cfg.DeliveryTimeout)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		acked    Stats
	)
	for _, r := range records {
		rec := &kgo.Record{
			Key:   []byte(r.Key),
			Value: r.Value,
			Headers: []kgo.RecordHeader{
				{Key: HeaderEncoding, Value: []byte(EncodingOTLPProto)},
				{Key: HeaderSchemaVersion, Value: []byte(SchemaVersion)},
			},
		}
		spanCount, key := r.Spans, r.Key
		wg.Add(1)
		e.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Errorf("trace %s: record of %d spans not acknowledged: %w", key, spanCount, err))
				return
			}
			acked.Records++
			acked.Spans += spanCount
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// franz-go fails a record whose context ends only while it is safe for
		// the idempotent sequence; a record already in flight is waited for
		// a little, then counted as failed here.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			mu.Lock()
			failures = append(failures, fmt.Errorf("records not acknowledged within %s: %w", e.cfg.DeliveryTimeout, ctx.Err()))
			mu.Unlock()
		}
	}
	mu.Lock()
	errs = append(errs, failures...)
	e.mu.Lock()
	e.stats.Records += acked.Records
	e.stats.Spans += acked.Spans
	e.mu.Unlock()
	mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("kafka exporter: %d of %d spans in this export not published: %w",
			len(spans)-acked.Spans, len(spans), errors.Join(errs...))
	}
	return nil
}

// ForceFlush waits for anything still buffered in the producer. ExportSpans
// already waits for its records, so this only matters for exports that
// gave up waiting.
func (e *Exporter) ForceFlush(ctx context.Context) error {
	return e.client.Flush(ctx)
}

// Shutdown flushes the producer and closes the client. Later exports fail.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.shutdown {
		e.mu.Unlock()
		return nil
	}
	e.shutdown = true
	e.mu.Unlock()
	err := e.client.Flush(ctx)
	e.client.Close()
	if err != nil {
		return fmt.Errorf("kafka exporter: flushing on shutdown: %w", err)
	}
	return nil
}

// Stats returns what the exporter has published so far.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}
