package pipeline

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/preconditions"
)

// gate evaluates the adapter's preconditions on the resource just read.
// done reports that the event is finished: the preconditions do not hold
// (nothing is delivered, a PreconditionsNotMet report is published, the
// event is acknowledged) or the resource went away meanwhile. A resource
// marked for deletion is never held back: its cleanup must not wait on
// another adapter (a cluster being torn down would strand its node pools'
// works).
func (p *Pipeline) gate(ctx context.Context, ev events.Event, msg *events.Message, st *state) (outcome Outcome, done bool, err error) {
	res := st.target.Resource
	if p.preconditions.Len() == 0 || res.Deleting() {
		return "", false, nil
	}
	log := loggerFrom(ctx, p.log)
	unmet, err := p.preconditions.Evaluate(ctx, preconditions.Input{
		Resource: res, Cluster: st.target.Cluster,
		AdapterName: p.cfg.AdapterName, AdapterType: p.handler.Type(),
		Statuses: recordedStatuses(msg, st.target, p.statuses),
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

// recordedStatuses serves the status reports recorded with the event (a
// replay reproduces what was seen then), and reads the others from next.
func recordedStatuses(msg *events.Message, t handlers.Target, next hyperfleet.StatusReader) hyperfleet.StatusReader {
	r := statusSnapshots{byHref: map[string]json.RawMessage{}, next: next}
	if len(msg.StatusesSnapshot) > 0 {
		r.byHref[t.Resource.Href] = msg.StatusesSnapshot
	}
	if len(msg.OwnerStatusesSnapshot) > 0 && t.Cluster != nil {
		r.byHref[t.Cluster.Href] = msg.OwnerStatusesSnapshot
	}
	return r
}

type statusSnapshots struct {
	byHref map[string]json.RawMessage
	next   hyperfleet.StatusReader
}

func (r statusSnapshots) GetStatuses(ctx context.Context, href string) ([]json.RawMessage, error) {
	if raw, ok := r.byHref[href]; ok {
		return hyperfleet.ParseStatuses(raw, "recorded status reports of "+href)
	}
	if r.next == nil {
		return nil, failure.Permanentf("cannot read the status reports of %s: no HyperFleet API configured (set HYPERFLEET_API_URL or --api-dir, or replay a recording made with adapter record --statuses)", href)
	}
	return r.next.GetStatuses(ctx, href)
}
