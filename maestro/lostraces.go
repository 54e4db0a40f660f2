// How a guarded Apply retries after losing a race to another writer, for
// SourceDelivery and kubeapply alike: the defaults of their retry options,
// and the pacing and bound of the attempts.

package maestro

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// ApplyRetryDefaults fills in the zero retry options of a guarded Apply
// (SourceOptions and kubeapply.Options carry the same four): 5 lost races,
// a backoff from 20ms to 1s (the first wait no longer than the longest),
// and 1m for a work being deleted to go.
func ApplyRetryDefaults(conflictRetries int, retryInitial, retryMax, deleteWait time.Duration) (int, time.Duration, time.Duration, time.Duration) {
	if conflictRetries == 0 {
		conflictRetries = 5
	}
	if retryInitial == 0 {
		retryInitial = 20 * time.Millisecond
	}
	if retryMax == 0 {
		retryMax = time.Second
	}
	if retryInitial > retryMax {
		retryInitial = retryMax
	}
	if deleteWait == 0 {
		deleteWait = time.Minute
	}
	return conflictRetries, retryInitial, retryMax, deleteWait
}

// LostRaces paces one Apply's attempts after it loses races to other
// writers (a write refused because the work, or one of its objects, changed
// or went since it was read), and bounds them.
type LostRaces struct {
	// Consumer and Name name the work in errors.
	Consumer, Name string
	// Limit is how many lost races Apply takes before giving up
	// (ConflictRetries).
	Limit int
	// Initial and Max shape the backoff between attempts.
	Initial, Max time.Duration
	Log          *slog.Logger

	lost int
}

// Again counts one more lost race, why and cause saying what happened, and
// waits before the next attempt. An error, Transient, means give up: more
// than Limit races lost, or ctx ended.
func (r *LostRaces) Again(ctx context.Context, why string, cause error) error {
	r.lost++
	if r.lost > r.Limit {
		return failure.Transient(fmt.Errorf("applying work %s/%s: %s, still after %d attempts: %w",
			r.Consumer, r.Name, why, r.lost, cause))
	}
	r.Log.DebugContext(ctx, "applying work: retrying", "reason", why, "attempt", r.lost, "error", cause)
	if err := sleep(ctx, backoff.Delay(r.Initial, r.Max, r.lost)); err != nil {
		return fmt.Errorf("applying work %s/%s: %w", r.Consumer, r.Name, err)
	}
	return nil
}
