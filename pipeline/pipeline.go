// Package pipeline runs the adapter's one job: it takes messages from an
// event source and, for each, goes receive → decode → read the resource →
// dispatch → build → deliver → await status → report → settle.
//
// Everything that decides the fate of a message lives here, in settle: the
// handlers, delivery backends and sources only return errors classed as
// permanent or transient (events.IsPermanent).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/preconditions"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/retry"
)

// Config holds the pipeline's timings and limits.
type Config struct {
	// AdapterName names the adapter in status reports and event sources.
	AdapterName string
	// Concurrency bounds events handled at once. Events about one resource
	// always run one at a time, whatever this says.
	Concurrency int
	// MaxAttempts bounds tries of one event (counting broker redeliveries)
	// before it is dead-lettered.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff
	// between tries of a transient failure.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// StatusTimeout bounds the wait for the agent's status after delivery.
	// When it runs out the report says what is known (Unknown conditions);
	// the event is not failed for it.
	StatusTimeout time.Duration
	// DrainTimeout bounds how long in-flight events may finish once
	// shutdown starts; what is still running then is given back to the
	// broker.
	DrainTimeout time.Duration
	// Coalesce folds queued events for one resource into the newest
	// generation (on for brokers: Sentinel re-publishes, only the latest
	// state matters). Off, every event is handled in arrival order (replay:
	// each recorded event yields its own status event).
	Coalesce bool
	// StatusWatch says which works' status changes WatchStatus reports
	// between events: WatchDelivered (default), WatchAll or WatchOff.
	StatusWatch string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Concurrency:    4,
		MaxAttempts:    5,
		RetryBaseDelay: 500 * time.Millisecond,
		RetryMaxDelay:  30 * time.Second,
		StatusTimeout:  30 * time.Second,
		DrainTimeout:   25 * time.Second,
		Coalesce:       true,
		StatusWatch:    WatchDelivered,
	}
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.AdapterName == "":
		return errors.New("ADAPTER_NAME: empty")
	case c.Concurrency < 1:
		return fmt.Errorf("CONCURRENCY: %d, want >= 1", c.Concurrency)
	case c.MaxAttempts < 1:
		return fmt.Errorf("MAX_ATTEMPTS: %d, want >= 1", c.MaxAttempts)
	case c.RetryBaseDelay <= 0 || c.RetryMaxDelay < c.RetryBaseDelay:
		return fmt.Errorf("RETRY_BASE_DELAY/RETRY_MAX_DELAY: %s/%s, want 0 < base <= max", c.RetryBaseDelay, c.RetryMaxDelay)
	case c.StatusTimeout <= 0:
		return fmt.Errorf("STATUS_TIMEOUT: %s, want > 0", c.StatusTimeout)
	case c.DrainTimeout < 0:
		return fmt.Errorf("DRAIN_TIMEOUT: %s, want >= 0", c.DrainTimeout)
	}
	switch c.StatusWatch {
	case WatchDelivered, WatchAll, WatchOff:
	default:
		return fmt.Errorf("STATUS_WATCH: %q, want %s, %s or %s", c.StatusWatch, WatchDelivered, WatchAll, WatchOff)
	}
	return nil
}

// Pipeline is built once per process and runs one source at a time.
type Pipeline struct {
	cfg       Config
	decoder   *events.Decoder
	resources hyperfleet.ResourceReader
	handler   handlers.Handler
	delivery  maestro.Delivery
	tracker   *maestro.Tracker
	sink      events.StatusSink
	log       *slog.Logger
	observer  Observer
	tracer    trace.Tracer
	now       func() time.Time

	preconditions *preconditions.Set
	statuses      hyperfleet.StatusReader

	stats Stats

	// keys holds the resources with an event queued or running (by
	// events.Event.Key), so that events for one resource run one at a time
	// and the status watcher leaves them to the handler.
	mu   sync.Mutex
	keys map[string]*keyState
	// holds are the resources the status watcher is reporting on (guarded
	// by mu; see watch.go): an event for one waits until it is released.
	holds resourceHolds

	// reported is what the status of each work was when last reported, so
	// that WatchStatus reports only news.
	reported reportedWorks
	// deferred holds, per resource key (guarded by mu), the latest status
	// change of each work that the watcher put aside while an event for the
	// resource ran; idle says some of them may be due (see keyDone).
	deferred map[string]map[string]maestro.WorkEvent
	idle     chan struct{}
}

// Deps are the pipeline's collaborators, one per seam.
type Deps struct {
	Decoder   *events.Decoder
	Resources hyperfleet.ResourceReader
	Handler   handlers.Handler
	Delivery  maestro.Delivery
	// Tracker waits for status; it must watch Delivery.
	Tracker  *maestro.Tracker
	Sink     events.StatusSink
	Logger   *slog.Logger
	Observer Observer
	// Preconditions gate delivery (nil: none); Statuses reads the adapters'
	// status reports for expressions that name them.
	Preconditions *preconditions.Set
	Statuses      hyperfleet.StatusReader
	// Tracer makes the spans of events and their phases (tracing.go);
	// nil: no spans, the input's trace context is passed on as it came.
	Tracer trace.TracerProvider
}

// New checks cfg and deps and builds a pipeline.
func New(cfg Config, d Deps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Decoder == nil, d.Resources == nil, d.Handler == nil, d.Delivery == nil, d.Tracker == nil, d.Sink == nil:
		return nil, errors.New("pipeline: decoder, resources, handler, delivery, tracker and sink are all required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Tracer == nil {
		d.Tracer = noop.NewTracerProvider()
	}
	return &Pipeline{
		cfg: cfg, decoder: d.Decoder, resources: d.Resources, handler: d.Handler,
		delivery: d.Delivery, tracker: d.Tracker, sink: unlessCancelled{d.Sink}, log: d.Logger,
		observer: d.Observer, tracer: d.Tracer.Tracer(TracerName), now: time.Now,
		preconditions: d.Preconditions, statuses: d.Statuses,
		stats:    Stats{counts: map[Outcome]int{}},
		keys:     map[string]*keyState{},
		reported: reportedWorks{works: map[string]reportedWork{}},
		deferred: map[string]map[string]maestro.WorkEvent{},
		idle:     make(chan struct{}, 1),
	}, nil
}

// unlessCancelled publishes only while the caller's context lives. An
// event cut off at the drain deadline goes back to the broker, and its
// report, made from whatever the wait had seen by then (Unknown
// conditions), must not go out: the replica that takes the event over
// reports the real state.
type unlessCancelled struct{ events.StatusSink }

func (s unlessCancelled) Publish(ctx context.Context, ev cloudevents.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not publishing status event %s: %w", ev.ID(), err)
	}
	return s.StatusSink.Publish(ctx, ev)
}

// Outcome is what became of one message.
type Outcome string

// Outcomes, as counted in Stats and metrics.
const (
	// Reconciled: works applied (or deleted) and the status report published.
	Reconciled Outcome = "reconciled"
	// Skipped: this adapter type does not handle the resource's kind.
	Skipped Outcome = "skipped"
	// Gone: the API no longer has the resource; nothing to do or report.
	Gone Outcome = "gone"
	// Superseded: a newer generation was already delivered, or the event was
	// coalesced into a newer one for the same resource.
	Superseded Outcome = "superseded"
	// PreconditionsNotMet: the adapter's preconditions do not hold for the
	// resource; nothing was delivered and a report saying so was published.
	PreconditionsNotMet Outcome = "preconditions_not_met"
	// Failed: dead-lettered, with the reason.
	Failed Outcome = "failed"
	// Requeued: given back to the source (shutdown).
	Requeued Outcome = "requeued"
)

// Stats counts messages by outcome.
type Stats struct {
	mu     sync.Mutex
	counts map[Outcome]int
}

func (s *Stats) add(o Outcome) {
	s.mu.Lock()
	s.counts[o]++
	s.mu.Unlock()
}

// Counts returns a copy of the counts.
func (s *Stats) Counts() map[Outcome]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Outcome]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Total is the number of messages settled.
func (s *Stats) Total() int {
	n := 0
	for _, v := range s.Counts() {
		n += v
	}
	return n
}

// String renders the counts in a fixed order for the closing summary.
func (s *Stats) String() string {
	c := s.Counts()
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	out := fmt.Sprintf("%d events", s.Total())
	for _, k := range keys {
		out += fmt.Sprintf(", %s %d", k, c[Outcome(k)])
	}
	return out
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

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
	if events.IsPermanent(err) || (j.attempt >= p.cfg.MaxAttempts && !outlastsMaxAttempts(err)) {
		p.reportFailure(ctx, j.ev, st, err)
		p.observer.Handled(Failed, p.now().Sub(j.start))
		return result{outcome: Failed, err: err, attempts: j.attempt}, done
	}
	delay := retry.Delay(p.cfg.RetryBaseDelay, p.cfg.RetryMaxDelay, j.attempt)
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

func (p *Pipeline) eventLogger(ev events.Event) *slog.Logger {
	var args []any
	for _, a := range eventAttrs(ev) {
		args = append(args, a)
	}
	return p.log.With(args...)
}

// eventAttrs are the fields every log line about ev carries.
func eventAttrs(ev events.Event) []slog.Attr {
	attrs := []slog.Attr{slog.String("event_id", ev.ID), slog.String("kind", ev.Kind),
		slog.String("resource_id", ev.ResourceID), slog.Int64("generation", ev.Generation)}
	if tid := traceID(ev.TraceParent); tid != "" {
		attrs = append(attrs, slog.String("trace_id", tid))
	}
	return attrs
}

// traceID extracts the trace id from a W3C traceparent
// (version-traceid-spanid-flags), or "".
func traceID(traceparent string) string {
	if len(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	return ""
}

type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}
