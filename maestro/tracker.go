package maestro

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// Tracker is the one reader of a Delivery's Watch. It hands each status
// change to whoever waits for that work (Await) and to every subscriber
// (Subscribe), so the pipeline waits for a work to reach a state without
// polling, and several waiters cost one watch.
//
// The watch reader never waits for a slow waiter or subscriber: each keeps
// only the latest state per work, and older unread states are dropped.
// Waiting is level-triggered, so the latest state is what counts.
//
// Works handed out by a Tracker are shared: treat them as read-only.
type Tracker struct {
	d   Delivery
	log *slog.Logger

	mu      sync.Mutex
	waiters map[workKey]map[*waiter]struct{}
	subs    map[*subscription]struct{}
	// pending is the latest state of each work whose latest state carries
	// workmeta.AnnotationStatusPending: a subscriber that comes after Maestro's
	// replay of every work (when the watch opens) still learns of them.
	pending map[workKey]WorkEvent
}

type workKey struct{ consumer, name string }

// NewTracker returns a Tracker over d. Nothing is watched until Run.
func NewTracker(d Delivery, logger *slog.Logger) *Tracker {
	if logger == nil {
		logger = slog.Default()
	}
	return &Tracker{
		d:       d,
		log:     logger,
		waiters: map[workKey]map[*waiter]struct{}{},
		subs:    map[*subscription]struct{}{},
		pending: map[workKey]WorkEvent{},
	}
}

// Run reads the Delivery's watch until ctx ends, then returns nil. A watch
// that fails to open, or ends early, is reopened with backoff; Run returns
// the error only when it is Permanent (a misconfigured backend). Await and
// Subscribe only see changes while Run runs.
func (t *Tracker) Run(ctx context.Context) error {
	const initial, limit = 50 * time.Millisecond, 5 * time.Second
	failures := 0
	for {
		ch, err := t.d.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if failure.IsPermanent(err) {
				return fmt.Errorf("tracking work status: %w", err)
			}
			failures++
			t.log.Warn("tracking work status: watch failed; retrying", "error", err, "attempt", failures)
			if sleep(ctx, backoff.Delay(initial, limit, failures)) != nil {
				return nil
			}
			continue
		}
		failures = 0
		for ev := range ch {
			t.dispatch(ev)
		}
		if ctx.Err() != nil {
			return nil
		}
		t.log.Warn("tracking work status: watch ended; reopening it")
		if sleep(ctx, initial) != nil {
			return nil
		}
	}
}

func (t *Tracker) dispatch(ev WorkEvent) {
	if ev.Work == nil {
		return
	}
	key := workKey{ev.Work.Namespace, ev.Work.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Type != watch.Deleted && ev.Work.Annotations[workmeta.AnnotationStatusPending] != "" {
		t.pending[key] = ev
	} else {
		delete(t.pending, key)
	}
	for w := range t.waiters[key] {
		w.offer(ev)
	}
	for s := range t.subs {
		s.offer(key, ev)
	}
}

// Await waits until done accepts the work's state and returns that state.
// done is called with nil when the work does not exist or was deleted, so
// waiting for a deletion is done(w) = w == nil. It checks the current state
// (Get) first and then every change; the waiter is registered before the
// Get, so a change landing in between is not missed. done runs on the
// caller's goroutine and must not keep the work.
//
// When ctx ends first, Await returns the last state it saw with an error
// wrapping ctx.Err() (a nil work then means gone or never seen).
func (t *Tracker) Await(ctx context.Context, consumer, name string, done func(w *workv1.ManifestWork) bool) (*workv1.ManifestWork, error) {
	e := t.Expect(consumer, name)
	defer e.Cancel()
	last, err := t.d.Get(ctx, consumer, name)
	if apierrors.IsNotFound(err) {
		last, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("waiting for work %s/%s: %w", consumer, name, err)
	}
	return e.Await(ctx, last, done)
}

// Expectation is a waiter registered ahead of a change: register it, make
// the change (Apply, Delete), then Await with the state the change returned.
// No status change after Expect is missed, and no read is needed to learn
// the starting state, which saves one round trip to Maestro per wait.
type Expectation struct {
	t        *Tracker
	key      workKey
	w        *waiter
	canceled bool
}

// Expect registers interest in one work's changes from now on. Call Cancel
// (or Await, which cancels when it returns) when done.
func (t *Tracker) Expect(consumer, name string) *Expectation {
	key := workKey{consumer, name}
	w := &waiter{notify: make(chan struct{}, 1)}
	t.mu.Lock()
	if t.waiters[key] == nil {
		t.waiters[key] = map[*waiter]struct{}{}
	}
	t.waiters[key][w] = struct{}{}
	t.mu.Unlock()
	return &Expectation{t: t, key: key, w: w}
}

// Cancel unregisters the expectation; it is safe to call more than once.
func (e *Expectation) Cancel() {
	if e.canceled {
		return
	}
	e.canceled = true
	e.t.mu.Lock()
	delete(e.t.waiters[e.key], e.w)
	if len(e.t.waiters[e.key]) == 0 {
		delete(e.t.waiters, e.key)
	}
	e.t.mu.Unlock()
}

// Await waits, from the state initial (nil: absent), until done accepts the
// work's state, as Tracker.Await does; it cancels the expectation when it
// returns.
func (e *Expectation) Await(ctx context.Context, initial *workv1.ManifestWork, done func(w *workv1.ManifestWork) bool) (*workv1.ManifestWork, error) {
	defer e.Cancel()
	last := initial
	for {
		if done(last) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, failure.Transient(fmt.Errorf("waiting for work %s/%s: %w", e.key.consumer, e.key.name, ctx.Err()))
		case <-e.w.notify:
			ev := e.w.take()
			switch {
			case ev.Type == watch.Deleted:
				last = nil
			case olderVersion(ev.Work, last):
				// The agent's answer to a version before the one this wait
				// starts from (or has seen since): the watch only carries
				// statuses, so an answer to another writer's earlier write
				// can arrive after this process's newer write returned.
				// Taking it would report the old version's state, and a
				// settled old version would even pass for the answer.
			default:
				last = ev.Work
			}
		}
	}
}

// olderVersion reports whether w is an earlier Maestro version of the same
// work than than.
func olderVersion(w, than *workv1.ManifestWork) bool {
	return w != nil && than != nil && w.UID == than.UID && w.Generation < than.Generation
}

// waiter holds the latest event for one Await.
type waiter struct {
	mu     sync.Mutex
	latest WorkEvent
	notify chan struct{} // capacity 1: "latest changed"
}

func (w *waiter) offer(ev WorkEvent) {
	w.mu.Lock()
	w.latest = ev
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *waiter) take() WorkEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

// Subscribe returns every status change from now until ctx ends, when the
// channel is closed, preceded by the latest state of each work marked
// workmeta.AnnotationStatusPending (whose status someone must still report, see
// pipeline.WatchStatus) seen so far. A subscriber that falls behind gets
// each work's latest state, in the order the works first changed, rather
// than every state.
func (t *Tracker) Subscribe(ctx context.Context) <-chan WorkEvent {
	s := &subscription{
		pending: map[workKey]WorkEvent{},
		wake:    make(chan struct{}, 1),
		out:     make(chan WorkEvent),
	}
	t.mu.Lock()
	for key, ev := range t.pending {
		s.offer(key, ev)
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	go func() {
		defer close(s.out)
		defer func() {
			t.mu.Lock()
			delete(t.subs, s)
			t.mu.Unlock()
		}()
		s.deliver(ctx)
	}()
	return s.out
}

// subscription queues, per work, the latest event not yet delivered.
type subscription struct {
	mu      sync.Mutex
	pending map[workKey]WorkEvent
	order   []workKey
	wake    chan struct{}
	out     chan WorkEvent
}

func (s *subscription) offer(key workKey, ev WorkEvent) {
	s.mu.Lock()
	if _, queued := s.pending[key]; !queued {
		s.order = append(s.order, key)
	}
	s.pending[key] = ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) next() (WorkEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return WorkEvent{}, false
	}
	key := s.order[0]
	s.order[0] = workKey{}
	s.order = s.order[1:]
	ev := s.pending[key]
	delete(s.pending, key)
	return ev, true
}

func (s *subscription) deliver(ctx context.Context) {
	for {
		ev, ok := s.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case s.out <- ev:
		}
	}
}
