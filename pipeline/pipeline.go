// Package pipeline runs the adapter's one job: it takes messages from an
// event source and, for each, goes receive → decode → read the resource →
// dispatch → build → deliver → await status → report → settle.
//
// Everything that decides the fate of a message lives here, in settle: the
// handlers, delivery backends and sources only return errors classed as
// permanent or transient (failure.IsPermanent).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
