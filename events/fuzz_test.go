package events

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// FuzzDecode checks that no input makes the decoder panic, and that every
// rejection is permanent (a message that cannot be decoded now never will
// be, so it must never be retried) and every acceptance is a valid event.
// Seeds: testdata/fuzz/FuzzDecode plus the contract samples and the
// malformed corpus. Run with `make fuzz`.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{filepath.Join("..", "testdata", "contracts"), filepath.Join("testdata", "malformed")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				f.Add(b, "", "")
			}
		}
	}
	f.Add([]byte(`{"generation":1,"href":"/api/hyperfleet/v1/clusters/c","id":"c","kind":"Cluster"}`), "ce-specversion", "1.0")
	// Made the CloudEvents SDK v2.16.2 panic (see structuredEvent).
	f.Add([]byte(`{"specversion":"1.0","id":"e","data_base64":5}`), "", "")
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, body []byte, attrKey, attrVal string) {
		m := &Message{Body: body}
		if attrKey != "" {
			m.Attributes = map[string]string{attrKey: attrVal, "ce-id": "x", "ce-type": "com.redhat.hyperfleet.cluster.reconcile"}
		}
		ev, err := d.Decode(m)
		if err != nil {
			if !failure.IsPermanent(err) {
				t.Fatalf("decode error not permanent: %v", err)
			}
			return
		}
		if ev.ID == "" || ev.ResourceID == "" || ev.Href == "" || ev.Generation < 1 {
			t.Fatalf("accepted an invalid event: %+v", ev)
		}
		if ev.Kind == "NodePool" && (ev.Owner == nil || ev.Owner.ID == "") {
			t.Fatalf("node pool without owner accepted: %+v", ev)
		}
	})
}
