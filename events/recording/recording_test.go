package recording

import (
	"bytes"
	"context"
	"errors"
	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadFormsAndReplayOrder(t *testing.T) {
	dir := t.TempDir()
	pretty := "{\n  \"specversion\": \"1.0\",\n  \"id\": \"a\"\n}\n"
	jsonl := `{"specversion":"1.0","id":"b"}` + "\n\n# comment\n" +
		`{"event":{"specversion":"1.0","id":"c"},"resource":{"id":"r"},"cluster":{"id":"cl"}}` + "\n" +
		"not json at all\n"
	if err := os.WriteFile(filepath.Join(dir, "1-one.json"), []byte(pretty), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "2-many.jsonl"), []byte(jsonl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	msgs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("got %d messages", len(msgs))
	}
	if !bytes.Contains(msgs[0].Body, []byte(`"a"`)) || !bytes.Contains(msgs[1].Body, []byte(`"b"`)) {
		t.Fatalf("order or bodies wrong: %q %q", msgs[0].Body, msgs[1].Body)
	}
	if string(msgs[2].Body) != `{"specversion":"1.0","id":"c"}` || string(msgs[2].Snapshot) != `{"id":"r"}` || string(msgs[2].OwnerSnapshot) != `{"id":"cl"}` {
		t.Fatalf("snapshot entry: %q %q %q", msgs[2].Body, msgs[2].Snapshot, msgs[2].OwnerSnapshot)
	}
	if string(msgs[3].Body) != "not json at all" || msgs[3].TransportID != filepath.Join(dir, "2-many.jsonl")+":5" {
		t.Fatalf("raw line kept with its origin: %q %s", msgs[3].Body, msgs[3].TransportID)
	}
	if _, err := Load(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("missing path accepted")
	}
}

func TestSourceSettlements(t *testing.T) {
	src := NewSource([]*events.Message{{TransportID: "m1", Attempt: 1}, {TransportID: "m2", Attempt: 1}})
	var seen []Outcome
	src.OnSettle = func(o Outcome) { seen = append(seen, o) }
	ctx := context.Background()
	m1, _ := src.Receive(ctx)
	m2, _ := src.Receive(ctx)
	if err := m1.Settler.Requeue(ctx, "shutdown"); err != nil {
		t.Fatal(err)
	}
	if err := m1.Settler.Ack(ctx); err == nil {
		t.Fatal("second settlement accepted")
	}
	if err := m2.Settler.DeadLetter(ctx, "bad", 3); err != nil {
		t.Fatal(err)
	}
	again, err := src.Receive(ctx)
	if err != nil || again.TransportID != "m1" || again.Attempt != 2 {
		t.Fatalf("requeued message: %+v %v", again, err)
	}
	if err := again.Settler.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Receive(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
	if len(seen) != 3 || seen[1].Settlement != "dead-letter" || seen[1].Reason != "bad" || seen[1].Attempts != 3 || seen[2].Settlement != "ack" {
		t.Fatalf("outcomes %+v", seen)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	f := filepath.Join(t.TempDir(), "rec.jsonl")
	fh, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(fh)
	if err := w.Write(Entry{Event: []byte(`{"specversion":"1.0","id":"x"}`), Resource: []byte(`{"id":"r"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Entry{Event: []byte(`{"specversion":"1.0","id":"y"}`), Resource: []byte(`{"id":"np"}`), Cluster: []byte(`{"id":"c"}`),
		Statuses: []byte(`[]`), ClusterStatuses: []byte(`[{"adapter":"landing-zone"}]`)}); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	msgs, err := Load(f)
	if err != nil || len(msgs) != 2 || string(msgs[0].Snapshot) != `{"id":"r"}` || msgs[0].OwnerSnapshot != nil || msgs[0].StatusesSnapshot != nil {
		t.Fatalf("%+v %v", msgs, err)
	}
	if string(msgs[1].StatusesSnapshot) != `[]` || string(msgs[1].OwnerStatusesSnapshot) != `[{"adapter":"landing-zone"}]` {
		t.Fatalf("status report snapshots: %q %q", msgs[1].StatusesSnapshot, msgs[1].OwnerStatusesSnapshot)
	}
}

// `adapter record --out -` piped into another program: the recording goes
// through a pipe, which cannot be synced (fsync answers EINVAL); before,
// the first entry failed the recorder.
func TestWriterToAPipe(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	w := NewWriter(pw)
	if err := w.Write(Entry{Event: []byte(`{"specversion":"1.0","id":"x"}`)}); err != nil {
		t.Fatalf("writing to a pipe: %v", err)
	}
	pw.Close()
	if b := <-got; !bytes.Contains(b, []byte(`"id":"x"`)) {
		t.Fatalf("the pipe carried %q", b)
	}
}
