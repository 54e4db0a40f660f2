package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/openshift-online/maestro/pkg/api/openapi"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// ErrConsumerNotRegistered means Maestro has no consumer of that name:
// no agent can ever receive the work. It is wrapped in a Permanent error
// that names the consumer.
var ErrConsumerNotRegistered = errors.New("consumer is not registered in Maestro")

// consumers checks that a consumer exists before works are sent to it.
// Maestro itself would take a work for an unknown consumer over gRPC and
// answer with a bare PublishError, which reads as a transient failure and
// would be retried for nothing.
//
// Positive answers are kept for the life of the process (consumers are
// clusters; they are not unregistered under a running adapter, and if one
// is, Maestro's own refusal still stops the apply). Negative answers are not
// kept: registering the consumer fixes the next event.
type consumers struct {
	api      *openapi.APIClient
	endpoint string

	mu    sync.Mutex
	known map[string]struct{}
}

func newConsumers(api *openapi.APIClient, endpoint string) *consumers {
	return &consumers{api: api, endpoint: endpoint, known: map[string]struct{}{}}
}

func (c *consumers) check(ctx context.Context, name string) error {
	c.mu.Lock()
	_, ok := c.known[name]
	c.mu.Unlock()
	if ok {
		return nil
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		// It is quoted into a search expression; anything else is not a
		// consumer name Maestro accepts for a ManifestWork namespace.
		return events.Permanentf("Maestro consumer %q is not a valid consumer name: %s", name, errs[0])
	}
	list, resp, err := c.api.DefaultAPI.ApiMaestroV1ConsumersGet(ctx).
		Search(fmt.Sprintf("name='%s'", name)).Size(1).Execute()
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		err = fmt.Errorf("checking Maestro consumer %q at %s: %w", name, c.endpoint, err)
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			// A credential problem: no retry fixes it.
			return events.Permanent(fmt.Errorf("%w (HTTP %d: check %s)", err, resp.StatusCode, EnvTokenFile))
		}
		return events.Transient(err)
	}
	for _, item := range list.Items {
		if item.Name != nil && *item.Name == name {
			c.mu.Lock()
			c.known[name] = struct{}{}
			c.mu.Unlock()
			return nil
		}
	}
	return events.Permanent(fmt.Errorf("Maestro consumer %q is not registered (checked at %s; register it with POST /api/maestro/v1/consumers): %w",
		name, c.endpoint, ErrConsumerNotRegistered))
}
