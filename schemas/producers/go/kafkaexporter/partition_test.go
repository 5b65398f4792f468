package kafkaexporter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The partitioner the kit configures must put every golden key where the
// manifests say Kafka's Java client puts it.
func TestPartitionerMatchesGoldenManifests(t *testing.T) {
	paths, err := filepath.Glob("../../../testdata/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden manifests (%v)", err)
	}
	checked := 0
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Key        string         `json:"key"`
			Partitions map[string]int `json:"partition_for_partition_count"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for count, want := range m.Partitions {
			n, err := strconv.Atoi(count)
			if err != nil {
				t.Fatalf("%s: partition count %q", path, count)
			}
			got := Partitioner().ForTopic("t").Partition(&kgo.Record{Key: []byte(m.Key)}, n)
			if got != want {
				t.Errorf("%s: key %s with %d partitions: got %d, want %d", filepath.Base(path), m.Key, n, got, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no partition expectation found in the manifests")
	}
}

// Keys from elsewhere: the same hashes as Kafka's Java murmur2 (values from
// the Java client's own test, Utils.murmur2 of "21" and "foobar", masked and
// taken modulo a large count).
func TestPartitionerIsMurmur2(t *testing.T) {
	for _, c := range []struct {
		key  string
		hash int32
	}{{"21", -973932308}, {"foobar", -790332482}} {
		want := int(c.hash&0x7fffffff) % 1_000_003
		got := Partitioner().ForTopic("t").Partition(&kgo.Record{Key: []byte(c.key)}, 1_000_003)
		if got != want {
			t.Errorf("key %q: got %d, want %d", c.key, got, want)
		}
	}
}
