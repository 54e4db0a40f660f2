// SourceDelivery's watch hub: one watch on the client, reopened when it
// ends, fanned out to every Watch caller and feeding Apply's cache.

package maestro

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// openWatchTimeout bounds opening the watch, which lists every work.
const openWatchTimeout = 30 * time.Second

// Watch implements Delivery. All callers share one watch on the client,
// opened by the first call; Maestro replays every work as Modified when it
// opens (and again after reconnecting), so the first subscriber sees the
// current state, later ones see changes from when they subscribed. Each
// event is handed to each subscriber in turn: a subscriber that does not
// read holds up the others, as Maestro's own watch does.
func (d *SourceDelivery) Watch(ctx context.Context) (<-chan WorkEvent, error) {
	d.hubMu.Lock()
	defer d.hubMu.Unlock()
	if d.ctx.Err() != nil {
		return nil, failure.Permanentf("watching works: delivery is closed")
	}
	if !d.watching {
		w, err := d.openWatch()
		if err != nil {
			return nil, err
		}
		d.watching = true
		go d.pump(w)
	}
	sub := &hubSub{ctx: ctx, ch: make(chan WorkEvent)}
	d.subs[sub] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
		d.hubMu.Lock()
		delete(d.subs, sub)
		d.hubMu.Unlock()
		sub.close()
	}()
	return sub.ch, nil
}

// openWatch watches every consumer's works: grpcsource takes
// metav1.NamespaceAll for that. FieldSelector is ignored there; none is set.
// The watch outlives the call; the context only bounds the listing
// grpcsource does when it opens (a hung listing would hold callMu).
func (d *SourceDelivery) openWatch() (w watch.Interface, err error) {
	ctx, cancel := context.WithTimeout(d.ctx, openWatchTimeout)
	defer cancel()
	err = d.works(metav1.NamespaceAll, func(c workv1client.ManifestWorkInterface) error {
		w, err = c.Watch(ctx, metav1.ListOptions{})
		return err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("watching works: %w", err))
	}
	return w, nil
}

// pump forwards the client's watch to the subscribers until Close, and
// reopens it if it ends early.
func (d *SourceDelivery) pump(w watch.Interface) {
	defer close(d.pumpDone)
	for n := 1; ; {
		d.cache.setLive(true)
		d.forward(w)
		d.cache.setLive(false)
		w.Stop()
		go drain(w)
		if d.ctx.Err() != nil {
			return
		}
		d.log.Warn("work watch ended; reopening it")
		for {
			if sleep(d.ctx, backoff.Delay(d.opts.RetryInitial, d.opts.RetryMax, n)) != nil {
				return
			}
			var err error
			if w, err = d.openWatch(); err == nil {
				break
			}
			n++
			d.log.Warn("reopening the work watch failed", "error", err)
		}
	}
}

func (d *SourceDelivery) forward(w watch.Interface) {
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-d.ctx.Done():
			return
		case ev, ok = <-w.ResultChan():
			if !ok {
				return
			}
		}
		work, isWork := ev.Object.(*workv1.ManifestWork)
		switch {
		case ev.Type == watch.Error || ev.Type == watch.Bookmark:
			d.log.Debug("work watch: ignoring event", "type", ev.Type, "object", fmt.Sprintf("%T", ev.Object))
			continue
		case !isWork:
			d.log.Warn("work watch: ignoring an object that is not a ManifestWork", "type", fmt.Sprintf("%T", ev.Object))
			continue
		case ev.Type == watch.Added:
			// Maestro sends no Added; a client that does means the same.
			ev.Type = watch.Modified
		}
		d.cache.observe(WorkEvent{Type: ev.Type, Work: work})
		d.broadcast(WorkEvent{Type: ev.Type, Work: work})
	}
}

func (d *SourceDelivery) broadcast(ev WorkEvent) {
	d.hubMu.Lock()
	subs := make([]*hubSub, 0, len(d.subs))
	for s := range d.subs {
		subs = append(subs, s)
	}
	d.hubMu.Unlock()
	for i, s := range subs {
		e := ev
		if i > 0 {
			// Each subscriber gets its own copy to read or keep.
			e.Work = ev.Work.DeepCopy()
		}
		s.send(d.ctx, e)
	}
}

// drain keeps reading a stopped watch for a moment. grpcsource's watcher
// checks "stopped" and then sends on its unbuffered channel without a way
// out, so a send that raced Stop would block every watcher of the source
// forever if nobody read it.
func drain(w watch.Interface) {
	const quiet = 200 * time.Millisecond
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
			t.Reset(quiet)
		case <-t.C:
			return
		}
	}
}

// Close stops the watch and ends every Watch channel. The client itself is
// the caller's to close.
func (d *SourceDelivery) Close() error {
	d.hubMu.Lock()
	watching := d.watching
	d.cancel()
	d.hubMu.Unlock()
	if watching {
		<-d.pumpDone
	}
	return nil
}

// hubSub is one Watch caller.
type hubSub struct {
	ctx context.Context
	// mu makes send and close exclusive: ch is closed only when no send is
	// in flight, and a send in flight gives way when ctx ends.
	mu     sync.Mutex
	closed bool
	ch     chan WorkEvent
}

func (s *hubSub) send(hubCtx context.Context, ev WorkEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- ev:
	case <-s.ctx.Done():
	case <-hubCtx.Done():
	}
}

func (s *hubSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}
