package main

import (
	"errors"
	"fmt"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// validationReport is validate's report.
type validationReport struct {
	Valid     bool   `json:"valid"`
	File      string `json:"file"`
	Work      string `json:"work,omitempty"`
	Consumer  string `json:"consumer"`
	Manifests int    `json:"manifests"`
	Bytes     int    `json:"bytes"`
	// ConsumerChecked is true when Maestro was asked about the consumer.
	ConsumerChecked bool      `json:"consumerChecked"`
	Problems        []problem `json:"problems,omitempty"`
}

// cmdValidate checks the file offline, then, when Maestro answers, that the
// consumer exists. A file that cannot be read or parsed is one problem; a
// parsed file gets every problem reported.
func cmdValidate(inv *invocation) (*outcome, error) {
	o := inv.o
	v := validationReport{File: o.ManifestFile, Consumer: o.Consumer}
	reason := reasonInvalidManifest

	mf, err := readManifestFile(inv.stdin, o.ManifestFile)
	if err != nil {
		return nil, err
	}
	v.Manifests = len(mf.manifests)
	for _, m := range mf.manifests {
		v.Bytes += len(m.raw)
	}
	v.Problems = checkManifests(mf)
	if w, _, err := workFromFile(mf, o.Name, o.Consumer); err != nil {
		var f *failure
		if errors.As(err, &f) && f.reason == reasonUsage && mf.work == nil {
			// Plain manifests without --name: apply would need one, but
			// the manifests themselves can still be valid.
			inv.log.Info("no --name given: the work name is not checked")
		} else {
			v.Problems = append(v.Problems, problem{Problem: err.Error()}) // it names the file
		}
	} else {
		v.Work = w.Name
		if err := checkWorkName(w.Name); err != nil {
			v.Problems = append(v.Problems, problem{Where: o.ManifestFile, Problem: fmt.Sprintf("ManifestWork name %q: %v", w.Name, err)})
		}
	}

	if inv.g.HTTPEndpoint == "" {
		inv.log.Info("no --http-endpoint: the consumer is not checked")
	} else {
		r, err := inv.reader()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		switch err := r.CheckConsumer(inv.ctx, o.Consumer); {
		case err == nil:
			v.ConsumerChecked = true
		case errors.Is(err, remote.ErrConsumerNotRegistered):
			v.ConsumerChecked = true
			if len(v.Problems) == 0 {
				reason = reasonConsumerNotRegistered
			}
			v.Problems = append(v.Problems, problem{Where: "--consumer", Problem: err.Error()})
		case errors.Is(err, remote.ErrUnreachable):
			inv.log.Warn("Maestro is not reachable: the consumer is not checked", "err", err)
		default:
			return nil, err
		}
	}

	v.Valid = len(v.Problems) == 0
	if inv.g.Output == "table" {
		if v.Valid {
			fmt.Fprintf(inv.stdout, "%s: valid: %d manifests, %d bytes", v.File, v.Manifests, v.Bytes)
			if v.Work != "" {
				fmt.Fprintf(inv.stdout, ", work %s/%s", v.Consumer, v.Work)
			}
			if v.ConsumerChecked {
				fmt.Fprint(inv.stdout, ", consumer registered")
			}
			fmt.Fprintln(inv.stdout)
		}
		for _, p := range v.Problems {
			fmt.Fprintln(inv.stdout, oneLine(p.String()))
		}
	} else if err := inv.printObject(v); err != nil {
		return nil, err
	}
	if !v.Valid {
		f := problemsFailure(v.Problems, "all are listed on stdout")
		f.reason = reason
		return nil, f
	}
	return &outcome{status: stateSucceeded, message: fmt.Sprintf("%s is valid: %d manifests, %d bytes", v.File, v.Manifests, v.Bytes)}, nil
}
