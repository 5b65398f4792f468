package main

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"spanway/schemas/producers/go/kafkaexporter"
)

const testdata = "../../../../testdata"

// Golden value -> SDK span data -> kit encoding gives back the golden
// message, except for two things the Go SDK does differently and that do
// not change what a reader decodes:
//   - resource attributes come out sorted by key (the SDK keeps a resource
//     as a sorted attribute set);
//   - span and link flags carry SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE (0x100), as
//     the SDK's own OTLP exporter sets it: the SDK always knows whether the
//     parent is remote. Readers take the W3C flags from the low byte.
func TestGoldenRoundTrip(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(testdata, "*.otlp_proto.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden manifests under %s (%v)", testdata, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			spans, key, err := loadGolden(path)
			if err != nil {
				t.Fatal(err)
			}
			got := &tracepb.TracesData{ResourceSpans: kafkaexporter.ResourceSpans(spans)}
			records, errs := kafkaexporter.BuildRecords(spans, kafkaexporter.MaxValueBytes)
			if len(errs) != 0 || len(records) != 1 || records[0].Key != key {
				t.Fatalf("records %+v, errors %v: want one record keyed %s", records, errs, key)
			}

			raw, err := os.ReadFile(path[:len(path)-len(".json")] + ".value.bin")
			if err != nil {
				t.Fatal(err)
			}
			want := &tracepb.TracesData{}
			if err := proto.Unmarshal(raw, want); err != nil {
				t.Fatal(err)
			}
			for _, rs := range want.ResourceSpans {
				sortAttrs(rs.GetResource().GetAttributes())
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						s.Flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
						for _, l := range s.Links {
							l.Flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
						}
					}
				}
			}
			if !proto.Equal(got, want) {
				t.Fatalf("kit encoding differs from the golden value\ngot:\n%s\nwant:\n%s",
					prototext.Format(got), prototext.Format(want))
			}
			var decoded tracepb.TracesData
			if err := proto.Unmarshal(records[0].Value, &decoded); err != nil || !proto.Equal(&decoded, got) {
				t.Fatalf("record value does not decode to the converted spans (%v)", err)
			}
		})
	}
}

func sortAttrs(kvs []*commonpb.KeyValue) {
	sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
}
