package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// A line logged by another package with the event's context carries the
// event's fields and trace id once; the pipeline's own event loggers do
// not get them twice.
func TestContextHandlerCarriesEventFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(ContextHandler(slog.NewJSONHandler(&buf, nil)))
	ev := events.Event{ID: "e1", Kind: "Cluster", ResourceID: "c1", Generation: 3,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	ctx := withEventAttrs(context.Background(), eventAttrs(ev))

	log.With("component", "delivery").InfoContext(ctx, "work patched")
	p := &Pipeline{log: log}
	p.eventLogger(ev).InfoContext(ctx, "event settled")
	log.Info("unrelated")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines[:2] {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["event_id"] != "e1" || m["trace_id"] != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("line %d lacks the event's fields: %s", i, l)
		}
		if strings.Count(l, `"event_id"`) != 1 {
			t.Errorf("line %d has the event id twice: %s", i, l)
		}
	}
	if strings.Contains(lines[2], "event_id") {
		t.Errorf("a line without the event's context got its fields: %s", lines[2])
	}
}
