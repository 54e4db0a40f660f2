package maestro

import (
	"context"
	"sync"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// WorkEventFanout hands every WorkEvent a Delivery emits to each Watch open
// on it, for deliveries that compute their events themselves (kubeapply,
// jobs). Events are sent under a read lock; a watch's channel is closed
// under the write lock, after the watch is marked done, so a send never
// meets a closed channel and a blocked send ends when the watch does.
type WorkEventFanout struct {
	stop     <-chan struct{}
	delivery string
	mu       sync.RWMutex
	watchers map[*fanoutWatch]struct{}
}

// NewWorkEventFanout returns a fanout whose sends give up, and whose Watch
// refuses, once stop (the delivery's own stop channel) is closed; delivery
// names the delivery in that refusal.
func NewWorkEventFanout(stop <-chan struct{}, delivery string) *WorkEventFanout {
	return &WorkEventFanout{stop: stop, delivery: delivery, watchers: map[*fanoutWatch]struct{}{}}
}

type fanoutWatch struct {
	ch       chan WorkEvent
	done     chan struct{}
	doneOnce sync.Once
}

func (w *fanoutWatch) end() { w.doneOnce.Do(func() { close(w.done) }) }

// Watch opens a watch, as a Delivery's Watch: its channel gets every event
// emitted from now on and is closed when ctx ends, or by Close. Once stop is
// closed it refuses, Permanent.
func (f *WorkEventFanout) Watch(ctx context.Context) (<-chan WorkEvent, error) {
	select {
	case <-f.stop:
		return nil, failure.Permanentf("%s closed", f.delivery)
	default:
	}
	w := &fanoutWatch{ch: make(chan WorkEvent), done: make(chan struct{})}
	f.mu.Lock()
	f.watchers[w] = struct{}{}
	f.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-f.stop:
			return // Close ends it
		}
		w.end()
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.watchers[w]; ok {
			delete(f.watchers, w)
			close(w.ch)
		}
	}()
	return w.ch, nil
}

// Emit sends a copy of ev to every open watch, waiting for each to take it
// unless that watch ends or stop is closed first.
func (f *WorkEventFanout) Emit(ev WorkEvent) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for w := range f.watchers {
		e := WorkEvent{Type: ev.Type, Work: ev.Work.DeepCopy()}
		select {
		case w.ch <- e:
		case <-w.done:
		case <-f.stop:
			return
		}
	}
}

// Close ends every open watch, closing its channel. Call it after closing
// stop, which unblocks a send to a watch nobody reads.
func (f *WorkEventFanout) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		w.end()
		delete(f.watchers, w)
		close(w.ch)
	}
}
