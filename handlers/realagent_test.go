package handlers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// TestReportDataThroughRealAgent delivers the namespace type's work through
// the local Maestro to Maestro's real agent on the local kube-apiserver:
// the report's data carries the landing-zone namespace's phase as the
// agent fed it back (the path evaluated against the live object). Of the
// built-in kinds only the Namespace has a controller there to give it a
// status; the others' values are covered by TestReportDataGolden.
func TestReportDataThroughRealAgent(t *testing.T) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	consumer := "report-data-" + suffix
	agents := agenttest.Start(t, consumer)
	log := maestrotest.SlogLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	be, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: agents.Maestro.GRPCEndpoint, HTTPEndpoint: agents.Maestro.HTTPEndpoint,
		SourceID: "report-data-" + suffix, Logger: log,
		Insecure: true, // the local Maestro serves plaintext
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	tracker := deliverytest.RunTracker(t, be, log)

	rule, err := handlers.ParseConsumerRule("fixed:" + consumer)
	if err != nil {
		t.Fatal(err)
	}
	ns := "report-data-ns-" + suffix
	tg := handlers.Target{Resource: loadResource(t, "cluster-gen1")}
	works := must(newHandler(t, handlers.Config{Type: handlers.TypeNamespace, Consumer: rule, Namespace: ns}).Build(tg))
	w := works[0]
	t.Cleanup(func() {
		// Foreground deletion takes the namespace with it; waited for, so
		// that nothing is left on the shared kube-apiserver when the agent
		// stops.
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := be.Delete(ctx, w.Namespace, w.Name); err != nil {
			t.Errorf("delete: %v", err)
			return
		}
		if _, err := tracker.Await(ctx, w.Namespace, w.Name, func(got *workv1.ManifestWork) bool { return got == nil }); err != nil {
			t.Errorf("the work was not reported deleted: %v", err)
		}
	})
	exp := tracker.Expect(w.Namespace, w.Name)
	stored, err := be.Apply(ctx, w)
	if err != nil {
		exp.Cancel()
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	settled, err := exp.Await(wctx, stored, func(got *workv1.ManifestWork) bool {
		if got == nil || got.Generation < stored.Generation || !maestro.StatusSettled(got) {
			return false
		}
		for _, m := range got.Status.ResourceStatus.Manifests {
			if m.ResourceMeta.Kind == "Namespace" && len(m.StatusFeedbacks.Values) > 0 {
				return true
			}
		}
		return false
	})
	wcancel()
	exp.Cancel()
	if err != nil {
		t.Fatalf("the real agent did not report the namespace's feedback: %v", err)
	}
	rep := handlers.Report("namespace", tg, false, []handlers.Observed{{Name: w.Name, Consumer: w.Namespace, Work: settled}}, time.Now())
	entry, ok := rep.Data["namespace"].(map[string]any)
	if !ok || entry["name"] != ns || entry["phase"] != "Active" {
		t.Fatalf("data.namespace = %v, want {name: %s, phase: Active}", rep.Data["namespace"], ns)
	}
	if c := rep.Condition("Available"); c == nil || c.Status != "True" {
		t.Errorf("Available = %+v, want True", c)
	}
}
