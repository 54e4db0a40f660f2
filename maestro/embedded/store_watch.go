// The Store's watches: events queued in order and dispatched to every
// watcher, as grpcsource's watcher delivers them.

package embedded

import (
	"strconv"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
)

// enqueue queues a watch event carrying a copy of w. Called with mu held,
// so events leave in the order the changes happened.
func (s *Store) enqueue(t watch.EventType, w *workv1.ManifestWork) {
	ev := w.DeepCopy()
	if ev.Annotations == nil {
		ev.Annotations = map[string]string{}
	}
	// The OCM codec puts the agent's status sequence id on every work it
	// decodes from a status event.
	ev.Annotations[common.CloudEventsSequenceIDAnnotationKey] = strconv.FormatInt(s.seq.Add(1), 10)
	s.queue.push(watch.Event{Type: t, Object: ev})
}

// dispatchEvents hands each event to every watcher in turn, waiting for
// each to take it, like grpcsource's sendWatchEvent.
func (s *Store) dispatchEvents() {
	defer s.dispatch.Done()
	for {
		ev, ok := s.queue.pop()
		if !ok {
			return
		}
		s.wmu.Lock()
		ws := make([]*watcher, 0, len(s.watchers))
		for _, w := range s.watchers {
			ws = append(ws, w)
		}
		s.wmu.Unlock()
		for _, w := range ws {
			w.receive(ev, s.closed)
		}
	}
}

func (s *Store) registerWatcher(namespace string, sel labels.Selector) *watcher {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if w, ok := s.watchers[namespace]; ok && !w.isStopped() {
		return w
	}
	w := &watcher{namespace: namespace, selector: sel, result: make(chan watch.Event), done: make(chan struct{})}
	s.watchers[namespace] = w
	return w
}

// watcher is grpcsource's workWatcher.
type watcher struct {
	namespace string
	selector  labels.Selector
	result    chan watch.Event

	mu      sync.Mutex
	stopped bool
	done    chan struct{}
}

var _ watch.Interface = (*watcher)(nil)

func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

// Stop marks the watcher stopped; like grpcsource's, only a second Stop
// closes the result channel.
func (w *watcher) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		close(w.result)
	default:
		w.stopped = true
		close(w.done)
	}
}

func (w *watcher) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// receive blocks until the event is read, however long that takes, unless
// the store closes: grpcsource's Receive does the same (without the
// closing).
func (w *watcher) receive(ev watch.Event, closed <-chan struct{}) {
	if w.isStopped() {
		return
	}
	work := ev.Object.(*workv1.ManifestWork)
	if w.namespace != metav1.NamespaceAll && w.namespace != work.Namespace {
		return
	}
	if !w.selector.Matches(labels.Set(work.Labels)) {
		return
	}
	select {
	case w.result <- ev:
	case <-closed:
	}
}

// eventQueue is an unbounded FIFO: writers never wait for readers.
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []watch.Event
	closed bool
}

func (q *eventQueue) push(ev watch.Event) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *eventQueue) pop() (watch.Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return watch.Event{}, false
	}
	ev := q.items[0]
	q.items[0] = watch.Event{}
	q.items = q.items[1:]
	return ev, true
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
