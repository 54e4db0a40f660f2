package jobs

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// namespaceWorkOn is the namespace adapter's work for the sample cluster
// with id clusterID at gen, delivered to consumer.
func namespaceWorkOn(tb testing.TB, consumer, clusterID string, gen int64) *workv1.ManifestWork {
	tb.Helper()
	res, err := hyperfleet.ParseResource([]byte(readSample(tb, "cluster-get-response.json")), "sample cluster")
	if err != nil {
		tb.Fatal(err)
	}
	res.ID, res.Name, res.Generation = clusterID, "c-"+clusterID, gen
	res.Href = "/api/hyperfleet/v1/clusters/" + clusterID
	rule, err := handlers.ParseConsumerRule("fixed:" + consumer)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := handlers.New(handlers.Config{Type: handlers.TypeNamespace, Consumer: rule})
	if err != nil {
		tb.Fatal(err)
	}
	works, err := h.Build(handlers.Target{Resource: res, Cluster: res})
	if err != nil || len(works) != 1 {
		tb.Fatalf("namespace handler built %d works, err %v", len(works), err)
	}
	return works[0]
}

// availableAt: what the pipeline waits for, and a success: Applied and
// Available True at the work's version, built from generation gen.
func availableAt(gen int64) func(*workv1.ManifestWork) bool {
	return func(w *workv1.ManifestWork) bool {
		if w == nil || w.Annotations[workmeta.AnnotationGeneration] != strconv.FormatInt(gen, 10) {
			return false
		}
		for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
			c := meta.FindStatusCondition(w.Status.Conditions, typ)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration < w.Generation {
				return false
			}
		}
		return true
	}
}

// BenchmarkJobDeliveryOverhead measures the per-event cost of delivering a
// work through a Job against delivering it directly, on the same Maestro
// server and agent: per iteration, one new generation of one work goes each
// way, and the time from Apply to the status saying Applied and Available
// at that generation (through a Tracker, as the pipeline waits) is taken.
//
// The Job path has no kubelet here: the test stands in for it and for the
// status-reporter as fast as it can (kubelet_test.go), so what is measured
// is the delivery's own overhead (Job and ConfigMap creation, the informers,
// a fresh maestro-cli process connecting to Maestro, applying and watching,
// the status writes), not pod scheduling, image pulls or container start,
// which a real cluster adds (the spike estimates 2-5 s). maestro-cli-p50-ms
// is the CLI process's own share: start, connect, consumer check, apply,
// watch until Available, write results.
func BenchmarkJobDeliveryOverhead(b *testing.B) {
	e := newITEnv(b, true)
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	direct, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: e.maestro.GRPCEndpoint, HTTPEndpoint: e.maestro.HTTPEndpoint,
		SourceID: e.sourceID + "-direct", DialTimeout: 5 * time.Second, Insecure: true, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = direct.Close() })
	jd, err := New(ctx, e.adapter, e.options(b, func(o *Options) {
		o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:test"
		o.Logger = quiet
	}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(jd.Close)
	n := startNode(b, e.cs, e.ns, nil)

	track := func(d maestro.Delivery) *maestro.Tracker {
		tr := deliverytest.RunTracker(b, d, quiet)
		return tr
	}
	paths := []struct {
		name string
		d    maestro.Delivery
		tr   *maestro.Tracker
		id   string
		took []time.Duration
	}{
		{name: "direct", d: direct, tr: track(direct), id: "0194bench" + randomSuffix(b) + "d"},
		{name: "job", d: jd, tr: track(jd), id: "0194bench" + randomSuffix(b) + "j"},
	}
	b.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		w := namespaceWorkOn(b, e.consumer, paths[0].id, 1)
		_ = direct.Delete(cctx, w.Namespace, w.Name)
	})

	gen := int64(0)
	deliver := func(i int) {
		p := &paths[i]
		w := namespaceWorkOn(b, e.consumer, p.id, gen)
		actx, acancel := context.WithTimeout(ctx, time.Minute)
		defer acancel()
		start := time.Now()
		if _, err := p.d.Apply(actx, w); err != nil {
			b.Fatalf("%s: Apply generation %d: %v", p.name, gen, err)
		}
		if _, err := p.tr.Await(actx, w.Namespace, w.Name, availableAt(gen)); err != nil {
			b.Fatalf("%s: generation %d not available: %v", p.name, gen, err)
		}
		p.took = append(p.took, time.Since(start))
	}
	// Warm-up: the first generation creates the works and the connections.
	gen++
	deliver(0)
	deliver(1)
	paths[0].took, paths[1].took = nil, nil

	for b.Loop() {
		gen++
		deliver(0)
		deliver(1)
	}

	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	var cli []time.Duration
	for _, r := range n.history()[1:] { // after the warm-up
		cli = append(cli, r.cli)
	}
	dm, jm := median(paths[0].took), median(paths[1].took)
	b.ReportMetric(float64(median(cli).Microseconds())/1000, "maestro-cli-p50-ms")
	b.ReportMetric(float64(dm.Microseconds())/1000, "direct-p50-ms")
	b.ReportMetric(float64(jm.Microseconds())/1000, "job-p50-ms")
	b.ReportMetric(float64((jm-dm).Microseconds())/1000, "overhead-p50-ms")
	b.ReportMetric(float64(jm)/float64(dm), "job/direct")
}
