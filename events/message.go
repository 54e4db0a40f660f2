package events

import (
	"context"
	"encoding/json"
	"time"
)

// Message is one delivery from an event source, before decoding. It is the
// unit that is acknowledged: exactly one of Ack, Retry or DeadLetter settles
// it, and only the pipeline calls them (pipeline.settle).
type Message struct {
	// TransportID identifies the delivery in logs (broker message id, or
	// file:line for recordings). It is not the CloudEvent id.
	TransportID string
	// Body is the message payload; Attributes its headers (RabbitMQ) or
	// attributes (Pub/Sub). Together they carry one of the three wire forms
	// that Decode accepts.
	Body       []byte
	Attributes map[string]string
	// Snapshot is the resource as recorded next to the event (adapter
	// record), in the HyperFleet API's JSON. When set it wins over reading
	// the API: a replay reproduces what the adapter saw.
	Snapshot json.RawMessage
	// OwnerSnapshot is the owning cluster as recorded, for node pool events.
	OwnerSnapshot json.RawMessage
	// StatusesSnapshot and OwnerStatusesSnapshot are the adapters' status
	// reports on the resource and on its cluster (GET .../statuses) as
	// recorded; preconditions that name them read these instead of the API.
	StatusesSnapshot      json.RawMessage
	OwnerStatusesSnapshot json.RawMessage
	// Attempt counts deliveries of this message, starting at 1, as far as
	// the transport knows.
	Attempt int
	// ReceivedAt is when the source handed the message over.
	ReceivedAt time.Time

	Settler Settler
}

// Settler is the transport side of a Message: how its outcome goes back to
// the broker. Each method is called at most once per message, and only one
// of them is called.
type Settler interface {
	// Ack confirms the message: its outcome is durable and it must not be
	// delivered again.
	Ack(ctx context.Context) error
	// Requeue gives the message back for redelivery (a transient failure
	// whose retries the broker should carry, or shutdown).
	Requeue(ctx context.Context, reason string) error
	// DeadLetter moves the message to the dead-letter destination with the
	// reason and the attempt count, then removes it from the subscription.
	DeadLetter(ctx context.Context, reason string, attempts int) error
}

// Source delivers messages. Receive blocks until a message is available, the
// context ends, or the source is exhausted (io.EOF, for recordings); it is
// called from one goroutine. Close stops intake; messages already handed out
// can still be settled.
type Source interface {
	Receive(ctx context.Context) (*Message, error)
	Close() error
}

// Next is Receive for sources whose goroutine fills out: it hands over the
// next message, or returns closed once stop is done (checked first, so a
// closed source never hands out more), or ctx.Err().
func Next(ctx context.Context, stop <-chan struct{}, out <-chan *Message, closed error) (*Message, error) {
	select {
	case <-stop:
		return nil, closed
	default:
	}
	select {
	case m := <-out:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-stop:
		return nil, closed
	}
}
