package main

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// getRecord reads the work over REST; a missing one is exit 6 with a hint
// about sources.
func (inv *invocation) getRecord(r *remote.Reader) (*remote.Record, error) {
	if err := inv.checkConsumer(r); err != nil {
		return nil, err
	}
	rec, err := r.Get(inv.ctx, inv.o.Consumer, inv.o.Name)
	if apierrors.IsNotFound(err) {
		return nil, failf(exitNotFound, reasonNotFound, "work %s/%s not found for source %q (works belong to the source that wrote them: pass the writer's --source-id)",
			inv.o.Consumer, inv.o.Name, inv.g.SourceID)
	}
	return rec, err
}

func cmdGet(inv *invocation) (*outcome, error) {
	r, err := inv.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rec, err := inv.getRecord(r)
	if err != nil {
		return nil, err
	}
	if err := inv.printWork(rec.Work); err != nil {
		return nil, err
	}
	return stateOutcome(rec), nil
}

func cmdDescribe(inv *invocation) (*outcome, error) {
	r, err := inv.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rec, err := inv.getRecord(r)
	if err != nil {
		return nil, err
	}
	work := rec.Work
	if !inv.o.ShowSecrets {
		work = maskWork(work)
	}
	if inv.g.Output == "table" {
		shown := *rec
		shown.Work = work
		describe(inv.stdout, &shown, inv.g.SourceID)
	} else if err := inv.printObject(workObject(work)); err != nil {
		return nil, err
	}
	return stateOutcome(rec), nil
}

func stateOutcome(rec *remote.Record) *outcome {
	w := rec.Work
	return &outcome{status: stateOf(w), work: w,
		message: fmt.Sprintf("ManifestWork %s/%s: %s", w.Namespace, w.Name, summary(w))}
}

func cmdList(inv *invocation) (*outcome, error) {
	r, err := inv.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if inv.o.Consumer != "" {
		if err := inv.checkConsumer(r); err != nil {
			return nil, err
		}
	}
	recs, err := r.List(inv.ctx, inv.o.Consumer)
	if err != nil {
		return nil, err
	}
	if inv.o.Status != "" {
		statuses := strings.Split(inv.o.Status, ",")
		kept := recs[:0]
		for _, rec := range recs {
			if matchesStatus(rec.Work, statuses) {
				kept = append(kept, rec)
			}
		}
		recs = kept
	}
	if err := inv.printList(recs); err != nil {
		return nil, err
	}
	where := "every consumer"
	if inv.o.Consumer != "" {
		where = "consumer " + inv.o.Consumer
	}
	return &outcome{status: stateSucceeded, message: fmt.Sprintf("%d works of source %s on %s", len(recs), inv.g.SourceID, where)}, nil
}

// cmdWait waits over the source client's watch (maestro.Tracker), not by
// polling: status arrives as the agent reports it.
func cmdWait(inv *invocation) (*outcome, error) {
	o := inv.o
	r, err := inv.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := inv.checkConsumer(r); err != nil {
		return nil, err
	}
	b, err := inv.backend()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t, stop := tracking(inv.ctx, b, inv)
	defer stop()

	w, err := inv.await(t, o.Consumer, o.Name, o.Condition, 0)
	if err != nil {
		return nil, err
	}
	if o.Condition == condDeleted {
		if err := inv.printDeletions([]deletion{{Consumer: o.Consumer, Name: o.Name, Result: stateDeleted}}); err != nil {
			return nil, err
		}
		return &outcome{status: stateDeleted, message: fmt.Sprintf("ManifestWork %s/%s is deleted", o.Consumer, o.Name)}, nil
	}
	if err := inv.printWork(w); err != nil {
		return nil, err
	}
	return &outcome{status: o.Condition, work: w,
		message: fmt.Sprintf("ManifestWork %s/%s generation %d is %s", o.Consumer, o.Name, w.Generation, o.Condition)}, nil
}
