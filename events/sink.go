package events

import (
	"context"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// StatusSink takes the status CloudEvents the adapter emits. Publish returns
// nil only once the event is durable: written and flushed, confirmed by the
// broker, or accepted by the HyperFleet API. The pipeline acknowledges the
// input event only after that. Errors are classed like any other (see
// Permanent, Transient). Implementations are safe for concurrent use.
type StatusSink interface {
	Publish(ctx context.Context, ev cloudevents.Event) error
}
