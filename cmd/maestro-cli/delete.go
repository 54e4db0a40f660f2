package main

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// deletion is what delete did to one work.
type deletion struct {
	Consumer string `json:"consumer"`
	Name     string `json:"name"`
	// Result: NotFound (nothing to delete), Deleting (requested; the agent
	// has not confirmed) or Deleted (confirmed, with --watch).
	Result string `json:"result"`
}

// cmdDelete deletes one work, or with --all and no --name every work of
// this source on the consumer. A missing work is not an error.
func cmdDelete(inv *invocation) (*outcome, error) {
	o := inv.o
	r, err := inv.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := inv.checkConsumer(r); err != nil {
		return nil, err
	}

	names := []string{o.Name}
	if o.Name == "" { // --all
		recs, err := r.List(inv.ctx, o.Consumer)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, rec := range recs {
			names = append(names, rec.Work.Name)
		}
		inv.log.Info("deleting every work of this source on the consumer", "consumer", o.Consumer, "source_id", inv.g.SourceID, "works", len(names))
	}

	b, err := inv.backend()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var t *maestro.Tracker
	if o.Watch {
		var stop func()
		t, stop = tracking(inv.ctx, b, inv)
		defer stop()
	}

	results := make([]deletion, 0, len(names))
	for _, name := range names {
		d := deletion{Consumer: o.Consumer, Name: name, Result: stateDeleting}
		_, err := b.Get(inv.ctx, o.Consumer, name)
		switch {
		case apierrors.IsNotFound(err):
			inv.log.Info("work does not exist; nothing to delete", "work", o.Consumer+"/"+name, "source_id", inv.g.SourceID)
			d.Result = "NotFound"
			results = append(results, d)
			continue
		case err != nil:
			return nil, err
		}
		if err := b.Delete(inv.ctx, o.Consumer, name); err != nil {
			return nil, err
		}
		inv.log.Info("deletion requested", "work", o.Consumer+"/"+name)
		results = append(results, d)
	}
	if o.Watch {
		for i := range results {
			if results[i].Result == "NotFound" {
				continue
			}
			if _, err := inv.await(t, o.Consumer, results[i].Name, condDeleted, 0); err != nil {
				return nil, err
			}
			results[i].Result = stateDeleted
		}
	}

	if err := inv.printDeletions(results); err != nil {
		return nil, err
	}
	return deleteOutcome(inv, results), nil
}

func deleteOutcome(inv *invocation, results []deletion) *outcome {
	status := stateDeleted
	var parts []string
	for _, d := range results {
		if d.Result == stateDeleting {
			status = stateInProgress
		}
		switch d.Result {
		case "NotFound":
			parts = append(parts, fmt.Sprintf("%s/%s did not exist", d.Consumer, d.Name))
		case stateDeleting:
			parts = append(parts, fmt.Sprintf("%s/%s deletion requested (not waiting for the agent; --watch waits)", d.Consumer, d.Name))
		default:
			parts = append(parts, fmt.Sprintf("%s/%s deleted", d.Consumer, d.Name))
		}
	}
	if len(results) == 0 {
		return &outcome{status: status, message: fmt.Sprintf("no works of source %s on consumer %s", inv.g.SourceID, inv.o.Consumer)}
	}
	return &outcome{status: status, message: "ManifestWork " + strings.Join(parts, "; ")}
}
