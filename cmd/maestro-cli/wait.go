package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// progressEvery is how often a wait says it is still waiting when nothing
// changes.
const progressEvery = 10 * time.Second

// await waits until the consumer's work meets cond at generation minGen or
// later, logging every change it sees and, when nothing changes, that it
// still waits. The agent reporting failure ends the wait with exit 5; the
// --timeout running out with exit 4.
func (inv *invocation) await(t *maestro.Tracker, consumer, name, cond string, minGen int64) (*workv1.ManifestWork, error) {
	start := time.Now()
	log := inv.log.With("work", consumer+"/"+name)
	var mu sync.Mutex
	last := ""
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				s := last
				mu.Unlock()
				log.Info("still waiting for "+cond, "elapsed", time.Since(start).Round(time.Second), "last_seen", s)
			}
		}
	}()
	w, err := t.Await(inv.ctx, consumer, name, func(w *workv1.ManifestWork) bool {
		s := summary(w)
		mu.Lock()
		changed := s != last
		last = s
		mu.Unlock()
		if changed {
			log.Info(s, "waiting_for", cond)
		}
		v, _, _ := judge(w, cond, minGen)
		return v != pending
	})
	close(stop)
	wg.Wait()
	if err != nil {
		if inv.timedOut() {
			return w, &failure{
				code: exitTimeout, reason: reasonTimeout, work: w,
				err: fmt.Errorf("timed out after %s (--timeout) waiting for work %s/%s to be %s; last seen: %s",
					inv.timeout, consumer, name, cond, summary(w)),
			}
		}
		return w, err
	}
	if v, reason, msg := judge(w, cond, minGen); v == failed {
		return w, &failure{
			code: exitCondition, reason: reason, work: w,
			err: fmt.Errorf("work %s/%s (generation %d) is not %s: the agent reports %s", consumer, name, w.Generation, cond, msg),
		}
	}
	log.Info("condition met: "+cond, "took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// timedOut reports whether the invocation's --timeout ran out.
func (inv *invocation) timedOut() bool {
	return inv.ctx.Err() != nil && errors.Is(context.Cause(inv.ctx), errTimedOut)
}
