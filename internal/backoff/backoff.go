// Package backoff holds the one backoff every layer that waits before
// trying again uses: the pipeline between tries of an event, the HyperFleet
// API client between calls, the Maestro backends between conflicting
// writes and reconnects, the broker sources between connection attempts.
//
// It is this formula, not github.com/cenkalti/backoff (which the broker
// sources used before), because Delay is a function of the try's number:
// the pipeline computes an event's wait from the attempt its message
// carries, and a redelivered message brings no backoff state along. Its
// jitter also stays within the limit it is given (cenkalti's randomisation
// goes up to 1.5 times MaxInterval), so a setting such as RabbitMQ's
// ReconnectMax is the longest wait there is. The broker sources' waits now
// double from their initial value instead of growing by half, within the
// same bounds.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry n (1-based): initial doubling up to limit,
// then jittered into [d/2, d] so that replicas retrying after one outage,
// or two writers that lost the same race, do not retry in lockstep.
func Delay(initial, limit time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or returns ctx.Err() when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
