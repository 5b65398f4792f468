package kafkaexporter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func traceID(b byte) trace.TraceID { return trace.TraceID{15: b, 0: 0x5b} }

func stub(tid trace.TraceID, n int, res *resource.Resource, scope string, payload int) tracetest.SpanStub {
	return tracetest.SpanStub{
		Name: "span",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: trace.SpanID{7: byte(n), 6: byte(n >> 8), 0: 1}, TraceFlags: trace.FlagsSampled,
		}),
		StartTime:            time.Unix(1, 0),
		EndTime:              time.Unix(2, 0),
		Attributes:           []attribute.KeyValue{attribute.String("payload", strings.Repeat("p", payload))},
		Resource:             res,
		InstrumentationScope: instrumentation.Scope{Name: scope},
	}
}

func TestTraceKeyIs32LowercaseHex(t *testing.T) {
	id := trace.TraceID{14: 0xab, 15: 0xcd}
	if got := TraceKey(id); got != "0000000000000000000000000000abcd" {
		t.Fatalf("got %q", got)
	}
	id = trace.TraceID{0x5B, 0x8E, 0xFF, 0xF7, 0x98, 0x03, 0x81, 0x03, 0xD2, 0x69, 0xB6, 0x33, 0x81, 0x3F, 0xC6, 0x0C}
	if got := TraceKey(id); got != "5b8efff798038103d269b633813fc60c" {
		t.Fatalf("got %q", got)
	}
}

func TestOneRecordPerTraceInFirstSeenOrder(t *testing.T) {
	res := resource.NewSchemaless(attribute.String("service.name", "a"))
	spans := tracetest.SpanStubs{
		stub(traceID(2), 1, res, "s", 1), stub(traceID(1), 2, res, "s", 1), stub(traceID(2), 3, res, "s", 1),
	}.Snapshots()
	records, errs := BuildRecords(spans, MaxValueBytes)
	if len(errs) != 0 || len(records) != 2 {
		t.Fatalf("records %d, errors %v", len(records), errs)
	}
	if records[0].Key != TraceKey(traceID(2)) || records[0].Spans != 2 || records[1].Key != TraceKey(traceID(1)) || records[1].Spans != 1 {
		t.Fatalf("unexpected records %+v", records)
	}
	for _, r := range records {
		td := decode(t, r.Value)
		for _, s := range allSpans(td) {
			if TraceKey(trace.TraceID(s.TraceId)) != r.Key {
				t.Fatalf("record %s holds a span of trace %x", r.Key, s.TraceId)
			}
		}
	}
}

// A trace over the limit is split at span boundaries: every part within the
// limit, every part a whole TracesData with its spans' resource and scope,
// all spans once, in order.
func TestSplitKeepsEverySpanOnceWithinTheLimit(t *testing.T) {
	resA := resource.NewSchemaless(attribute.String("service.name", "a"))
	resB := resource.NewSchemaless(attribute.String("service.name", "b"))
	var stubs tracetest.SpanStubs
	for i := 0; i < 300; i++ {
		res, scope := resA, "one"
		switch {
		case i%3 == 1:
			scope = "two"
		case i%3 == 2:
			res = resB
		}
		stubs = append(stubs, stub(traceID(9), i, res, scope, 200+i))
	}
	spans := stubs.Snapshots()
	for _, limit := range []int{2_000, 10_000, 33_333, 1_000_000} {
		records, errs := BuildRecords(spans, limit)
		if len(errs) != 0 {
			t.Fatalf("limit %d: %v", limit, errs)
		}
		whole := proto.Size(&tracepb.TracesData{ResourceSpans: ResourceSpans(spans)})
		if whole > limit && len(records) < 2 || whole <= limit && len(records) != 1 {
			t.Fatalf("limit %d: %d records for %d bytes", limit, len(records), whole)
		}
		seen := map[string]bool{}
		total := 0
		for _, r := range records {
			if len(r.Value) > limit {
				t.Fatalf("limit %d: record of %d bytes", limit, len(r.Value))
			}
			if r.Key != TraceKey(traceID(9)) {
				t.Fatalf("key %s", r.Key)
			}
			td := decode(t, r.Value)
			for _, rs := range td.ResourceSpans {
				name := rs.Resource.Attributes[0].Value.GetStringValue()
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						i := int(s.SpanId[6])<<8 | int(s.SpanId[7])
						wantName, wantScope := "a", "one"
						switch {
						case i%3 == 1:
							wantScope = "two"
						case i%3 == 2:
							wantName = "b"
						}
						if name != wantName || ss.Scope.GetName() != wantScope {
							t.Fatalf("span %d under resource %s scope %s", i, name, ss.Scope.GetName())
						}
						if seen[string(s.SpanId)] {
							t.Fatalf("span %d twice", i)
						}
						seen[string(s.SpanId)] = true
					}
				}
			}
			total += r.Spans
		}
		if total != len(spans) || len(seen) != len(spans) {
			t.Fatalf("limit %d: %d spans in records, %d distinct, want %d", limit, total, len(seen), len(spans))
		}
	}
}

// The packer's size arithmetic must match the encoder at every step, also
// where a varint length grows a byte.
func TestPackedSizeIsExact(t *testing.T) {
	res := resource.NewSchemaless(attribute.String("service.name", "a"))
	var stubs tracetest.SpanStubs
	for i := 0; i < 200; i++ {
		stubs = append(stubs, stub(traceID(3), i, res, []string{"x", "y"}[i%2], i*7%130))
	}
	rs := ResourceSpans(stubs.Snapshots())
	p := newPacker(1 << 30)
	for _, r := range rs {
		for _, ss := range r.ScopeSpans {
			for _, s := range ss.Spans {
				want := p.sizeWith(r, ss, s)
				p.add(r, ss, s)
				if got := proto.Size(p.td); got != want {
					t.Fatalf("predicted %d bytes, encoded %d", want, got)
				}
			}
		}
	}
}

func TestSpanOverTheLimitFailsAndOthersStillGo(t *testing.T) {
	res := resource.NewSchemaless(attribute.String("service.name", "a"))
	spans := tracetest.SpanStubs{
		stub(traceID(4), 1, res, "s", 10), stub(traceID(4), 2, res, "s", 5_000), stub(traceID(4), 3, res, "s", 10),
	}.Snapshots()
	records, errs := BuildRecords(spans, 1_000)
	var oversized *OversizedSpanError
	if len(errs) != 1 || !errors.As(errs[0], &oversized) {
		t.Fatalf("errors %v: want one OversizedSpanError", errs)
	}
	if oversized.TraceID != TraceKey(traceID(4)) || oversized.Bytes <= 1_000 || !strings.Contains(oversized.Error(), "record limit") {
		t.Fatalf("error %+v", oversized)
	}
	total := 0
	for _, r := range records {
		total += r.Spans
	}
	if total != 2 {
		t.Fatalf("%d spans published, want the 2 that fit", total)
	}
}

func decode(t *testing.T, value []byte) *tracepb.TracesData {
	t.Helper()
	td := &tracepb.TracesData{}
	if err := proto.Unmarshal(value, td); err != nil {
		t.Fatal(err)
	}
	return td
}

func allSpans(td *tracepb.TracesData) []*tracepb.Span {
	var out []*tracepb.Span
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			out = append(out, ss.Spans...)
		}
	}
	return out
}
