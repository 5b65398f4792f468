package main

// `example`: two services instrumented with the OpenTelemetry Go SDK, each
// with its own TracerProvider, BatchSpanProcessor and kit exporter, making
// checkout traces (frontend -> payments -> postgresql, context carried
// between the services in W3C traceparent headers). Every span the kit
// reports as exported is written to --out as one ExportTraceServiceRequest.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"spanway/schemas/producers/go/kafkaexporter"
)

// recording passes spans to the kit and keeps those it reported exported.
type recording struct {
	inner *kafkaexporter.Exporter

	mu        sync.Mutex
	delivered []sdktrace.ReadOnlySpan
	failed    int
}

func (r *recording) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := r.inner.ExportSpans(ctx, spans)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed += len(spans)
		fmt.Fprintf(os.Stderr, "export of %d spans failed: %v\n", len(spans), err)
		return err
	}
	r.delivered = append(r.delivered, spans...)
	return nil
}

func (r *recording) Shutdown(ctx context.Context) error { return r.inner.Shutdown(ctx) }

type service struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	exporter *recording
}

func newService(name, runID string, cfg kafkaexporter.Config, exportTimeout time.Duration) (*service, error) {
	exp, err := kafkaexporter.New(cfg)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", name),
		attribute.String("spanway.test.run", runID),
	))
	if err != nil {
		return nil, err
	}
	rec := &recording{inner: exp}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(rec,
			// Block rather than drop when the queue is full, and make the
			// queue and batch large enough that the big trace reaches the
			// kit in one export call (the kit must split it, not the
			// processor). The program flushes at the end, so a long batch
			// timeout costs nothing.
			sdktrace.WithBlocking(),
			sdktrace.WithMaxQueueSize(8192),
			sdktrace.WithMaxExportBatchSize(8192),
			sdktrace.WithBatchTimeout(time.Minute),
			sdktrace.WithExportTimeout(exportTimeout),
		),
	)
	return &service{provider: provider, tracer: provider.Tracer("spanway.example."+name, trace.WithInstrumentationVersion("1.0.0")), exporter: rec}, nil
}

func runExample(args []string) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap brokers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic to publish to")
	runID := fs.String("run-id", "", "value of the spanway.test.run resource attribute")
	out := fs.String("out", "", "file for the exported spans (ExportTraceServiceRequest)")
	traces := fs.Int("traces", 10, "checkout traces to make")
	bigTrace := fs.Bool("big-trace", false, "add a trace of about 2,500 spans that encodes over 1,000,000 bytes")
	timeoutMS := fs.Int("timeout-ms", 30000, "delivery timeout in milliseconds")
	compression := fs.String("compression", "zstd", "zstd, gzip, lz4, snappy or none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" || *runID == "" || *out == "" {
		return errors.New("--brokers, --topic, --run-id and --out are required")
	}
	timeout := time.Duration(*timeoutMS) * time.Millisecond
	cfg := kafkaexporter.Config{
		Brokers: strings.Split(*brokers, ","), Topic: *topic,
		Compression: *compression, DeliveryTimeout: timeout,
	}
	// The processor's own export deadline stays above the kit's delivery
	// timeout so that the kit, not the processor, decides when to give up.
	frontend, err := newService("frontend", *runID, cfg, timeout+15*time.Second)
	if err != nil {
		return err
	}
	payments, err := newService("payments", *runID, cfg, timeout+15*time.Second)
	if err != nil {
		return err
	}
	services := []*service{frontend, payments}

	for i := 0; i < *traces; i++ {
		checkout(frontend, payments, i)
	}
	if *bigTrace {
		big(frontend)
	}

	// Flush and shut down every provider at once: with no broker, each
	// waits for the delivery timeout, and in parallel that is paid once.
	var wg sync.WaitGroup
	errs := make([]error, len(services))
	for i, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout+25*time.Second)
			defer cancel()
			errs[i] = errors.Join(s.provider.ForceFlush(ctx), s.provider.Shutdown(ctx))
		}()
	}
	wg.Wait()

	var delivered []sdktrace.ReadOnlySpan
	failed := 0
	for _, s := range services {
		delivered = append(delivered, s.exporter.delivered...)
		failed += s.exporter.failed
	}
	// ExportTraceServiceRequest and TracesData are the same message on the
	// wire (field 1: repeated ResourceSpans); encoding the latter keeps the
	// gRPC service package, and gRPC with it, out of the build.
	req := &tracepb.TracesData{ResourceSpans: kafkaexporter.ResourceSpans(delivered)}
	body, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return err
	}
	fmt.Printf("exported %d spans\n", len(delivered))
	if failed > 0 {
		return fmt.Errorf("%d spans were not exported", failed)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flushing the providers: %w", err)
	}
	return nil
}

// checkout makes one trace across the two services. Every 5th trace the
// payments server span ends with an error status.
func checkout(frontend, payments *service, i int) {
	ctx, root := frontend.tracer.Start(context.Background(), "GET /checkout",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("url.path", "/checkout")))

	_, internal := frontend.tracer.Start(ctx, "compute cart", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("cart.currency", "EUR"),
			attribute.Int64("cart.items", int64(i%4+1)),
			attribute.Float64("cart.total", 19.99+float64(i)),
			attribute.Bool("cart.gift", i%2 == 0),
			attribute.StringSlice("cart.skus", []string{"sku-1", "sku-2"}),
		))
	internal.AddEvent("cart priced", trace.WithAttributes(attribute.Int64("cart.discount", 5)))
	internal.End()

	clientCtx, client := frontend.tracer.Start(ctx, "POST /pay", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("peer.service", "payments")))
	// In-process stand-in for an HTTP call: the client injects traceparent,
	// the server extracts it.
	headers := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(clientCtx, headers)
	serverCtx := propagation.TraceContext{}.Extract(context.Background(), headers)
	paymentsServer(payments, serverCtx, i%5 == 4)
	client.End()
	root.End()
}

func paymentsServer(payments *service, ctx context.Context, fail bool) {
	ctx, server := payments.tracer.Start(ctx, "POST /pay", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "POST")))
	_, db := payments.tracer.Start(ctx, "SELECT cards", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("db.system", "postgresql"),
			attribute.String("db.name", "cards"),
			attribute.String("peer.service", "postgresql"),
			attribute.String("server.address", "db"),
		))
	db.End()
	if fail {
		server.SetStatus(codes.Error, "card declined")
	}
	server.End()
}

// big makes a trace of 2,500 spans with a 600-byte attribute each, about
// 1.7 MB encoded: the kit has to split it into several records.
func big(frontend *service) {
	payload := strings.Repeat("x", 600)
	ctx, root := frontend.tracer.Start(context.Background(), "GET /report", trace.WithSpanKind(trace.SpanKindServer))
	for i := 0; i < 2499; i++ {
		_, s := frontend.tracer.Start(ctx, fmt.Sprintf("row %d", i),
			trace.WithAttributes(attribute.String("report.row", payload), attribute.Int("report.index", i)))
		s.End()
	}
	root.End()
}
