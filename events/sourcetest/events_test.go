package sourcetest_test

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func keys(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		if sub, ok := v.(map[string]any); ok {
			for _, sk := range keys(sub) {
				out = append(out, k+"."+sk)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The events the suite publishes have the shape of the recorded Sentinel
// wire sample, and the decoder accepts them.
func TestSentinelEventMatchesWireSample(t *testing.T) {
	raw, err := os.ReadFile("testdata/wire-rabbitmq-delivery.json")
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Body map[string]any `json:"body"`
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	body, id := sourcetest.SentinelEvent(4)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys(got), keys(sample.Body)) {
		t.Errorf("fields %v, sample has %v", keys(got), keys(sample.Body))
	}
	if sourcetest.EventID(body) != id {
		t.Errorf("EventID = %q, want %q", sourcetest.EventID(body), id)
	}
	ev, err := events.NewDecoder().Decode(&events.Message{Body: body, Attributes: map[string]string{sourcetest.WatermillUUIDHeader: id}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != id || ev.Generation != 4 || ev.Kind != "Cluster" {
		t.Errorf("decoded %+v", ev)
	}
	other, otherID := sourcetest.SentinelEvent(4)
	if otherID == id || string(other) == string(body) {
		t.Error("two events share an id: Sentinel sends a new id on every publish")
	}
}

func TestStatusEventIsNotAnInputEvent(t *testing.T) {
	ev := sourcetest.StatusEvent(t)
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.NewDecoder().Decode(&events.Message{Body: body}); err == nil || !failure.IsPermanent(err) {
		t.Errorf("decoder accepted a status event: %v", err)
	}
}
