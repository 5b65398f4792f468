//go:build integration

package main

// Against a real Kafka (SPANWAY_KAFKA_BROKERS, default 127.0.0.1:9092), no
// fakes: `run unit -tags integration`. Each test creates its own topics.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"spanway/schemas/producers/go/kafkaexporter"
)

func brokers() string {
	if b := os.Getenv("SPANWAY_KAFKA_BROKERS"); b != "" {
		return b
	}
	return "127.0.0.1:9092"
}

func createTopic(t *testing.T, partitions int32) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	name := fmt.Sprintf("kit-go-%d-%d", partitions, rand.Int63())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s on %s (is Kafka running?): %v", name, brokers(), err)
	}
	return name
}

// consume reads the topic until want records arrived.
func consume(t *testing.T, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records from %s", len(out), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestIntegrationGolden(t *testing.T) {
	manifests, _ := filepath.Glob(filepath.Join(testdata, "*.otlp_proto.json"))
	for _, partitions := range []int32{1, 6, 12} {
		topic := createTopic(t, partitions)
		if err := runGolden([]string{"--brokers", brokers(), "--topic", topic, "--testdata", testdata}); err != nil {
			t.Fatal(err)
		}
		records := consume(t, topic, len(manifests))
		byKey := map[string]*kgo.Record{}
		for _, r := range records {
			byKey[string(r.Key)] = r
		}
		for _, path := range manifests {
			raw, _ := os.ReadFile(path)
			var m struct {
				Key        string         `json:"key"`
				Partitions map[string]int `json:"partition_for_partition_count"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			r := byKey[m.Key]
			if r == nil {
				t.Fatalf("%d partitions: no record keyed %s", partitions, m.Key)
			}
			if want := m.Partitions[strconv.Itoa(int(partitions))]; int(r.Partition) != want {
				t.Errorf("%d partitions: key %s on partition %d, want %d", partitions, m.Key, r.Partition, want)
			}
			if len(r.Headers) != 2 || r.Headers[0].Key != "encoding" || string(r.Headers[0].Value) != "otlp_proto" ||
				r.Headers[1].Key != "schema-version" || string(r.Headers[1].Value) != "1" {
				t.Errorf("key %s: headers %v", m.Key, r.Headers)
			}
			spans, _, err := loadGolden(path)
			if err != nil {
				t.Fatal(err)
			}
			want := &tracepb.TracesData{ResourceSpans: kafkaexporter.ResourceSpans(spans)}
			got := &tracepb.TracesData{}
			if err := proto.Unmarshal(r.Value, got); err != nil || !proto.Equal(got, want) {
				t.Errorf("key %s: value is not the golden trace as converted (%v)", m.Key, err)
			}
		}
		t.Logf("%d partitions: %d records checked on %s", partitions, len(records), topic)
	}
}

func TestIntegrationExampleBigTrace(t *testing.T) {
	topic := createTopic(t, 6)
	out := filepath.Join(t.TempDir(), "sent.binpb")
	if err := runExample([]string{"--brokers", brokers(), "--topic", topic, "--run-id", "it-" + topic,
		"--out", out, "--traces", "10", "--big-trace"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sent := &tracepb.TracesData{}
	if err := proto.Unmarshal(raw, sent); err != nil {
		t.Fatal(err)
	}
	sentSpans := 0
	for _, rs := range sent.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			sentSpans += len(ss.Spans)
		}
	}
	if sentSpans != 10*5+2500 {
		t.Fatalf("%d spans in --out, want %d", sentSpans, 10*5+2500)
	}
	// 10 traces, each one record per service (two exports), plus the big one.
	perKey := map[string]int{}
	partitionOf := map[string]int32{}
	spansOnTopic := 0
	deadline := time.Now().Add(30 * time.Second)
	var records []*kgo.Record
	for spansOnTopic < sentSpans && time.Now().Before(deadline) {
		records = consume(t, topic, len(records)+1)
		spansOnTopic = 0
		for _, r := range records {
			td := &tracepb.TracesData{}
			if err := proto.Unmarshal(r.Value, td); err != nil {
				t.Fatal(err)
			}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					spansOnTopic += len(ss.Spans)
				}
			}
		}
	}
	bigRecords := 0
	for _, r := range records {
		if len(r.Value) > kafkaexporter.MaxValueBytes {
			t.Errorf("record of %d bytes", len(r.Value))
		}
		k := string(r.Key)
		if p, ok := partitionOf[k]; ok && p != r.Partition {
			t.Errorf("trace %s on partitions %d and %d", k, p, r.Partition)
		}
		partitionOf[k] = r.Partition
		perKey[k]++
		if len(r.Value) > 500_000 {
			bigRecords++
		}
	}
	if spansOnTopic != sentSpans || len(perKey) != 11 || bigRecords < 2 {
		t.Fatalf("%d spans on the topic (want %d) in %d records, %d traces, %d large records",
			spansOnTopic, sentSpans, len(records), len(perKey), bigRecords)
	}
	t.Logf("%d records, %d traces, %d spans, big trace in %d large records", len(records), len(perKey), spansOnTopic, bigRecords)
}

func TestIntegrationExampleNoBroker(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sent.binpb")
	start := time.Now()
	err := runExample([]string{"--brokers", "127.0.0.1:1", "--topic", "nowhere", "--run-id", "none",
		"--out", out, "--traces", "3", "--timeout-ms", "5000"})
	took := time.Since(start)
	if err == nil {
		t.Fatal("example succeeded with no broker")
	}
	if took > 35*time.Second {
		t.Fatalf("took %s", took)
	}
	raw, rerr := os.ReadFile(out)
	if rerr != nil || len(raw) != 0 {
		t.Fatalf("--out: %d bytes (%v), want an empty request", len(raw), rerr)
	}
	t.Logf("failed after %s: %v", took, err)
}
