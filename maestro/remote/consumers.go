package remote

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/openshift-online/maestro/pkg/api/openapi"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// ErrConsumerNotRegistered means Maestro has no consumer of that name: no
// agent can receive the work. It is maestro.ErrConsumerNotRegistered; the
// error wrapping it names the consumer, and is Transient while
// Options.ConsumerWait lasts, Permanent after.
var ErrConsumerNotRegistered = maestro.ErrConsumerNotRegistered

// consumers checks that a consumer exists before works are sent to it.
// Maestro itself would take a work for an unknown consumer over gRPC and
// answer with a bare PublishError, which reads as a transient failure and
// would be retried for nothing.
//
// Positive answers are kept for the life of the process (consumers are
// clusters; they are not unregistered under a running adapter, and if one
// is, Maestro's own refusal still stops the apply). Negative answers are not
// kept: registering the consumer fixes the next try.
//
// A consumer found missing is waited for: the first events of a new
// cluster commonly arrive before its consumer is registered. For wait after
// the first check that found it missing, the answer is Transient; after
// that, Permanent. A consumer nobody has asked about for wait starts a new
// wait (the next event about it gets the full time again).
type consumers struct {
	api      *openapi.APIClient
	endpoint string
	wait     time.Duration
	now      func() time.Time

	mu      sync.Mutex
	known   map[string]struct{}
	missing map[string]*missingSince
}

// missingSince is when a consumer was first and last found missing.
type missingSince struct{ first, last time.Time }

func newConsumers(api *openapi.APIClient, endpoint string, wait time.Duration) *consumers {
	return &consumers{api: api, endpoint: endpoint, wait: wait, now: time.Now,
		known: map[string]struct{}{}, missing: map[string]*missingSince{}}
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
		return failure.Permanentf("Maestro consumer %q is not a valid consumer name: %s", name, errs[0])
	}
	list, resp, err := c.api.DefaultAPI.ApiMaestroV1ConsumersGet(ctx).
		Search(fmt.Sprintf("name='%s'", name)).Size(1).Execute()
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		err = fmt.Errorf("checking Maestro consumer %q at %s: %w", name, c.endpoint, err)
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			// Credentials rotate; MAX_ATTEMPTS bounds a lasting refusal.
			return failure.Transient(fmt.Errorf("%w: HTTP %d (check %s): %w", maestro.ErrAuthentication, resp.StatusCode, EnvTokenFile, err))
		}
		return failure.Transient(err)
	}
	for _, item := range list.Items {
		if item.Name != nil && *item.Name == name {
			c.mu.Lock()
			c.known[name] = struct{}{}
			delete(c.missing, name)
			c.mu.Unlock()
			return nil
		}
	}
	return c.notRegistered(name)
}

// notRegistered is the answer about a consumer just found missing.
func (c *consumers) notRegistered(name string) error {
	now := c.now()
	c.mu.Lock()
	m := c.missing[name]
	if m == nil || now.Sub(m.last) > c.wait {
		m = &missingSince{first: now}
		c.missing[name] = m
	}
	m.last = now
	waited := now.Sub(m.first)
	c.mu.Unlock()
	what := fmt.Sprintf("Maestro consumer %q is not registered (checked at %s; register it with POST /api/maestro/v1/consumers)", name, c.endpoint)
	if waited < c.wait {
		return failure.Transient(fmt.Errorf("%s; waiting up to %s (%s) for it, %s so far: %w",
			what, c.wait, EnvConsumerWait, waited.Round(time.Millisecond), ErrConsumerNotRegistered))
	}
	if c.wait > 0 {
		what += fmt.Sprintf(", still after %s (%s)", waited.Round(time.Second), EnvConsumerWait)
	}
	return failure.Permanent(fmt.Errorf("%s: %w", what, ErrConsumerNotRegistered))
}
