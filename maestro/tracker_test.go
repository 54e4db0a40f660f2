package maestro_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// runTracker runs a tracker over d until the test ends.
func runTracker(t testing.TB, d maestro.Delivery) *maestro.Tracker {
	t.Helper()
	tr := maestro.NewTracker(d, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return tr
}

func isApplied(w *workv1.ManifestWork) bool {
	if w == nil {
		return false
	}
	c := apimeta.FindStatusCondition(w.Status.Conditions, workv1.WorkApplied)
	return c != nil && c.Status == "True" && c.ObservedGeneration == w.Generation
}

// staleGet answers Get with the state read before a change it then lets
// happen: the change lands between the tracker's registration and the end
// of its Get, which a tracker registering after Get would miss.
type staleGet struct {
	maestro.Delivery
	between func()
}

func (s *staleGet) Get(ctx context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	w, err := s.Delivery.Get(ctx, consumer, name)
	s.between()
	return w, err
}

func TestAwaitSeesAChangeBetweenRegisterAndGet(t *testing.T) {
	s := newStore(t)
	d := newDelivery(t, s, maestro.SourceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}

	sg := &staleGet{Delivery: d}
	tr := runTracker(t, sg)
	seen := tr.Subscribe(ctx)
	sg.between = func() {
		// Let the agent report now, and wait until the tracker has handed
		// the status out: the waiter has it too.
		runAgent(t, s, embedded.AgentOptions{})
		for ev := range seen {
			if ev.Work.Name == "w" && isApplied(ev.Work) {
				return
			}
		}
		t.Error("subscription ended before the status arrived")
	}
	got, err := tr.Await(ctx, "cluster-a", "w", isApplied)
	if err != nil {
		t.Fatalf("Await missed the status that arrived during its Get: %v", err)
	}
	if !isApplied(got) {
		t.Fatalf("Await returned a work that is not applied: %+v", got.Status.Conditions)
	}
}

func TestAwaitDeadlineReturnsTheLastSeenWork(t *testing.T) {
	b := newBackend(t, embedded.Options{})
	tr := runTracker(t, b)
	ctx := context.Background()
	if _, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Await(ctx, "cluster-a", "w", isApplied); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	never := func(w *workv1.ManifestWork) bool {
		return w != nil && w.Annotations[workmeta.AnnotationGeneration] == "99"
	}
	last, err := tr.Await(short, "cluster-a", "w", never)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await past its deadline: %v, want DeadlineExceeded", err)
	}
	if failure.IsPermanent(err) || !strings.Contains(err.Error(), "cluster-a/w") {
		t.Errorf("deadline error %q should be transient and name the work", err)
	}
	if last == nil || !isApplied(last) {
		t.Fatalf("Await past its deadline returned %v, want the last seen (applied) work", last)
	}

	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	last, err = tr.Await(short2, "cluster-a", "missing", isApplied)
	if !errors.Is(err, context.DeadlineExceeded) || last != nil {
		t.Fatalf("Await for a work that never comes: %v, %v; want nil and DeadlineExceeded", last, err)
	}
}

func TestAwaitDeletion(t *testing.T) {
	b := newBackend(t, embedded.Options{AgentDelay: 10 * time.Millisecond})
	tr := runTracker(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Await(ctx, "cluster-a", "w", isApplied); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "cluster-a", "w"); err != nil {
		t.Fatal(err)
	}
	// Still there, marked deleting, until the agent confirms.
	gone := func(w *workv1.ManifestWork) bool { return w == nil }
	if w, err := tr.Await(ctx, "cluster-a", "w", gone); err != nil || w != nil {
		t.Fatalf("Await deletion: %v, %v", w, err)
	}
}

func TestSlowSubscriberDoesNotHoldUpOthers(t *testing.T) {
	b := newBackend(t, embedded.Options{})
	tr := runTracker(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow := tr.Subscribe(ctx) // never read until the end
	fast := tr.Subscribe(ctx)

	const works = 50
	for i := range works {
		if _, err := b.Apply(ctx, newWork(t, "cluster-a", fmt.Sprintf("w%d", i), 1, configMap("a", "v1"))); err != nil {
			t.Fatal(err)
		}
	}
	// The fast subscriber and a waiter get everything while slow sleeps.
	appliedSeen := map[string]bool{}
	for len(appliedSeen) < works {
		select {
		case ev := <-fast:
			if isApplied(ev.Work) {
				appliedSeen[ev.Work.Name] = true
			}
		case <-ctx.Done():
			t.Fatalf("fast subscriber saw %d of %d works applied while another subscriber did not read", len(appliedSeen), works)
		}
	}
	if _, err := tr.Await(ctx, "cluster-a", "w0", isApplied); err != nil {
		t.Fatalf("Await while a subscriber does not read: %v", err)
	}
	// Apply a new generation of one work so slow has an update to coalesce.
	if _, err := b.Apply(ctx, newWork(t, "cluster-a", "w0", 2, configMap("a", "v2"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Await(ctx, "cluster-a", "w0", func(w *workv1.ManifestWork) bool {
		return isApplied(w) && w.Annotations[workmeta.AnnotationGeneration] == "2"
	}); err != nil {
		t.Fatal(err)
	}

	// The slow subscriber gets each work's latest state, once: pending
	// states coalesce. (One event may already have been taken for sending
	// before it stopped reading, hence one duplicate is allowed.)
	latest := map[string]*workv1.ManifestWork{}
	received := 0
	// The one event taken before slow stopped reading may be an older state
	// of its work; its latest state then follows it.
	allApplied := func() bool {
		for _, w := range latest {
			if !isApplied(w) {
				return false
			}
		}
		return true
	}
	for len(latest) < works || latest["w0"].Annotations[workmeta.AnnotationGeneration] != "2" || !allApplied() {
		select {
		case ev := <-slow:
			received++
			latest[ev.Work.Name] = ev.Work
		case <-ctx.Done():
			t.Fatalf("slow subscriber got %d of %d works (w0 at generation 2: %v)", len(latest), works, latest["w0"] != nil)
		}
	}
	if received > works+1 {
		t.Errorf("slow subscriber received %d events for %d works; pending states should have coalesced", received, works)
	}
	for name, w := range latest {
		if !isApplied(w) {
			t.Errorf("slow subscriber's %s is not in its latest (applied) state", name)
		}
	}
}

func TestSubscribeClosesWithContext(t *testing.T) {
	tr := runTracker(t, newBackend(t, embedded.Options{}))
	ctx, cancel := context.WithCancel(context.Background())
	ch := tr.Subscribe(ctx)
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after cancel on an idle subscription")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription not closed 5s after its context ended")
	}
}

// failingWatch is a Delivery whose Watch fails: our own seam, faked.
type failingWatch struct {
	maestro.Delivery
	err   error
	calls atomic.Int32
}

func (f *failingWatch) Watch(context.Context) (<-chan maestro.WorkEvent, error) {
	f.calls.Add(1)
	return nil, f.err
}

func TestRunStopsOnAPermanentWatchError(t *testing.T) {
	f := &failingWatch{err: failure.Permanentf("watching works: delivery is closed")}
	err := maestro.NewTracker(f, testLogger(t)).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "delivery is closed") {
		t.Fatalf("Run: %v, want the permanent error", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("Watch called %d times, want 1", n)
	}
}

func TestRunRetriesTransientWatchErrors(t *testing.T) {
	f := &failingWatch{err: errors.New("connection refused")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tr := maestro.NewTracker(f, testLogger(t))
	go func() { done <- tr.Run(ctx) }()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for f.calls.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v on a transient error", err)
		case <-deadline:
			t.Fatalf("Watch called %d times in 5s, want retries", f.calls.Load())
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
}

// An expectation registered before the write sees the agent's status even
// when it lands before Await starts, without reading the work again.
func TestExpectationSeesStatusThatLandsBeforeAwait(t *testing.T) {
	b := newBackend(t, embedded.Options{})
	tr := runTracker(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	e := tr.Expect("cluster-a", "w")
	stored, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1")))
	if err != nil {
		t.Fatal(err)
	}
	// Let the agent's status arrive before Await starts: poll Get until
	// it is applied (a condition with a deadline).
	for {
		got, err := b.Get(ctx, "cluster-a", "w")
		if err == nil && isApplied(got) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the agent never applied the work")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	// stored is the state Apply returned (not yet applied); the change that
	// came since must be delivered from the expectation's buffer.
	if isApplied(stored) {
		t.Fatal("test premise: Apply already returned an applied work")
	}
	got, err := e.Await(ctx, stored, isApplied)
	if err != nil || !isApplied(got) {
		t.Fatalf("Await: %v %v", got, err)
	}
	e.Cancel() // a second cancel is harmless
}

// A subscriber that comes after a work marked AnnotationStatusPending was
// seen (after Maestro's replay when the watch opened, say) still gets its
// latest state first; once the mark is gone, later subscribers do not.
func TestLateSubscriberLearnsOfStatusPendingWorks(t *testing.T) {
	b := newBackend(t, embedded.Options{})
	tr := runTracker(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	marked := func(name string, gen int64, value string) *workv1.ManifestWork {
		w := newWork(t, "cluster-a", name, gen, configMap(name, "v1"))
		w.Annotations[workmeta.AnnotationStatusPending] = value
		return w
	}
	apply := func(w *workv1.ManifestWork) {
		t.Helper()
		if _, err := b.Apply(ctx, w); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Await(ctx, w.Namespace, w.Name, func(got *workv1.ManifestWork) bool {
			return isApplied(got) && got.Annotations[workmeta.AnnotationStatusPending] == w.Annotations[workmeta.AnnotationStatusPending]
		}); err != nil {
			t.Fatal(err)
		}
	}
	apply(marked("pending", 1, "1"))
	apply(newWork(t, "cluster-a", "plain", 1, configMap("plain", "v1")))

	first := func(ch <-chan maestro.WorkEvent) *workv1.ManifestWork {
		t.Helper()
		select {
		case ev := <-ch:
			return ev.Work
		case <-ctx.Done():
			t.Fatal("nothing delivered to the subscriber")
			return nil
		}
	}
	late, stopLate := context.WithCancel(ctx)
	if w := first(tr.Subscribe(late)); w.Name != "pending" || !isApplied(w) {
		t.Errorf("a late subscriber's first event is %s (applied %v), want the marked work's latest state", w.Name, isApplied(w))
	}
	stopLate()

	// The next event's apply drops the mark: nothing to replay any more.
	apply(newWork(t, "cluster-a", "pending", 2, configMap("pending", "v2")))
	later := tr.Subscribe(ctx)
	apply(marked("other", 1, "1"))
	if w := first(later); w.Name != "other" {
		t.Errorf("a later subscriber's first event is %s, want other (pending is no longer marked)", w.Name)
	}
}

// chanWatch is a Delivery whose watch is a channel the test writes.
type chanWatch struct {
	maestro.Delivery
	ch chan maestro.WorkEvent
}

func (c *chanWatch) Watch(context.Context) (<-chan maestro.WorkEvent, error) { return c.ch, nil }

// Replicas A and B write one work: B's write (version 4) returns, then the
// agent's answer to A's earlier write (version 3) arrives on the watch. B's
// wait must not take it: it is settled, but for the older version, and B
// would report version 3's state as its own and think the agent answered
// (CI's replica-kill test, 2026-12-03: the last report said "still carries
// generation 3, not 5" and no mark was left for a watcher to finish it).
func TestAwaitIgnoresAnAnswerToAnOlderVersion(t *testing.T) {
	d := &chanWatch{ch: make(chan maestro.WorkEvent, 4)}
	tr := runTracker(t, d)
	t.Cleanup(func() { close(d.ch) }) // runs before runTracker's: ends the watch
	at := func(version int64, gen string, applied bool) *workv1.ManifestWork {
		w := &workv1.ManifestWork{}
		w.Namespace, w.Name, w.UID, w.Generation = "c", "w", "uid-1", version
		w.Annotations = map[string]string{workmeta.AnnotationGeneration: gen}
		if applied {
			w.Status.Conditions = []metav1.Condition{{Type: workv1.WorkApplied, Status: "True", ObservedGeneration: version, Reason: "r"}}
		}
		return w
	}
	e := tr.Expect("c", "w")
	written := at(4, "5", false) // what B's Apply returned
	d.ch <- maestro.WorkEvent{Type: watch.Modified, Work: at(3, "3", true)}
	d.ch <- maestro.WorkEvent{Type: watch.Modified, Work: at(3, "3", true)} // a resend: the first was taken
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got, err := e.Await(ctx, written, isApplied)
	if err == nil {
		t.Fatalf("Await accepted %s generation %d as the answer to version 4", got.Annotations[workmeta.AnnotationGeneration], got.Generation)
	}
	if got == nil || got.Generation != 4 {
		t.Fatalf("Await's last seen state is version %v, want the version-4 write it started from", got)
	}

	// The answer to version 4 is taken.
	e = tr.Expect("c", "w")
	d.ch <- maestro.WorkEvent{Type: watch.Modified, Work: at(4, "5", true)}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if got, err := e.Await(ctx2, written, isApplied); err != nil || got.Generation != 4 {
		t.Fatalf("Await: %v %v, want the agent's answer to version 4", got, err)
	}
}
