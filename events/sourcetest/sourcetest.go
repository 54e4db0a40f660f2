// Package sourcetest is the conformance suite every events.Source runs, in
// the manner of watermill's pubsub/tests: one Transport per broker backend,
// the same behavioural tests against each. It is test-support code: only
// _test.go files import it.
//
// What the suite holds a Source to:
//
//   - every published event is received once, body and id intact;
//   - an acknowledged message is not delivered again, even to a new consumer;
//   - a requeued message comes back (with a higher Attempt where the
//     transport can count);
//   - a dead-lettered message lands in the dead-letter destination with its
//     reason and attempt count, and is not delivered again;
//   - two consumers on one subscription split the messages, losing none;
//   - Close unblocks Receive, and messages handed out before Close can still
//     be settled;
//   - messages a closed consumer never settled go to another consumer.
//
// Absence ("not delivered again") is checked with a marker: after the act, a
// fresh event is published and must be the next message a consumer sees.
package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// Transport is one broker backend under test. Each test of the suite gets a
// fresh Transport: its own topic and subscription, removed by the
// Transport's own t.Cleanup.
type Transport interface {
	// NewSource opens another consumer on the test's subscription; two
	// Sources from one Transport are replicas sharing it. The Transport
	// closes it at cleanup if the test did not.
	NewSource(t *testing.T, opts SourceOptions) events.Source
	// Publish sends body in the HyperFleet broker library's wire form: the
	// whole CloudEvent JSON as the body, _watermill_message_uuid = id.
	Publish(t *testing.T, body []byte, id string)
	// DeadLetters waits (up to ctx) until n messages sit in the dead-letter
	// destination and returns them, removing them.
	DeadLetters(ctx context.Context, t *testing.T, n int) []DeadLetter
}

// SourceOptions are the knobs the suite turns on a Source.
type SourceOptions struct {
	// Concurrency is how many messages may be handed out unsettled at once
	// (prefetch, max outstanding messages).
	Concurrency int
	// ShutdownGrace is how long after Close handed-out messages may still be
	// settled before the Source lets the broker redeliver them.
	ShutdownGrace time.Duration
}

// DeadLetter is one message read back from the dead-letter destination.
type DeadLetter struct {
	Body       []byte
	Reason     string
	Attempts   string
	Attributes map[string]string
}

// Features says what a transport can tell.
type Features struct {
	// RequeueCountsAttempts: a requeued message comes back with a higher
	// Attempt.
	RequeueCountsAttempts bool
	// KnownIssues names tests the transport is known to fail, each with the
	// reason: they are skipped, saying it, so the rest of the suite still
	// guards the transport while the issue is open.
	KnownIssues map[string]string
}

// Timeout bounds every wait of the suite. Brokers on this machine answer in
// milliseconds; the margin is for a loaded CI machine.
const Timeout = 20 * time.Second

// quiet is how long the suite listens for a message that must not come after
// the marker has already shown the queue is drained; it only catches late
// duplicates and is never a synchronisation point.
const quiet = 300 * time.Millisecond

// Run runs the conformance suite, calling newTransport once per test.
func Run(t *testing.T, f Features, newTransport func(t *testing.T) Transport) {
	tests := []struct {
		name string
		run  func(t *testing.T, tr Transport)
	}{
		{"ReceivesEachOnceIntact", testReceivesEachOnceIntact},
		{"AckedIsNotRedelivered", testAckedIsNotRedelivered},
		{"RequeueRedelivers", func(t *testing.T, tr Transport) { testRequeueRedelivers(t, tr, f) }},
		{"DeadLetter", testDeadLetter},
		{"SharedSubscriptionSplits", testSharedSubscriptionSplits},
		{"CloseUnblocksReceive", testCloseUnblocksReceive},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"SettleAfterCloseWithinGrace", testSettleAfterCloseWithinGrace},
		{"UnsettledGoToAnotherConsumerAfterClose", testUnsettledRedeliveredAfterClose},
		{"SettleTwiceIsAnError", testSettleTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if reason := f.KnownIssues[tc.name]; reason != "" {
				t.Skip("known issue: " + reason)
			}
			tc.run(t, newTransport(t))
		})
	}
}

func publishN(t *testing.T, tr Transport, n int) map[string][]byte {
	t.Helper()
	sent := make(map[string][]byte, n)
	for i := 0; i < n; i++ {
		body, id := SentinelEvent(int64(i + 1))
		tr.Publish(t, body, id)
		sent[id] = body
	}
	return sent
}

// Receive waits for the next message, failing the test after Timeout.
func Receive(t *testing.T, src events.Source) *events.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	m, err := src.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if m == nil || m.Settler == nil {
		t.Fatalf("Receive returned %+v without a Settler", m)
	}
	return m
}

func ack(t *testing.T, m *events.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := m.Settler.Ack(ctx); err != nil {
		t.Fatalf("Ack %s: %v", m.TransportID, err)
	}
}

// expectNothing fails if a message arrives within quiet.
func expectNothing(t *testing.T, src events.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	m, err := src.Receive(ctx)
	if err == nil {
		t.Fatalf("unexpected delivery of %s (attempt %d): %s", EventID(m.Body), m.Attempt, m.Body)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an idle source: %v, want the context's deadline", err)
	}
}

// expectMarkerFirst publishes a marker and requires it to be the next
// message: whatever was settled before has not come back.
func expectMarkerFirst(t *testing.T, tr Transport, src events.Source) {
	t.Helper()
	body, id := SentinelEvent(1)
	tr.Publish(t, body, id)
	m := Receive(t, src)
	if got := EventID(m.Body); got != id {
		t.Fatalf("message %s (attempt %d) came back before the marker %s", got, m.Attempt, id)
	}
	ack(t, m)
	expectNothing(t, src)
}

func testReceivesEachOnceIntact(t *testing.T, tr Transport) {
	const n = 30
	src := tr.NewSource(t, SourceOptions{Concurrency: 4})
	sent := publishN(t, tr, n)
	dec := events.NewDecoder()
	seen := map[string]bool{}
	for len(seen) < n {
		m := Receive(t, src)
		id := EventID(m.Body)
		want, ok := sent[id]
		switch {
		case !ok:
			t.Fatalf("received a message that was not published: %s", m.Body)
		case seen[id]:
			t.Fatalf("event %s received twice", id)
		case string(m.Body) != string(want):
			t.Fatalf("body changed in transit:\n got %s\nwant %s", m.Body, want)
		}
		seen[id] = true
		if got := m.Attributes[WatermillUUIDHeader]; got != id {
			t.Errorf("attribute %s = %q, want the event id %q (attributes %v)", WatermillUUIDHeader, got, id, m.Attributes)
		}
		if m.Attempt != 1 {
			t.Errorf("first delivery of %s has Attempt %d, want 1", id, m.Attempt)
		}
		if m.TransportID == "" || m.ReceivedAt.IsZero() {
			t.Errorf("message %s lacks TransportID (%q) or ReceivedAt (%v)", id, m.TransportID, m.ReceivedAt)
		}
		ev, err := dec.Decode(m)
		if err != nil {
			t.Errorf("the decoder rejects what the source delivered: %v", err)
		} else if ev.ID != id {
			t.Errorf("decoded id %q, want %q", ev.ID, id)
		}
		ack(t, m)
	}
	expectNothing(t, src)
}

func testAckedIsNotRedelivered(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 2})
	sent := publishN(t, tr, 5)
	for range sent {
		ack(t, Receive(t, src))
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectMarkerFirst(t, tr, tr.NewSource(t, SourceOptions{Concurrency: 2}))
}

func testRequeueRedelivers(t *testing.T, tr Transport, f Features) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 1})
	body, id := SentinelEvent(1)
	tr.Publish(t, body, id)
	first := Receive(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := first.Settler.Requeue(ctx, "transient: maestro unavailable"); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	again := Receive(t, src)
	if EventID(again.Body) != id || string(again.Body) != string(body) {
		t.Fatalf("after Requeue got %s, want the same message %s", again.Body, body)
	}
	if f.RequeueCountsAttempts && again.Attempt <= first.Attempt {
		t.Errorf("redelivery has Attempt %d, want more than the first delivery's %d", again.Attempt, first.Attempt)
	}
	ack(t, again)
	expectMarkerFirst(t, tr, src)
}

func testDeadLetter(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 2})
	bad, badID := SentinelEvent(1)
	tr.Publish(t, bad, badID)
	good, goodID := SentinelEvent(2)
	tr.Publish(t, good, goodID)
	const reason = "field data.kind: missing"
	for i := 0; i < 2; i++ {
		m := Receive(t, src)
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		switch EventID(m.Body) {
		case badID:
			if err := m.Settler.DeadLetter(ctx, reason, 3); err != nil {
				t.Fatalf("DeadLetter: %v", err)
			}
		case goodID:
			ack(t, m)
		default:
			t.Fatalf("unexpected message %s", m.Body)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	dls := tr.DeadLetters(ctx, t, 1)
	if len(dls) != 1 {
		t.Fatalf("dead-letter destination holds %d messages, want 1", len(dls))
	}
	dl := dls[0]
	if string(dl.Body) != string(bad) {
		t.Errorf("dead-lettered body %s, want %s", dl.Body, bad)
	}
	if dl.Reason != reason || dl.Attempts != "3" {
		t.Errorf("dead letter reason %q attempts %q, want %q and 3", dl.Reason, dl.Attempts, reason)
	}
	if got := dl.Attributes[WatermillUUIDHeader]; got != badID {
		t.Errorf("dead letter lost the original headers: %s = %q, want %q", WatermillUUIDHeader, got, badID)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectMarkerFirst(t, tr, tr.NewSource(t, SourceOptions{Concurrency: 2}))
}

func testSharedSubscriptionSplits(t *testing.T, tr Transport) {
	const n = 40
	a := tr.NewSource(t, SourceOptions{Concurrency: 2})
	b := tr.NewSource(t, SourceOptions{Concurrency: 2})
	sent := publishN(t, tr, n)

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var mu sync.Mutex
	got := map[string]string{} // event id -> consumer
	var dup []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	for name, src := range map[string]events.Source{"a": a, "b": b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := src.Receive(ctx)
				if err != nil {
					return
				}
				id := EventID(m.Body)
				if err := m.Settler.Ack(ctx); err != nil {
					t.Errorf("consumer %s: Ack: %v", name, err)
				}
				mu.Lock()
				if prev, ok := got[id]; ok {
					dup = append(dup, fmt.Sprintf("%s (consumers %s and %s)", id, prev, name))
				}
				got[id] = name
				if len(got) == n {
					close(done)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var missing []string
	for id := range sent {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d events never arrived: %v", len(missing), n, missing)
	}
	if len(dup) > 0 {
		t.Errorf("events delivered twice with no failure in between: %v", dup)
	}
}

func testCloseUnblocksReceive(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 1})
	errc := make(chan error, 1)
	go func() {
		_, err := src.Receive(context.Background())
		errc <- err
	}()
	// Close races with Receive entering its wait; either order must unblock.
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Receive returned a nil error after Close")
		}
	case <-time.After(Timeout):
		t.Fatal("Receive still blocked after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := src.Receive(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive after Close: %v, want an immediate error", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testReceiveHonoursContext(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := src.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an empty subscription: %v, want context.DeadlineExceeded", err)
	}
}

func testSettleAfterCloseWithinGrace(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 2, ShutdownGrace: Timeout})
	body, id := SentinelEvent(1)
	tr.Publish(t, body, id)
	m := Receive(t, src)
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ack(t, m) // the in-flight handler finishes after shutdown began
	expectMarkerFirst(t, tr, tr.NewSource(t, SourceOptions{Concurrency: 2}))
}

func testUnsettledRedeliveredAfterClose(t *testing.T, tr Transport) {
	const n = 3
	a := tr.NewSource(t, SourceOptions{Concurrency: n, ShutdownGrace: 50 * time.Millisecond})
	sent := publishN(t, tr, n)
	var held []*events.Message
	for range sent {
		held = append(held, Receive(t, a))
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b := tr.NewSource(t, SourceOptions{Concurrency: n})
	got := map[string]bool{}
	for len(got) < n {
		m := Receive(t, b)
		id := EventID(m.Body)
		if _, ok := sent[id]; !ok {
			t.Fatalf("unexpected message %s", m.Body)
		}
		got[id] = true
		ack(t, m)
	}
	// The first consumer's grace is over: settling now must fail cleanly
	// (the broker has redelivered), never panic or succeed.
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	for _, m := range held {
		if err := m.Settler.Ack(ctx); err == nil {
			t.Errorf("Ack of %s after the grace period succeeded; the message was already redelivered", EventID(m.Body))
		}
	}
}

func testSettleTwice(t *testing.T, tr Transport) {
	src := tr.NewSource(t, SourceOptions{Concurrency: 1})
	body, id := SentinelEvent(1)
	tr.Publish(t, body, id)
	m := Receive(t, src)
	ack(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := m.Settler.Ack(ctx); err == nil {
		t.Error("second Ack succeeded, want an error")
	}
	if err := m.Settler.Requeue(ctx, "again"); err == nil {
		t.Error("Requeue after Ack succeeded, want an error")
	}
	expectMarkerFirst(t, tr, src)
}
