package remote_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// WorkGeneration reads only the annotations of the REST resource Get
// reads whole: on the same works of a real Maestro both must give the same
// answers (the generation, none, NotFound), or the pipeline's
// newer-generation check would judge differently from the work it stands
// for.
func TestWorkGenerationAnswersAsGet(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	consumer := "remote-gen-" + suffix
	startAgents(t, env, maestrotest.AgentOptions{}, consumer)
	b := newBackend(t, env, "gen-"+suffix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := work(t, consumer, "w", 7)
	if _, err := b.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), consumer, "w") })
	unannotated := work(t, consumer, "bare", 1)
	unannotated.Annotations = nil
	if _, err := b.Apply(ctx, unannotated); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), consumer, "bare") })

	for _, tc := range []struct {
		name   string
		wantOK bool
		want   int64
	}{{"w", true, 7}, {"bare", false, 0}} {
		gen, ok, err := b.WorkGeneration(ctx, consumer, tc.name)
		if err != nil {
			t.Fatalf("WorkGeneration(%s): %v", tc.name, err)
		}
		full, err := b.Get(ctx, consumer, tc.name)
		if err != nil {
			t.Fatalf("Get(%s): %v", tc.name, err)
		}
		fromGet, okGet := workmeta.ResourceGeneration(full)
		if gen != tc.want || ok != tc.wantOK || gen != fromGet || ok != okGet {
			t.Fatalf("%s: WorkGeneration = (%d, %v), Get's annotation = (%d, %v), want (%d, %v)", tc.name, gen, ok, fromGet, okGet, tc.want, tc.wantOK)
		}
	}

	// A newer generation is seen at once (the read goes to Maestro, not to
	// a cache that learns of it with the agent's answer).
	if _, err := b.Apply(ctx, work(t, consumer, "w", 9)); err != nil {
		t.Fatal(err)
	}
	if gen, ok, err := b.WorkGeneration(ctx, consumer, "w"); err != nil || !ok || gen != 9 {
		t.Fatalf("after applying generation 9: WorkGeneration = (%d, %v, %v)", gen, ok, err)
	}

	_, _, err := b.WorkGeneration(ctx, consumer, "never-applied")
	_, getErr := b.Get(ctx, consumer, "never-applied")
	if !apierrors.IsNotFound(err) || !apierrors.IsNotFound(getErr) {
		t.Fatalf("missing work: WorkGeneration err %v, Get err %v; want NotFound from both", err, getErr)
	}

	// Through the metrics wrapper the pipeline uses, the cheap read is kept.
	var _ maestro.GenerationReader = b
	if gen, ok, err := maestro.WorkGeneration(ctx, maestro.Instrument(b, nopCalls{}), consumer, "w"); err != nil || !ok || gen != 9 {
		t.Fatalf("through Instrument: (%d, %v, %v)", gen, ok, err)
	}
}

type nopCalls struct{}

func (nopCalls) DeliveryCall(string, string, time.Duration) {}

// BenchmarkGenerationRead compares the two ways to learn a stored work's
// generation before a report: Get (the whole work) and WorkGeneration.
func BenchmarkGenerationRead(b *testing.B) {
	env := maestrotest.Require(b)
	suffix := randomSuffix(b)
	consumer := "remote-genbench-" + suffix
	startAgents(b, env, maestrotest.AgentOptions{}, consumer)
	be := newBackend(b, env, "genbench-"+suffix, nil)
	ctx := context.Background()
	if _, err := be.Apply(ctx, work(b, consumer, "w", 3)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Delete(context.Background(), consumer, "w") })
	// ns/op is mostly Maestro's time to answer; cpu-ns/op is this
	// process's own CPU (user + system) per read, the adapter's cost.
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		start := processCPU(b)
		for b.Loop() {
			if _, err := be.Get(ctx, consumer, "w"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("WorkGeneration", func(b *testing.B) {
		b.ReportAllocs()
		start := processCPU(b)
		for b.Loop() {
			if _, _, err := be.WorkGeneration(ctx, consumer, "w"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	})
}

// processCPU is this process's CPU time so far (user + system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
