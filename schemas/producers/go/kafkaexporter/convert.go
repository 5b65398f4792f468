package kafkaexporter

// Conversion of the SDK's finished spans into OTLP protobuf messages.
//
// The Go SDK keeps its own OTLP transform in an internal package, so the kit
// converts with the published go.opentelemetry.io/proto/otlp types. Every
// field the SDK records is carried over: resource (attributes, schema URL),
// instrumentation scope (name, version, attributes, schema URL), ids, parent,
// trace state, flags, kind, times, attributes of every value type, events,
// links, status and the dropped counts. Grouping keeps first-seen order so
// the same input always encodes to the same bytes.

import (
	"encoding/hex"
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TraceKey is the record key of a trace: its id as 32 lowercase hex
// characters, also when the high half is zero.
func TraceKey(id trace.TraceID) string {
	return hex.EncodeToString(id[:])
}

// ResourceSpans converts spans into OTLP ResourceSpans, one per distinct
// resource and within it one ScopeSpans per distinct scope, in the order the
// spans come.
func ResourceSpans(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	type resourceKey struct {
		attrs  attribute.Distinct
		schema string
	}
	type scopeKey struct {
		res   resourceKey
		scope instrumentation.Scope
	}
	var out []*tracepb.ResourceSpans
	resources := map[resourceKey]*tracepb.ResourceSpans{}
	scopes := map[scopeKey]*tracepb.ScopeSpans{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		res := s.Resource()
		rk := resourceKey{attrs: res.Equivalent(), schema: res.SchemaURL()}
		rs, ok := resources[rk]
		if !ok {
			rs = &tracepb.ResourceSpans{Resource: Resource(res), SchemaUrl: res.SchemaURL()}
			resources[rk] = rs
			out = append(out, rs)
		}
		sk := scopeKey{res: rk, scope: s.InstrumentationScope()}
		ss, ok := scopes[sk]
		if !ok {
			ss = &tracepb.ScopeSpans{Scope: Scope(sk.scope), SchemaUrl: sk.scope.SchemaURL}
			scopes[sk] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, Span(s))
	}
	return out
}

// Resource converts an SDK resource (nil is the empty resource).
func Resource(res *resource.Resource) *resourcepb.Resource {
	if res == nil {
		return &resourcepb.Resource{}
	}
	iter := res.Iter()
	return &resourcepb.Resource{Attributes: iterKeyValues(&iter)}
}

// Scope converts an instrumentation scope; a scope with no name, version or
// attributes is left out (nil), which reads the same as an empty one.
func Scope(s instrumentation.Scope) *commonpb.InstrumentationScope {
	if s.Name == "" && s.Version == "" && s.Attributes.Len() == 0 {
		return nil
	}
	iter := s.Attributes.Iter()
	return &commonpb.InstrumentationScope{
		Name:       s.Name,
		Version:    s.Version,
		Attributes: iterKeyValues(&iter),
	}
}

// Span converts one finished span.
func Span(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	out := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Flags:                  spanFlags(sc.TraceFlags(), s.Parent()),
		Name:                   s.Name(),
		Kind:                   spanKind(s.SpanKind()),
		StartTimeUnixNano:      unixNano(s.StartTime()),
		EndTimeUnixNano:        unixNano(s.EndTime()),
		Attributes:             KeyValues(s.Attributes()),
		DroppedAttributesCount: clampCount(s.DroppedAttributes()),
		DroppedEventsCount:     clampCount(s.DroppedEvents()),
		DroppedLinksCount:      clampCount(s.DroppedLinks()),
		Status:                 status(s.Status()),
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		psid := p.SpanID()
		out.ParentSpanId = psid[:]
	}
	for _, e := range s.Events() {
		out.Events = append(out.Events, &tracepb.Span_Event{
			TimeUnixNano:           unixNano(e.Time),
			Name:                   e.Name,
			Attributes:             KeyValues(e.Attributes),
			DroppedAttributesCount: clampCount(e.DroppedAttributeCount),
		})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out.Links = append(out.Links, &tracepb.Span_Link{
			TraceId:                ltid[:],
			SpanId:                 lsid[:],
			TraceState:             l.SpanContext.TraceState().String(),
			Attributes:             KeyValues(l.Attributes),
			DroppedAttributesCount: clampCount(l.DroppedAttributeCount),
			Flags:                  spanFlags(l.SpanContext.TraceFlags(), l.SpanContext),
		})
	}
	return out
}

// spanFlags puts the W3C trace flags in the low byte and, because the SDK
// always knows whether the parent (or linked) context is remote, sets the
// "has is_remote" bit and the "is_remote" bit when it is.
func spanFlags(tf trace.TraceFlags, other trace.SpanContext) uint32 {
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if other.IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	default:
		return tracepb.Span_SPAN_KIND_UNSPECIFIED
	}
}

// status converts a span status; an unset status is left out (nil), which
// reads the same as STATUS_CODE_UNSET.
func status(st sdktrace.Status) *tracepb.Status {
	if st.Code == codes.Unset {
		return nil
	}
	out := &tracepb.Status{}
	switch st.Code {
	case codes.Ok:
		out.Code = tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		out.Code = tracepb.Status_STATUS_CODE_ERROR
		// The SDK keeps a description only with an error status, as OTLP says.
		out.Message = st.Description
	}
	return out
}

// KeyValues converts attributes in the order given.
func KeyValues(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: Value(kv.Value)})
	}
	return out
}

func iterKeyValues(iter *attribute.Iterator) []*commonpb.KeyValue {
	if iter.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, iter.Len())
	for iter.Next() {
		kv := iter.Attribute()
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: Value(kv.Value)})
	}
	return out
}

// Value converts an attribute value of any type into an OTLP AnyValue:
// homogeneous slices become array values, BYTESLICE a bytes value, MAP a
// key-value list, EMPTY an AnyValue with no value set.
func Value(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		return arrayOf(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue { return Value(attribute.BoolValue(b)) })
	case attribute.INT64SLICE:
		return arrayOf(v.AsInt64Slice(), func(i int64) *commonpb.AnyValue { return Value(attribute.Int64Value(i)) })
	case attribute.FLOAT64SLICE:
		return arrayOf(v.AsFloat64Slice(), func(f float64) *commonpb.AnyValue { return Value(attribute.Float64Value(f)) })
	case attribute.STRINGSLICE:
		return arrayOf(v.AsStringSlice(), func(s string) *commonpb.AnyValue { return Value(attribute.StringValue(s)) })
	case attribute.SLICE:
		return arrayOf(v.AsSlice(), Value)
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
			KvlistValue: &commonpb.KeyValueList{Values: KeyValues(v.AsMap())},
		}}
	default:
		return &commonpb.AnyValue{}
	}
}

func arrayOf[T any](items []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	values := make([]*commonpb.AnyValue, 0, len(items))
	for _, it := range items {
		values = append(values, conv(it))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: values}}}
}

func unixNano(t interface{ UnixNano() int64 }) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func clampCount(n int) uint32 {
	if n < 0 {
		return 0
	}
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}
