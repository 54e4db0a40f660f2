package pipeline

import (
	"context"
	"errors"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/preconditions"
)

// gate evaluates the adapter's preconditions on the resource just read.
// done reports that the event is finished: the preconditions do not hold
// (nothing is delivered, a PreconditionsNotMet report is published, the
// event is acknowledged) or the resource went away meanwhile. A resource
// marked for deletion is never held back: its cleanup must not wait on
// another adapter (a cluster being torn down would strand its node pools'
// works).
func (p *Pipeline) gate(ctx context.Context, ev events.Event, st *state) (outcome Outcome, done bool, err error) {
	res := st.target.Resource
	if p.preconditions.Len() == 0 || res.Deleting() {
		return "", false, nil
	}
	log := loggerFrom(ctx, p.log)
	unmet, err := p.preconditions.Evaluate(ctx, preconditions.Input{
		Resource: res, Cluster: st.target.Cluster,
		AdapterName: p.cfg.AdapterName, AdapterType: p.handler.Type(),
		Statuses: p.statuses,
	})
	if errors.Is(err, hyperfleet.ErrNotFound) {
		log.InfoContext(ctx, "resource no longer exists (its status reports answered 404); nothing to reconcile")
		return Gone, true, nil
	}
	if err != nil {
		return "", true, err
	}
	if len(unmet) == 0 {
		return "", false, nil
	}
	names := make([]string, len(unmet))
	for i, u := range unmet {
		names[i] = u.Name
	}
	log.InfoContext(ctx, "preconditions not met; nothing delivered", "unmet", names)
	report := handlers.PreconditionsNotMetReport(p.cfg.AdapterName, st.target, names, p.now())
	if err := p.publish(ctx, ev, res, report); err != nil {
		if errors.Is(err, hyperfleet.ErrNotFound) {
			log.InfoContext(ctx, "resource no longer exists (the status report answered 404); nothing to report")
			return Gone, true, nil
		}
		return "", true, err
	}
	return PreconditionsNotMet, true, nil
}
