package apiclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// StatusSink sends the report inside each status CloudEvent to the HyperFleet
// API (PUT {href}/statuses). It is an events.StatusSink: the adapter uses
// it next to the broker publisher when HYPERFLEET_API_URL is set.
//
// 201 (stored) and 204 (discarded as stale, future or a repeated Unknown)
// are both success: the API has decided. 404 (the resource was deleted
// meanwhile) is an error wrapping ErrNotFound, which the pipeline takes as
// the resource being gone. 401 and 403 are transient (ErrAuthentication).
// Other 4xx are permanent and counted in Rejected; 5xx, 408 and 429 are
// retried by the client with jittered backoff, then transient.
type StatusSink struct {
	client   *Client
	rejected atomic.Int64
	stored   atomic.Int64
	ignored  atomic.Int64
}

// NewStatusSink sends through client.
func NewStatusSink(client *Client) *StatusSink { return &StatusSink{client: client} }

// Publish implements events.StatusSink.
func (s *StatusSink) Publish(ctx context.Context, ev cloudevents.Event) error {
	var env hyperfleet.StatusEnvelope
	if err := ev.DataAs(&env); err != nil {
		return failure.Permanent(fmt.Errorf("status event %s: data is not a status envelope: %w", ev.ID(), err))
	}
	if env.Resource.Href == "" {
		return failure.Permanent(fmt.Errorf("status event %s: resource.href is empty", ev.ID()))
	}
	if err := env.Report.Validate(); err != nil {
		s.rejected.Add(1)
		return failure.Permanent(fmt.Errorf("status event %s: %w", ev.ID(), err))
	}
	code, err := s.client.PutStatus(ctx, env.Resource.Href, env.Report)
	if err != nil {
		if failure.IsPermanent(err) && !errors.Is(err, hyperfleet.ErrNotFound) {
			s.rejected.Add(1)
		}
		return err
	}
	if code == 204 {
		s.ignored.Add(1)
	} else {
		s.stored.Add(1)
	}
	return nil
}

// Counts returns reports stored (201), ignored by the API (204) and
// rejected (4xx other than 401, 403 and 404, or invalid before sending).
func (s *StatusSink) Counts() (stored, ignored, rejected int64) {
	return s.stored.Load(), s.ignored.Load(), s.rejected.Load()
}
