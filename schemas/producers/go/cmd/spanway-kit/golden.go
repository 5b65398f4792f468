package main

// `golden`: each schemas/testdata/*.otlp_proto.json manifest names a record
// value (TracesData). It is decoded, turned back into the SDK's finished-span
// data and exported through the kit, one export call per golden trace, so the
// records on the topic show what the kit makes of the same spans.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"spanway/schemas/producers/go/kafkaexporter"
)

// manifest is the part of a golden manifest this command reads.
type manifest struct {
	Key       string `json:"key"`
	ValueFile string `json:"value_file"`
}

func runGolden(args []string) error {
	fs := flag.NewFlagSet("golden", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap brokers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic to publish to")
	testdata := fs.String("testdata", "", "directory with the golden *.otlp_proto.json manifests")
	compression := fs.String("compression", "zstd", "zstd, gzip, lz4, snappy or none")
	timeoutMS := fs.Int("timeout-ms", 30000, "delivery timeout in milliseconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *topic == "" || *testdata == "" {
		return errors.New("--brokers, --topic and --testdata are required")
	}
	manifests, err := filepath.Glob(filepath.Join(*testdata, "*.otlp_proto.json"))
	if err != nil {
		return err
	}
	if len(manifests) == 0 {
		return fmt.Errorf("no *.otlp_proto.json manifest in %s", *testdata)
	}
	sort.Strings(manifests)

	exp, err := kafkaexporter.New(kafkaexporter.Config{
		Brokers:         strings.Split(*brokers, ","),
		Topic:           *topic,
		Compression:     *compression,
		DeliveryTimeout: time.Duration(*timeoutMS) * time.Millisecond,
	})
	if err != nil {
		return err
	}
	failed := 0
	for _, path := range manifests {
		spans, key, err := loadGolden(path)
		if err != nil {
			exp.Shutdown(context.Background())
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := exp.ExportSpans(context.Background(), spans); err != nil {
			fmt.Fprintf(os.Stderr, "export of %s failed: %v\n", filepath.Base(path), err)
			failed++
			continue
		}
		fmt.Printf("exported trace %s: %d spans from %s\n", key, len(spans), filepath.Base(path))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exp.Shutdown(ctx); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d golden traces failed to export", failed, len(manifests))
	}
	return nil
}

func loadGolden(path string) ([]sdktrace.ReadOnlySpan, string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", fmt.Errorf("manifest: %w", err)
	}
	value, err := os.ReadFile(filepath.Join(filepath.Dir(path), m.ValueFile))
	if err != nil {
		return nil, "", err
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(value, &td); err != nil {
		return nil, "", fmt.Errorf("%s: not a TracesData: %w", m.ValueFile, err)
	}
	spans, err := ReadOnlySpans(&td)
	return spans, m.Key, err
}

// ReadOnlySpans turns OTLP spans back into the SDK's finished-span data.
func ReadOnlySpans(td *tracepb.TracesData) ([]sdktrace.ReadOnlySpan, error) {
	var stubs tracetest.SpanStubs
	for i, rs := range td.ResourceSpans {
		res := resource.NewWithAttributes(rs.SchemaUrl, attributes(rs.GetResource().GetAttributes())...)
		for j, ss := range rs.ScopeSpans {
			scope := instrumentation.Scope{
				Name:       ss.GetScope().GetName(),
				Version:    ss.GetScope().GetVersion(),
				SchemaURL:  ss.SchemaUrl,
				Attributes: attribute.NewSet(attributes(ss.GetScope().GetAttributes())...),
			}
			for k, s := range ss.Spans {
				stub, err := spanStub(s, res, scope)
				if err != nil {
					return nil, fmt.Errorf("resourceSpans[%d].scopeSpans[%d].spans[%d]: %w", i, j, k, err)
				}
				stubs = append(stubs, stub)
			}
		}
	}
	return stubs.Snapshots(), nil
}

func spanStub(s *tracepb.Span, res *resource.Resource, scope instrumentation.Scope) (tracetest.SpanStub, error) {
	var tid trace.TraceID
	var sid trace.SpanID
	if len(s.TraceId) != len(tid) || len(s.SpanId) != len(sid) {
		return tracetest.SpanStub{}, fmt.Errorf("trace id of %d bytes or span id of %d bytes", len(s.TraceId), len(s.SpanId))
	}
	copy(tid[:], s.TraceId)
	copy(sid[:], s.SpanId)
	ts, err := trace.ParseTraceState(s.TraceState)
	if err != nil {
		return tracetest.SpanStub{}, fmt.Errorf("traceState: %w", err)
	}
	stub := tracetest.SpanStub{
		Name: s.Name,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(s.Flags & 0xff), TraceState: ts,
		}),
		SpanKind:             spanKind(s.Kind),
		StartTime:            fromUnixNano(s.StartTimeUnixNano),
		EndTime:              fromUnixNano(s.EndTimeUnixNano),
		Attributes:           attributes(s.Attributes),
		DroppedAttributes:    int(s.DroppedAttributesCount),
		DroppedEvents:        int(s.DroppedEventsCount),
		DroppedLinks:         int(s.DroppedLinksCount),
		Status:               spanStatus(s.Status),
		Resource:             res,
		InstrumentationScope: scope,
	}
	if len(s.ParentSpanId) == len(sid) {
		var psid trace.SpanID
		copy(psid[:], s.ParentSpanId)
		stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: psid,
			Remote: s.Flags&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) != 0,
		})
	}
	for _, e := range s.Events {
		stub.Events = append(stub.Events, sdktrace.Event{
			Name: e.Name, Time: fromUnixNano(e.TimeUnixNano),
			Attributes: attributes(e.Attributes), DroppedAttributeCount: int(e.DroppedAttributesCount),
		})
	}
	for _, l := range s.Links {
		var ltid trace.TraceID
		var lsid trace.SpanID
		copy(ltid[:], l.TraceId)
		copy(lsid[:], l.SpanId)
		lts, err := trace.ParseTraceState(l.TraceState)
		if err != nil {
			return tracetest.SpanStub{}, fmt.Errorf("links.traceState: %w", err)
		}
		stub.Links = append(stub.Links, sdktrace.Link{
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: ltid, SpanID: lsid, TraceFlags: trace.TraceFlags(l.Flags & 0xff), TraceState: lts,
				Remote: l.Flags&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) != 0,
			}),
			Attributes: attributes(l.Attributes), DroppedAttributeCount: int(l.DroppedAttributesCount),
		})
	}
	return stub, nil
}

func fromUnixNano(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func spanKind(k tracepb.Span_SpanKind) trace.SpanKind {
	switch k {
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return trace.SpanKindInternal
	case tracepb.Span_SPAN_KIND_SERVER:
		return trace.SpanKindServer
	case tracepb.Span_SPAN_KIND_CLIENT:
		return trace.SpanKindClient
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return trace.SpanKindProducer
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return trace.SpanKindConsumer
	default:
		return trace.SpanKindUnspecified
	}
}

func spanStatus(st *tracepb.Status) sdktrace.Status {
	switch st.GetCode() {
	case tracepb.Status_STATUS_CODE_OK:
		return sdktrace.Status{Code: codes.Ok}
	case tracepb.Status_STATUS_CODE_ERROR:
		return sdktrace.Status{Code: codes.Error, Description: st.GetMessage()}
	default:
		return sdktrace.Status{Code: codes.Unset}
	}
}

func attributes(kvs []*commonpb.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, attribute.KeyValue{Key: attribute.Key(kv.Key), Value: value(kv.Value)})
	}
	return out
}

// value maps an AnyValue onto the attribute type the SDK would have used for
// it: arrays of one primitive type become typed slices, anything else a
// generic slice; key-value lists become maps; a missing value stays empty.
func value(v *commonpb.AnyValue) attribute.Value {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return attribute.StringValue(x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return attribute.BoolValue(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return attribute.Int64Value(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return attribute.Float64Value(x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return attribute.ByteSliceValue(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		return arrayValue(x.ArrayValue.GetValues())
	case *commonpb.AnyValue_KvlistValue:
		return attribute.MapValue(attributes(x.KvlistValue.GetValues())...)
	default:
		return attribute.Value{}
	}
}

func arrayValue(items []*commonpb.AnyValue) attribute.Value {
	values := make([]attribute.Value, 0, len(items))
	for _, it := range items {
		values = append(values, value(it))
	}
	if len(values) == 0 {
		return attribute.SliceValue()
	}
	kind := values[0].Type()
	for _, v := range values[1:] {
		if v.Type() != kind {
			return attribute.SliceValue(values...)
		}
	}
	switch kind {
	case attribute.STRING:
		s := make([]string, len(values))
		for i, v := range values {
			s[i] = v.AsString()
		}
		return attribute.StringSliceValue(s)
	case attribute.BOOL:
		s := make([]bool, len(values))
		for i, v := range values {
			s[i] = v.AsBool()
		}
		return attribute.BoolSliceValue(s)
	case attribute.INT64:
		s := make([]int64, len(values))
		for i, v := range values {
			s[i] = v.AsInt64()
		}
		return attribute.Int64SliceValue(s)
	case attribute.FLOAT64:
		s := make([]float64, len(values))
		for i, v := range values {
			s[i] = v.AsFloat64()
		}
		return attribute.Float64SliceValue(s)
	default:
		return attribute.SliceValue(values...)
	}
}
