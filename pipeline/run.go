package pipeline

// Scheduling and settling: Run takes messages from the source and runs
// the events of one resource one at a time, coalescing what queued behind
// them; try runs one attempt and retries transient failures with backoff;
// settle is the one place that acks, requeues or dead-letters a message.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// job is one event to handle, plus older events for the same resource that
// were coalesced into it and share its fate.
type job struct {
	ev     events.Event
	msg    *events.Message
	riders []*job
	// attempt is the try about to run, counting the broker's earlier
	// deliveries; start is when the first try in this process began.
	attempt int
	start   time.Time
	// span covers every try; settle ends it.
	span trace.Span
}

type keyState struct{ pending []*job }

// Run consumes src until it is exhausted (io.EOF, recordings) or ctx ends
// (shutdown), and returns once every message it received is settled.
//
// Scheduling: events for one resource (events.Event.Key) run one at a time
// in arrival order, and while one runs, newer events for the same resource
// queue; when it finishes, the queue is coalesced into its newest
// generation. Different resources run in parallel up to Concurrency. An
// event waiting out the backoff before its next try holds no concurrency
// slot (it still holds its resource), so troubled resources do not stall
// healthy ones. At most 2×Concurrency messages are held at once, so the
// source's own buffering (broker prefetch) applies backpressure.
//
// Shutdown: when ctx ends, intake stops, queued events and events waiting
// to retry are given back at once, and running ones get DrainTimeout to
// finish (reported and acknowledged as usual) before the rest are given
// back, unreported.
func (p *Pipeline) Run(ctx context.Context, src events.Source) error {
	handleCtx, cancelHandling := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandling()

	var (
		workers  sync.WaitGroup
		slots    = make(chan struct{}, p.cfg.Concurrency)
		held     = make(chan struct{}, 2*p.cfg.Concurrency)
		stopping = make(chan struct{})
	)
	shuttingDown := func() bool {
		select {
		case <-stopping:
			return true
		default:
			return false
		}
	}

	// handle runs j's tries until it is settled. Between tries it waits
	// without a slot.
	handle := func(j *job) {
		for {
			if shuttingDown() {
				p.settle(j, result{outcome: Requeued, err: errors.New("adapter shutting down"), attempts: j.attempt})
				return
			}
			select {
			case <-stopping:
				continue
			case slots <- struct{}{}:
			}
			if shuttingDown() { // both were ready: shutdown wins
				<-slots
				continue
			}
			p.observer.InFlight(1)
			r, retryIn := p.try(handleCtx, j)
			p.observer.InFlight(-1)
			<-slots
			if retryIn < 0 {
				p.settle(j, r)
				return
			}
			wait := time.NewTimer(retryIn)
			select {
			case <-wait.C:
				j.attempt++
			case <-stopping:
				wait.Stop()
				p.settle(j, result{outcome: Requeued, err: fmt.Errorf("adapter shutting down while waiting to retry after: %w", r.err), attempts: j.attempt})
				return
			}
		}
	}

	runWorker := func(key string, j *job) {
		defer workers.Done()
		for j != nil {
			handle(j)
			for range 1 + len(j.riders) {
				<-held
			}
			p.mu.Lock()
			st := p.keys[key]
			if len(st.pending) == 0 {
				delete(p.keys, key)
				p.keyDone(key)
				j = nil
			} else if p.cfg.Coalesce {
				j = coalesce(st.pending)
				st.pending = nil
			} else {
				j = st.pending[0]
				st.pending = st.pending[1:]
			}
			p.mu.Unlock()
		}
	}

	var recvErr error
	for {
		select {
		case held <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		msg, err := src.Receive(ctx)
		if err != nil {
			<-held
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				break
			}
			// The source reconnects by itself; an error here is a source that
			// cannot go on (bad configuration, closed).
			recvErr = fmt.Errorf("receive: %w", err)
			break
		}
		p.observer.Received()
		ev, err := p.decoder.Decode(msg)
		if err != nil {
			p.settle(&job{msg: msg}, result{outcome: Failed, err: fmt.Errorf("decode: %w", err), attempts: msg.Attempt})
			<-held
			continue
		}
		j := &job{ev: ev, msg: msg, attempt: max(msg.Attempt, 1)}
		p.mu.Lock()
		if st, running := p.keys[ev.Key()]; running {
			st.pending = append(st.pending, j)
			p.mu.Unlock()
			continue
		}
		p.keys[ev.Key()] = &keyState{}
		p.mu.Unlock()
		workers.Add(1)
		go runWorker(ev.Key(), j)
	}

	// Intake has stopped: the source is exhausted, failed, or shutdown
	// began. Shutdown (now, or while the last events run) gives queued and
	// retry-waiting events back at once and running ones the drain deadline.
	finished := make(chan struct{})
	go func() { workers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		close(stopping)
		timer := time.AfterFunc(p.cfg.DrainTimeout, cancelHandling)
		defer timer.Stop()
		<-finished
	}
	return recvErr
}

// coalesce picks the newest generation among queued events for one
// resource (the latest arrival among equals); the others ride along.
func coalesce(pending []*job) *job {
	best := pending[0]
	for _, j := range pending[1:] {
		if j.ev.Generation >= best.ev.Generation {
			best = j
		}
	}
	for _, j := range pending {
		if j != best {
			best.riders = append(best.riders, j)
			best.riders = append(best.riders, j.riders...)
			j.riders = nil
		}
	}
	return best
}

type result struct {
	outcome  Outcome
	err      error
	attempts int
}

// try runs one try of j. retryIn < 0: j is done with the result. Else the
// try failed transiently with tries left, and the next one should start
// after retryIn (the result then holds the failure, for a shutdown that
// comes first).
func (p *Pipeline) try(ctx context.Context, j *job) (r result, retryIn time.Duration) {
	log := p.eventLogger(j.ev)
	ctx = withLogger(ctx, log)
	ctx = withEventAttrs(ctx, eventAttrs(j.ev))
	ctx = maestro.WithEventID(ctx, j.ev.ID)
	ctx = p.eventSpan(ctx, j)
	if j.start.IsZero() {
		j.start = p.now()
	}
	const done = -1
	outcome, st, err := p.reconcile(ctx, j.ev, j.msg)
	if err == nil {
		p.observer.Handled(outcome, p.now().Sub(j.start))
		return result{outcome: outcome, attempts: j.attempt}, done
	}
	if ctx.Err() != nil {
		return result{outcome: Requeued, err: err, attempts: j.attempt}, done
	}
	if failure.IsPermanent(err) || (j.attempt >= p.cfg.MaxAttempts && !outlastsMaxAttempts(err)) {
		p.reportFailure(ctx, j.ev, st, err)
		p.observer.Handled(Failed, p.now().Sub(j.start))
		return result{outcome: Failed, err: err, attempts: j.attempt}, done
	}
	delay := backoff.Delay(p.cfg.RetryBaseDelay, p.cfg.RetryMaxDelay, j.attempt)
	log.WarnContext(ctx, "transient failure, retrying", "attempt", j.attempt, "max_attempts", p.cfg.MaxAttempts, "retry_in", delay, "err", err)
	p.observer.Retried()
	return result{outcome: Requeued, err: err, attempts: j.attempt}, delay
}

// settle is the one place that decides ack, requeue or dead-letter.
func (p *Pipeline) settle(j *job, r result) {
	// Settling must happen even when shutdown cancelled the handling.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := p.log
	if j.ev.ID != "" {
		log = p.eventLogger(j.ev)
	} else {
		log = log.With("transport_id", j.msg.TransportID)
	}
	var err error
	switch r.outcome {
	case Failed:
		reason := r.err.Error()
		if id := j.ev.ID; id != "" {
			reason = fmt.Sprintf("event %s: %s", id, reason)
		} else if id := events.PeekID(j.msg); id != "" {
			reason = fmt.Sprintf("event %s: %s", id, reason)
		}
		log.Error("event failed, dead-lettering", "attempts", r.attempts, "err", r.err)
		err = j.msg.Settler.DeadLetter(ctx, reason, r.attempts)
		p.observer.DeadLettered()
	case Requeued:
		log.Info("giving event back to the source", "reason", r.err)
		err = j.msg.Settler.Requeue(ctx, r.err.Error())
	default:
		log.Debug("event settled", "outcome", r.outcome)
		err = j.msg.Settler.Ack(ctx)
	}
	if err != nil {
		// The broker redelivers what it has not seen settled; the newer
		// generation guard makes that harmless.
		log.Warn("could not settle message; the broker will redeliver it", "outcome", r.outcome, "err", err)
	}
	p.stats.add(r.outcome)
	endEventSpan(j, r)
	for _, rider := range j.riders {
		rlog := p.eventLogger(rider.ev)
		var rerr error
		if r.outcome == Requeued {
			rerr = rider.msg.Settler.Requeue(ctx, "coalesced into a requeued event")
			p.stats.add(Requeued)
		} else {
			rlog.Debug("event settled", "outcome", Superseded, "coalesced_into", j.ev.ID)
			rerr = rider.msg.Settler.Ack(ctx)
			p.stats.add(Superseded)
		}
		if rerr != nil {
			rlog.Warn("could not settle coalesced message", "transport_id", rider.msg.TransportID, "err", rerr)
		}
	}
}
