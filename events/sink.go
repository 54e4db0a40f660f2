package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// StatusSink takes the status CloudEvents the adapter emits. Publish returns
// nil only once the event is durable: written and flushed, confirmed by the
// broker, or accepted by the HyperFleet API. The pipeline acknowledges the
// input event only after that. Errors are classed like any other (see
// Permanent, Transient). Implementations are safe for concurrent use.
type StatusSink interface {
	Publish(ctx context.Context, ev cloudevents.Event) error
}

// JSONLSink writes each status event as one JSON line (the replay command's
// --status-out). A write is durable once flushed to the file descriptor;
// files are also synced.
type JSONLSink struct {
	mu sync.Mutex
	w  io.Writer
}

var _ StatusSink = (*JSONLSink)(nil)

// NewJSONLSink writes to w.
func NewJSONLSink(w io.Writer) *JSONLSink { return &JSONLSink{w: w} }

// Publish implements StatusSink.
func (s *JSONLSink) Publish(_ context.Context, ev cloudevents.Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return failure.Permanent(fmt.Errorf("encode status event: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(append(line, '\n')); err != nil {
		return failure.Transient(fmt.Errorf("write status event: %w", err))
	}
	if f, ok := s.w.(*os.File); ok && f != os.Stdout && f != os.Stderr {
		if err := f.Sync(); err != nil {
			return failure.Transient(fmt.Errorf("sync status output: %w", err))
		}
	}
	return nil
}

// MultiSink publishes every event to each sink in turn and fails if any
// fails; the pipeline then retries the whole event, and a sink that already
// took the report takes it again (status reports are idempotent: the API
// answers 204 to a repeat).
type MultiSink []StatusSink

// Publish implements StatusSink.
func (m MultiSink) Publish(ctx context.Context, ev cloudevents.Event) error {
	for _, s := range m {
		if err := s.Publish(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}
