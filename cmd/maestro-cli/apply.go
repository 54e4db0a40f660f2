package main

import (
	"errors"
	"fmt"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// cmdApply creates or updates one work from the file, through the shared
// apply logic (maestro.SourceDelivery under remote.Backend): the same
// idempotent create-or-patch, conflict retries and generation guard the
// adapter uses.
func cmdApply(inv *invocation) (*outcome, error) {
	o := inv.o
	work, base, _, err := loadWork(inv.stdin, o.ManifestFile, o.Name, o.Consumer)
	if err != nil {
		return nil, err
	}
	inv.o.Name = work.Name
	log := inv.log.With("work", o.Consumer+"/"+work.Name)

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

	if base.generation > 0 {
		if err := checkBasis(inv, work.Name, base); err != nil {
			return nil, err
		}
	}

	applied, err := b.Apply(inv.ctx, work)
	switch {
	case errors.Is(err, workmeta.ErrStaleGeneration):
		return nil, &failure{code: exitUsage, reason: reasonStaleGeneration, work: applied,
			err: fmt.Errorf("%s: %w", o.ManifestFile, err)}
	case errors.Is(err, remote.ErrConsumerNotRegistered):
		return nil, &failure{code: exitUsage, reason: reasonConsumerNotRegistered, err: fmt.Errorf("--consumer: %w", err)}
	case err != nil:
		return nil, err
	}
	log.Info("applied", "generation", applied.Generation, "manifests", len(applied.Spec.Workload.Manifests), "source_id", inv.g.SourceID)

	if !o.Watch {
		if err := inv.printWork(applied); err != nil {
			return nil, err
		}
		st := stateOf(applied)
		return &outcome{status: st, work: applied,
			message: fmt.Sprintf("ManifestWork %s/%s generation %d sent to Maestro (%s); not waiting for the agent (--watch waits)", o.Consumer, work.Name, applied.Generation, st)}, nil
	}

	final, err := inv.await(t, o.Consumer, work.Name, o.Condition, applied.Generation)
	if err != nil {
		return nil, err
	}
	if err := inv.printWork(final); err != nil {
		return nil, err
	}
	return &outcome{status: o.Condition, work: final,
		message: fmt.Sprintf("ManifestWork %s/%s generation %d is %s", o.Consumer, work.Name, final.Generation, o.Condition)}, nil
}

// checkBasis refuses to apply a file read or built from another state of
// the work than the stored one: another writer changed it since, and
// applying would lose that change. (A small window between this read and
// the write remains; it is what Maestro's own version check covers for a
// single patch.)
func checkBasis(inv *invocation, name string, base basis) error {
	r, err := inv.reader()
	if err != nil {
		return err
	}
	defer r.Close()
	stored, err := storedWork(inv, r, name)
	if err != nil {
		return err
	}
	if why := base.conflict(stored); why != "" {
		return &failure{code: exitUsage, reason: reasonConflict, work: stored,
			err: fmt.Errorf("%s: work %s/%s: %s; rebuild the file (maestro-cli build) or drop metadata.generation", inv.o.ManifestFile, inv.o.Consumer, name, why)}
	}
	return nil
}
