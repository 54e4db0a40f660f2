package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The samples under testdata/contracts are copies of the contract samples;
// when the shared originals are beside the checkout, they must not drift.
func TestContractSamplesAreCurrent(t *testing.T) {
	orig := filepath.Join("..", "..", "shared", "contracts", "samples")
	entries, err := os.ReadDir(orig)
	if err != nil {
		t.Skipf("shared contracts not beside this checkout: %v", err)
	}
	for _, e := range entries {
		want, _ := os.ReadFile(filepath.Join(orig, e.Name()))
		got, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/contracts/%s differs from the shared sample; copy it again", e.Name())
		}
	}
}

func TestDecodeSentinelSamples(t *testing.T) {
	cases := []struct {
		file       string
		kind       string
		generation int64
		trace      string
		owner      bool
	}{
		{"sentinel-event-cluster.json", "Cluster", 1, "", false},
		{"sentinel-event-cluster-legacy-v0.2.json", "Cluster", 1, "", false},
		{"sentinel-event-cluster-traced.json", "Cluster", 2, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false},
		{"sentinel-event-nodepool.json", "NodePool", 1, "", true},
		{"doc-asyncapi-reconcile-cluster-v1.json", "Cluster", 5, "", false},
	}
	d := NewDecoder()
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			ev, err := d.Decode(&Message{Body: sample(t, c.file)})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if ev.Kind != c.kind || ev.Generation != c.generation || ev.TraceParent != c.trace || (ev.Owner != nil) != c.owner {
				t.Fatalf("got %+v", ev)
			}
			if ev.ID == "" || ev.ResourceID == "" || ev.Href == "" {
				t.Fatalf("missing fields: %+v", ev)
			}
		})
	}
}

// The broker samples wrap the event: RabbitMQ's body and Pub/Sub's data are
// the whole CloudEvent, with only the watermill uuid header beside it.
func TestDecodeBrokerWireSamples(t *testing.T) {
	d := NewDecoder()
	for file, field := range map[string]string{"wire-rabbitmq-delivery.json": "body", "wire-pubsub-message.json": "data"} {
		var wire map[string]json.RawMessage
		if err := json.Unmarshal(sample(t, file), &wire); err != nil {
			t.Fatal(err)
		}
		attrs := map[string]string{"_watermill_message_uuid": "0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41"}
		ev, err := d.Decode(&Message{Body: wire[field], Attributes: attrs})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if ev.ID != "0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41" || ev.Kind != "Cluster" || ev.Generation != 1 {
			t.Fatalf("%s: got %+v", file, ev)
		}
	}
}

func TestDecodeBinaryAndStructuredModes(t *testing.T) {
	d := NewDecoder()
	data := `{"generation":7,"href":"/api/hyperfleet/v1/clusters/c1","id":"c1","kind":"Cluster","extra":{"tolerated":true}}`
	for _, prefix := range []string{"ce-", "ce_", "cloudEvents:", "CE-"} {
		attrs := map[string]string{
			prefix + "specversion": "1.0", prefix + "id": "e1", prefix + "source": "x",
			prefix + "type": "com.redhat.hyperfleet.cluster.reconcile", "Content-Type": "application/json",
			prefix + "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		}
		ev, err := d.Decode(&Message{Body: []byte(data), Attributes: attrs})
		if err != nil {
			t.Fatalf("binary %s: %v", prefix, err)
		}
		if ev.ID != "e1" || ev.Generation != 7 || ev.TraceParent == "" {
			t.Fatalf("binary %s: got %+v", prefix, ev)
		}
	}
	structured := `{"specversion":"1.0","id":"e2","source":"x","type":"com.redhat.hyperfleet.Cluster.reconcile.v1","data":` + data + `}`
	ev, err := d.Decode(&Message{Body: []byte(structured), Attributes: map[string]string{"content-type": "application/cloudevents+json; charset=utf-8"}})
	if err != nil || ev.ID != "e2" {
		t.Fatalf("structured: %+v %v", ev, err)
	}
	b64 := `{"specversion":"1.0","id":"e3","source":"x","type":"com.redhat.hyperfleet.cluster.reconcile","data_base64":"eyJnZW5lcmF0aW9uIjozLCJocmVmIjoiL2FwaS9oeXBlcmZsZWV0L3YxL2NsdXN0ZXJzL2MxIiwiaWQiOiJjMSIsImtpbmQiOiJDbHVzdGVyIn0="}`
	ev, err = d.Decode(&Message{Body: []byte(b64)})
	if err != nil || ev.Generation != 3 {
		t.Fatalf("data_base64: %+v %v", ev, err)
	}
}

func TestDecodeExtraKinds(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"e","source":"s","type":"com.redhat.hyperfleet.ingress.reconcile","data":{"id":"i","kind":"ingress","href":"/api/hyperfleet/v1/ingresses/i","generation":1}}`)
	if _, err := NewDecoder().Decode(&Message{Body: body}); err == nil {
		t.Fatal("unregistered kind accepted")
	}
	ev, err := NewDecoder("Ingress").Decode(&Message{Body: body})
	if err != nil || ev.Kind != "Ingress" {
		t.Fatalf("got %+v %v", ev, err)
	}
}

func TestDecodeMalformedCorpus(t *testing.T) {
	want := map[string]string{
		"not-json.txt":                "body: not a JSON object",
		"missing-id.json":             "field id: missing",
		"generation-string.json":      "field data.generation: must be a JSON integer, got a string",
		"generation-zero.json":        "field data.generation: 0 is not a valid generation",
		"unknown-kind.json":           `field data.kind: "Widget" is not a registered kind`,
		"nodepool-without-owner.json": "field data.owner_references.id: missing",
		"invalid-utf8.json":           "body: not valid UTF-8",
	}
	d := NewDecoder()
	for file, msg := range want {
		body, err := os.ReadFile(filepath.Join("testdata", "malformed", file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Decode(&Message{Body: body})
		assertPermanent(t, file, err, msg)
	}
	// 5 MiB: a valid event padded far past the limit.
	big := append(sample(t, "sentinel-event-cluster.json"), bytes.Repeat([]byte(" "), 5<<20)...)
	_, err := d.Decode(&Message{Body: big})
	assertPermanent(t, "5MiB", err, "exceeds the limit of 1048576 bytes")
}

func TestDecodeFieldErrors(t *testing.T) {
	base := `{"specversion":"1.0","id":"e","source":"s","type":"com.redhat.hyperfleet.cluster.reconcile","data":%s}`
	cases := map[string]string{
		`{"id":"c","kind":"Cluster","href":"/api/hyperfleet/v1/clusters/c","generation":1.5}`:                              "data.generation: must be a JSON integer",
		`{"id":"c","kind":"Cluster","href":"/api/hyperfleet/v1/clusters/c","generation":-1}`:                               "data.generation: -1 is not a valid generation",
		`{"id":"c","kind":"Cluster","href":"/api/hyperfleet/v1/clusters/c"}`:                                               "data.generation: missing",
		`{"id":"c","kind":"NodePool","href":"/api/hyperfleet/v1/clusters/c","generation":1,"owner_references":{"id":"x"}}`: "does not match the kind",
		`{"id":"c","kind":"Cluster","href":"/api/hyperfleet/v1/../x","generation":1}`:                                      "data.href",
		`{"id":7,"kind":"Cluster","href":"/api/hyperfleet/v1/clusters/c","generation":1}`:                                  "data.id: must be a string",
		`{"kind":"Cluster","href":"/api/hyperfleet/v1/clusters/c","generation":1}`:                                         "data.id: missing",
		`[1,2]`: "field data: not a JSON object",
		`null`:  "field data: missing",
	}
	d := NewDecoder()
	for data, msg := range cases {
		_, err := d.Decode(&Message{Body: []byte(strings.Replace(base, "%s", data, 1))})
		assertPermanent(t, data, err, msg)
	}
	_, err := d.Decode(&Message{Body: []byte(`{"specversion":"0.3","id":"e","type":"com.redhat.hyperfleet.cluster.reconcile"}`)})
	assertPermanent(t, "specversion", err, "specversion")
	_, err = d.Decode(&Message{Body: []byte(`{"specversion":"1.0","id":"e","type":"com.example.other"}`)})
	assertPermanent(t, "type", err, "not a HyperFleet reconcile event")
}

// The CloudEvents SDK reads the event, so what the CloudEvents spec forbids
// is refused, permanently, naming the attribute where the SDK's binary
// reading lets it; and an input that makes the SDK v2.16.2 panic
// (data_base64 not a string) is an error, not a crash.
func TestDecodeRefusesWhatTheCloudEventsSpecForbids(t *testing.T) {
	data := `{"generation":1,"href":"/api/hyperfleet/v1/clusters/c","id":"c","kind":"Cluster"}`
	head := `{"specversion":"1.0","id":"e","source":"s","type":"com.redhat.hyperfleet.cluster.reconcile",`
	binary := func(k, v string) map[string]string {
		return map[string]string{"ce-specversion": "1.0", "ce-id": "e", "ce-source": "s",
			"ce-type": "com.redhat.hyperfleet.cluster.reconcile", "content-type": "application/json", k: v}
	}
	cases := []struct {
		name string
		msg  *Message
		want string
	}{
		{"data_base64 not a string", &Message{Body: []byte(head + `"data_base64":5}`)}, "body: not a valid CloudEvent"},
		{"time not RFC 3339", &Message{Body: []byte(head + `"time":"yesterday","data":` + data + `}`)}, `"yesterday"`},
		{"extension object", &Message{Body: []byte(head + `"extra":{"a":1},"data":` + data + `}`)}, "invalid CloudEvents value"},
		{"bytes after the event", &Message{Body: []byte(head + `"data":` + data + `} x`)}, "body: not valid CloudEvent JSON"},
		{"binary time", &Message{Body: []byte(data), Attributes: binary("ce-time", "yesterday")}, "field time:"},
		{"binary source", &Message{Body: []byte(data), Attributes: binary("ce-source", "%zz")}, "field source:"},
		{"binary extension name", &Message{Body: []byte(data), Attributes: binary("ce-x-custom", "v")}, "field x-custom:"},
	}
	d := NewDecoder()
	for _, c := range cases {
		_, err := d.Decode(c.msg)
		assertPermanent(t, c.name, err, c.want)
	}
}

func assertPermanent(t *testing.T, name string, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want error containing %q", name, contains)
		return
	}
	if !failure.IsPermanent(err) {
		t.Errorf("%s: error %q is not permanent", name, err)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("%s: error %q does not contain %q", name, err, contains)
	}
}

func TestErrorClasses(t *testing.T) {
	base := errors.New("boom")
	if failure.IsPermanent(base) || failure.IsPermanent(nil) {
		t.Fatal("unmarked error is permanent")
	}
	if !failure.IsPermanent(failure.Permanent(base)) {
		t.Fatal("Permanent lost")
	}
	wrapped := failure.Transient(errors.Join(errors.New("ctx"), failure.Permanent(base)))
	if failure.IsPermanent(wrapped) {
		t.Fatal("outer transient mark must win")
	}
	if !errors.Is(failure.Permanent(base), base) {
		t.Fatal("Permanent must wrap")
	}
}

func TestStructuredFromBinaryRoundTrips(t *testing.T) {
	m := &Message{Body: []byte(`{"generation":2,"href":"/api/hyperfleet/v1/clusters/c1","id":"c1","kind":"Cluster"}`),
		Attributes: map[string]string{"ce-specversion": "1.0", "ce-id": "e9", "ce-source": "s", "ce-type": "com.redhat.hyperfleet.cluster.reconcile", "content-type": "application/json"}}
	doc, err := Structured(m)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewDecoder().Decode(&Message{Body: doc})
	if err != nil || ev.ID != "e9" || ev.Generation != 2 {
		t.Fatalf("%s: %+v %v", doc, ev, err)
	}
	if id := PeekID(m); id != "e9" {
		t.Fatalf("PeekID binary: %q", id)
	}
	if id := PeekID(&Message{Body: doc}); id != "e9" {
		t.Fatalf("PeekID structured: %q", id)
	}
}
