package kafkaexporter

import (
	"testing"
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
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func array(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}

func TestEveryAttributeType(t *testing.T) {
	i := func(v int64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
	}
	b := func(v bool) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}
	}
	d := func(v float64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}
	}
	for _, c := range []struct {
		in   attribute.Value
		want *commonpb.AnyValue
	}{
		{attribute.StringValue("s"), str("s")},
		{attribute.Int64Value(-3), i(-3)},
		{attribute.Float64Value(0.5), d(0.5)},
		{attribute.BoolValue(true), b(true)},
		{attribute.ByteSliceValue([]byte{0xde, 0xad}), &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xde, 0xad}}}},
		{attribute.StringSliceValue([]string{"a", "b"}), array(str("a"), str("b"))},
		{attribute.Int64SliceValue([]int64{1, 2}), array(i(1), i(2))},
		{attribute.Float64SliceValue([]float64{1.5}), array(d(1.5))},
		{attribute.BoolSliceValue([]bool{true, false}), array(b(true), b(false))},
		{attribute.SliceValue(attribute.StringValue("x"), attribute.Int64Value(1)), array(str("x"), i(1))},
		{attribute.MapValue(attribute.String("k", "v")), &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
			KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "k", Value: str("v")}}},
		}}},
		{attribute.Value{}, &commonpb.AnyValue{}},
	} {
		if got := Value(c.in); !proto.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.in.Type(), got, c.want)
		}
	}
}

func TestSpanFieldsAreAllCarried(t *testing.T) {
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ts, _ := trace.ParseTraceState("vendor=x")
	start := time.Unix(1767225600, 5)
	s := tracetest.SpanStub{
		Name: "op",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, TraceState: ts,
		}),
		Parent:     trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{2}, Remote: true}),
		SpanKind:   trace.SpanKindConsumer,
		StartTime:  start,
		EndTime:    start.Add(time.Second),
		Attributes: []attribute.KeyValue{attribute.String("a", "b")},
		Events: []sdktrace.Event{{Name: "e", Time: start.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.Int("n", 1)}, DroppedAttributeCount: 2}},
		Links: []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled,
		}), Attributes: []attribute.KeyValue{attribute.Bool("l", true)}, DroppedAttributeCount: 1}},
		Status:            sdktrace.Status{Code: codes.Error, Description: "boom"},
		DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5,
		Resource: resource.NewWithAttributes("https://schema/r", attribute.String("service.name", "svc")),
		InstrumentationScope: instrumentation.Scope{Name: "lib", Version: "1.2", SchemaURL: "https://schema/s",
			Attributes: attribute.NewSet(attribute.String("scope.attr", "v"))},
	}
	got := &tracepb.TracesData{ResourceSpans: ResourceSpans(tracetest.SpanStubs{s}.Snapshots())}
	want := &tracepb.TracesData{}
	if err := prototext.Unmarshal([]byte(`
resource_spans {
  resource { attributes { key: "service.name" value { string_value: "svc" } } }
  schema_url: "https://schema/r"
  scope_spans {
    scope { name: "lib" version: "1.2" attributes { key: "scope.attr" value { string_value: "v" } } }
    schema_url: "https://schema/s"
    spans {
      trace_id: "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
      span_id: "\x01\x00\x00\x00\x00\x00\x00\x00"
      trace_state: "vendor=x"
      parent_span_id: "\x02\x00\x00\x00\x00\x00\x00\x00"
      flags: 769
      name: "op"
      kind: SPAN_KIND_CONSUMER
      start_time_unix_nano: 1767225600000000005
      end_time_unix_nano: 1767225601000000005
      attributes { key: "a" value { string_value: "b" } }
      dropped_attributes_count: 3
      events { time_unix_nano: 1767225600001000005 name: "e" attributes { key: "n" value { int_value: 1 } } dropped_attributes_count: 2 }
      dropped_events_count: 4
      links {
        trace_id: "\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        span_id: "\x09\x00\x00\x00\x00\x00\x00\x00"
        attributes { key: "l" value { bool_value: true } }
        dropped_attributes_count: 1
        flags: 257
      }
      dropped_links_count: 5
      status { message: "boom" code: STATUS_CODE_ERROR }
    }
  }
}`), want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", prototext.Format(got), prototext.Format(want))
	}
}
