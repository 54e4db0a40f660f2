package handlers_test

import (
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
)

func benchmarkBuild(b *testing.B, typ, fixture string) {
	h := newHandler(b, goldenConfigs()[typ])
	tg := target(b, fixture)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Build(tg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildNamespace(b *testing.B) { benchmarkBuild(b, handlers.TypeNamespace, "cluster-gen2") }
func BenchmarkBuildNodePool(b *testing.B)  { benchmarkBuild(b, handlers.TypeNodePool, "nodepool-gen1") }
func BenchmarkBuildPullSecret(b *testing.B) {
	benchmarkBuild(b, handlers.TypePullSecret, "cluster-gen2")
}
func BenchmarkBuildIDP(b *testing.B)      { benchmarkBuild(b, handlers.TypeIDP, "cluster-gen2") }
func BenchmarkBuildIngress(b *testing.B)  { benchmarkBuild(b, handlers.TypeIngress, "cluster-gen2") }
func BenchmarkBuildTemplate(b *testing.B) { benchmarkBuild(b, handlers.TypeTemplate, "cluster-gen2") }

func BenchmarkReport(b *testing.B) {
	tg := target(b, "cluster-gen1")
	h := newHandler(b, goldenConfigs()[handlers.TypeNamespace])
	works, err := h.Build(tg)
	if err != nil {
		b.Fatal(err)
	}
	// Three works as Maestro reports them: applied, available, with feedback.
	observed := make([]handlers.Observed, 0, 3)
	for _, name := range []string{"w-a", "w-b", "w-c"} {
		w := works[0].DeepCopy()
		w.Name = name
		w.Generation = 2
		w.Status.Conditions = allGood(2)
		observed = append(observed, handlers.Observed{Name: name, Consumer: w.Namespace, Work: w})
	}
	b.ReportAllocs()
	for b.Loop() {
		rep := handlers.Report("namespace", tg, false, observed, reportNow)
		if rep.Condition("Available").Status != "True" {
			b.Fatal("not available")
		}
	}
}
