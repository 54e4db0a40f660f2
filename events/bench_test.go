package events

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecode decodes one message per iteration in each wire form the
// adapter accepts. Every event goes through Decode once, before anything
// else, so its cost and allocations are paid per event.
func BenchmarkDecode(b *testing.B) {
	cluster := sample(b, "sentinel-event-cluster.json")
	nodepool := sample(b, "sentinel-event-nodepool.json")
	traced := sample(b, "sentinel-event-cluster-traced.json")
	// Binary mode: the attributes in ce- headers and only data in the body,
	// as a CloudEvents SDK publisher sends it.
	var whole struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(cluster, &whole); err != nil {
		b.Fatal(err)
	}
	binaryAttrs := map[string]string{
		"ce-specversion": "1.0", "ce-id": "0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41", "ce-source": "hyperfleet-sentinel",
		"ce-type": "com.redhat.hyperfleet.cluster.reconcile", "content-type": "application/json",
	}
	watermill := map[string]string{"_watermill_message_uuid": "0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41"}
	cases := []struct {
		name string
		msg  *Message
		kind string
	}{
		// What Sentinel sends through the HyperFleet broker library: the
		// whole event JSON in the body, only the watermill uuid header.
		{"broker/cluster", &Message{Body: cluster, Attributes: watermill}, "Cluster"},
		{"broker/nodepool", &Message{Body: nodepool, Attributes: watermill}, "NodePool"},
		{"broker/traced", &Message{Body: traced, Attributes: watermill}, "Cluster"},
		{"structured", &Message{Body: cluster, Attributes: map[string]string{"content-type": "application/cloudevents+json; charset=utf-8"}}, "Cluster"},
		{"binary", &Message{Body: whole.Data, Attributes: binaryAttrs}, "Cluster"},
	}
	d := NewDecoder()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg.Body)))
			for b.Loop() {
				ev, err := d.Decode(c.msg)
				if err != nil {
					b.Fatal(err)
				}
				if ev.Kind != c.kind {
					b.Fatalf("kind %q, want %q", ev.Kind, c.kind)
				}
			}
		})
	}
}
