package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarizeNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	if s.N != 100 || s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Fatalf("got %+v", s)
	}
	if ds[0] != 100*time.Millisecond {
		t.Fatal("Summarize sorted its input in place")
	}
	if one := Summarize([]time.Duration{7 * time.Millisecond}); one.P99 != 7 || one.P50 != 7 {
		t.Fatalf("one sample: %+v", one)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatal("empty set must give a zero summary")
	}
}

func TestRatio(t *testing.T) {
	if Ratio(1, 3) != 0.333 || Ratio(5, 0) != 0 {
		t.Fatalf("Ratio(1,3)=%v Ratio(5,0)=%v", Ratio(1, 3), Ratio(5, 0))
	}
}

const metricsText = `# HELP hyperfleet_adapter_phase_duration_seconds Time spent.
# TYPE hyperfleet_adapter_phase_duration_seconds histogram
hyperfleet_adapter_phase_duration_seconds_bucket{adapter_type="namespace",phase="build",le="0.001"} 90
hyperfleet_adapter_phase_duration_seconds_bucket{adapter_type="namespace",phase="build",le="0.0025"} 98
hyperfleet_adapter_phase_duration_seconds_bucket{adapter_type="namespace",phase="build",le="0.005"} 100
hyperfleet_adapter_phase_duration_seconds_bucket{adapter_type="namespace",phase="build",le="+Inf"} 100
hyperfleet_adapter_phase_duration_seconds_sum{adapter_type="namespace",phase="build"} 0.05
hyperfleet_adapter_phase_duration_seconds_count{adapter_type="namespace",phase="build"} 100
weird_label{msg="a \"quoted\" \\ value, with comma"} 3
process_cpu_seconds_total 12.5
`

func TestParseMetricsAndHistogramQuantile(t *testing.T) {
	s, err := ParseMetrics(metricsText)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := Value(s, "process_cpu_seconds_total", nil); !ok || v != 12.5 {
		t.Fatalf("cpu: %v %v", v, ok)
	}
	if v, ok := Value(s, "weird_label", map[string]string{"msg": `a "quoted" \ value, with comma`}); !ok || v != 3 {
		t.Fatalf("escaped label value not parsed: %v %v", v, ok)
	}
	build := map[string]string{"phase": "build"}
	// window.mean reads a histogram's _sum and _count as plain samples.
	if v, ok := Value(s, "hyperfleet_adapter_phase_duration_seconds_count", build); !ok || v != 100 {
		t.Fatalf("_count: %v %v", v, ok)
	}
	if v, ok := Value(s, "hyperfleet_adapter_phase_duration_seconds_sum", build); !ok || v != 0.05 {
		t.Fatalf("_sum: %v %v", v, ok)
	}
	h := Histogram(s, "hyperfleet_adapter_phase_duration_seconds", build)
	if len(h) != 4 || !math.IsInf(h[3].UpperBound, 1) {
		t.Fatalf("buckets: %+v", h)
	}
	// Rank 99 of 100 lies in (0.0025, 0.005], which holds 2: halfway.
	if q, ok := Quantile(h, 0.99); !ok || math.Abs(q-0.00375) > 1e-9 {
		t.Fatalf("p99 = %v", q)
	}
	// Rank 50 lies in the first bucket, interpolated from 0.
	if q, _ := Quantile(h, 0.5); math.Abs(q-0.5/90*0.001*100) > 1e-9 {
		t.Fatalf("p50 = %v", q)
	}
	before := []Bucket{{0.001, 80}, {0.0025, 88}, {0.005, 90}, {math.Inf(1), 90}}
	d := SubBuckets(h, before)
	if d[0].Count != 10 || d[3].Count != 10 {
		t.Fatalf("delta: %+v", d)
	}
	if _, ok := Quantile(SubBuckets(h, h), 0.99); ok {
		t.Fatal("no observations must report !ok")
	}
	if _, err := ParseMetrics("bad{x=1} 2\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed label: %v", err)
	}
}

func TestQuantileInInfBucketReturnsHighestBound(t *testing.T) {
	h := []Bucket{{0.01, 1}, {math.Inf(1), 10}}
	if q, _ := Quantile(h, 0.99); q != 0.01 {
		t.Fatalf("got %v", q)
	}
}

const benchOut = `goos: linux
pkg: github.com/openshift-hyperfleet/maestro-adapter/events
BenchmarkDecode/broker/cluster-2         	  106249	     13029 ns/op	  30.24 MB/s	    2432 B/op	      52 allocs/op
PASS
pkg: github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs
BenchmarkJobDeliveryOverhead-2   	     100	  1234567 ns/op	      12.5 p99-ms
--- FAIL: BenchmarkBroken
BenchmarkWeird-2 notanumber ns/op
`

func TestParseGoBench(t *testing.T) {
	all := ParseGoBench(benchOut)
	if len(all) != 2 {
		t.Fatalf("got %d results: %+v", len(all), all)
	}
	d := all[0]
	if d.Package != "github.com/openshift-hyperfleet/maestro-adapter/events" || d.Name != "BenchmarkDecode/broker/cluster-2" ||
		d.Iterations != 106249 || d.Metrics["allocs/op"] != 52 || d.Metrics["MB/s"] != 30.24 {
		t.Fatalf("decode: %+v", d)
	}
	j, ok := FindGoBench(all, "BenchmarkJobDeliveryOverhead")
	if !ok || !strings.HasSuffix(j.Package, "maestro/jobs") || j.Metrics["p99-ms"] != 12.5 {
		t.Fatalf("jobs: %+v %v", j, ok)
	}
	if trimProcs("BenchmarkX/y-z") != "BenchmarkX/y-z" || trimProcs("BenchmarkX-16") != "BenchmarkX" {
		t.Fatal("trimProcs")
	}
}

func TestPprofParsing(t *testing.T) {
	out := "Type: alloc_space\nActive filters:\n   focus=x\nShowing nodes accounting for 1.50MB, 0.71% of 141.62MB total\n"
	amount, pct, total, err := PprofShowing(out)
	if err != nil || amount != 1.5*(1<<20) || pct != 0.71 || math.Abs(total-141.62*(1<<20)) > 1 {
		t.Fatalf("got %v %v %v %v", amount, pct, total, err)
	}
	for in, want := range map[string]float64{"0": 0, "150ms": 0.15, "2.10s": 2.1, "512.01kB": 512.01 * 1024, "3mins": 180, "40us": 40e-6, "7B": 7} {
		got, err := PprofQuantity(in)
		if err != nil || math.Abs(got-want) > 1e-9*math.Max(1, want) {
			t.Errorf("%s: got %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := PprofQuantity("12 parsecs"); err == nil {
		t.Error("an unknown unit must be an error")
	}
	if _, _, _, err := PprofShowing("nothing here"); err == nil {
		t.Error("a missing Showing line must be an error")
	}
}

func sampleReport() *Report {
	return &Report{
		GeneratedAt: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Machine:     Machine{CPUs: 2, CPUModel: "AMD EPYC"},
		Commands:    []string{"make bench"},
		Direct: []DirectRun{
			{Agent: "stand-in", Concurrency: 4, Replicas: 1, Events: 400, Throughput: 97, MaestroRate: 100, RatioToMaestro: 0.97,
				Latency: Latency{Mean: 44}, CPUPerEventMs: 1, MaestroCPUPerEventMs: 10, CPURatioToMaestro: 0.1,
				CPUProfile: "/tmp/hyperfleet-bench/adapter-cpu-direct-c4-r1.pprof", CPUProfileSeconds: 10,
				CPUTop:     "      flat  flat%   sum%        cum   cum%\n     0.01s  1.00%  1.00%      0.40s 40.00%  pipeline.(*Pipeline).handle\n",
				CPUFlatTop: "      flat  flat%   sum%        cum   cum%\n     0.12s 12.00% 12.00%      0.12s 12.00%  runtime.futex\n"},
			{Agent: "stand-in", Concurrency: 16, Replicas: 1, Events: 400, Throughput: 70, MaestroRate: 100, RatioToMaestro: 0.7, BackendRate: 72,
				Latency: Latency{Mean: 220}, MaestroLatency: Latency{Mean: 160}, Phases: Phases{Event: 210, Deliver: 150, AwaitStatus: 55},
				CPUPerEventMs: 3, MaestroCPUPerEventMs: 10, CPURatioToMaestro: 0.3},
			{Agent: "real", Concurrency: 4, Replicas: 1, Events: 100, Throughput: 20, MaestroRate: 20, RatioToMaestro: 1},
		},
		AddedLatency: []AddedLatency{
			{OfferedRate: 22, Load: 0.5, Concurrency: 4, Events: 500, AddedP99: 6, OwnP99Sum: 3, OwnP99: map[string]float64{}},
			{OfferedRate: 88, Load: 2, Concurrency: 4, Events: 500, MaxRawRate: 44, AdapterCapacity: 40,
				Adapter: Latency{P99: 1300}, Maestro: Latency{P99: 1000}, OwnP99: map[string]float64{}},
			{OfferedRate: 176, Load: 4, Concurrency: 4, Events: 500, MaxRawRate: 44, AdapterCapacity: 40,
				Adapter: Latency{P99: 2000}, Maestro: Latency{P99: 2000}, OwnP99: map[string]float64{}},
		},
		Scale: &ScaleRun{Clusters: 10000, PeakRSSMiB: 80, Constructors: []Constructor{{What: "Template parsing", AllocPct: 0.01}},
			InuseTop: "      flat  flat%   sum%        cum   cum%\n 1536.55kB 23.33% 23.33%  1536.55kB 23.33%  reflect.growslice\n"},
		JobDelivery: JobDelivery{Status: "pending", Reason: "not built yet"},
	}
}

func TestTargets(t *testing.T) {
	ts := Targets(sampleReport())
	// 3 rates, 2 CPU shares (the real-agent run has no Maestro CPU), 2
	// latencies, RSS, constructors.
	if len(ts) != 9 {
		t.Fatalf("%d targets: %+v", len(ts), ts)
	}
	if !ts[0].Met || !strings.Contains(ts[0].Margin, "met by 2 points") {
		t.Errorf("97%% of raw: %+v", ts[0])
	}
	if ts[1].Met || !strings.Contains(ts[1].Margin, "missed by 25 points (25.0 events/s short of 95.0)") || !strings.Contains(ts[1].Why, "220.0 ms") ||
		!strings.Contains(ts[1].Why, "72.0 ops/s (72% of raw)") {
		t.Errorf("70%% of raw: %+v", ts[1])
	}
	if !ts[2].Met || !strings.Contains(ts[2].Name, "real agent") {
		t.Errorf("real agent: %+v", ts[2])
	}
	if c := RateCause(sampleReport()); !strings.Contains(c, "no longer reads a work over REST") {
		t.Errorf("rate cause: %q", c)
	}
	if !ts[3].Met || !strings.Contains(ts[3].Margin, "met by 10 points") || ts[4].Met || !strings.Contains(ts[4].Margin, "missed by 10 points") {
		t.Errorf("CPU shares: %+v / %+v", ts[3], ts[4])
	}
	if !strings.Contains(ts[4].Why, `"Adapter CPU per event at concurrency 4 × 1 replica(s)" below`) {
		t.Errorf("a missed CPU share must point to the profiled row: %q", ts[4].Why)
	}
	if lat := ts[5]; lat.Met || !strings.Contains(lat.Margin, "missed by 1.00 ms") || !strings.Contains(lat.Name, "below capacity") {
		t.Errorf("added latency: %+v", lat)
	}
	if over := ts[6]; over.Met || !strings.Contains(over.Measured, "1.30×") || !strings.Contains(over.Margin, "missed by 0.10") {
		t.Errorf("overload: %+v", over)
	}
	if !ts[7].Met || !strings.Contains(ts[7].Margin, "met by 20.0 MiB") {
		t.Errorf("RSS: %+v", ts[7])
	}
	if !ts[8].Met {
		t.Errorf("constructors: %+v", ts[8])
	}
	r := sampleReport()
	r.Scale.PeakRSSMiB = 130
	r.Scale.Constructors[0].CPUCumPct = 2
	ts = Targets(r)
	if ts[7].Met || !strings.Contains(ts[7].Why, "reflect.growslice (1536.55kB)") {
		t.Errorf("RSS miss: %+v", ts[7])
	}
	if ts[8].Met || !strings.Contains(ts[8].Margin, "Template parsing (CPU 2.00%") {
		t.Errorf("constructor in the CPU profile: %+v", ts[8])
	}
}

func TestReportRendersEverySection(t *testing.T) {
	r := sampleReport()
	r.Targets = Targets(r)
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "| CPUs (`nproc`) | 2 |", "make bench", "## Targets", "**no**",
		"## Direct delivery", "| stand-in | 16 | 1 | 400 | 70.0 |", "| real | 4 | 1 | 100 | 20.0 |", "**0.30**",
		"## Added latency at 22.0 events/s (0.5× capacity)", "## Added latency at 88.0 events/s (2.0× capacity)", "at or past capacity",
		"**Why direct delivery is below the raw client.**", "**pending** — not built yet", "## 10000 distinct clusters", "## Hot paths",
		"## Adapter CPU per event at concurrency 4 × 1 replica(s): the profile that explains its \"CPU per event\" row",
		"adapter used 1.00 ms of CPU per event against Maestro's 10.00 ms (10%; the target is ≤ 20%)", "10 s CPU profile",
		"`/tmp/hyperfleet-bench/adapter-cpu-direct-c4-r1.pprof`", "pipeline.(*Pipeline).handle", "By own (flat) time", "runtime.futex"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("BENCHMARKS.md lacks %q", want)
		}
	}
	if n := strings.Count(md.String(), "## Adapter CPU per event"); n != 1 {
		t.Errorf("%d profile sections, want 1 (only the profiled row)", n)
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Direct) != 3 || back.Scale.Clusters != 10000 {
		t.Fatalf("JSON does not round-trip: %v", err)
	}
	if back.Direct[0].CPUTop != r.Direct[0].CPUTop || back.Direct[0].CPUFlatTop != r.Direct[0].CPUFlatTop {
		t.Fatal("the row's profile excerpts do not round-trip through JSON")
	}
}

func TestReportSaysWhenTheRowsProfileFailed(t *testing.T) {
	r := sampleReport()
	d := &r.Direct[0]
	d.CPUTop, d.CPUFlatTop, d.CPUProfile = "", "", ""
	d.CPUProfileError = "GET http://x/debug/pprof/profile: connection refused"
	r.Targets = Targets(r)
	if strings.Contains(r.Targets[4].Why, "Adapter CPU per event") {
		t.Errorf("without a profile the CPU miss must point to the scale run: %q", r.Targets[4].Why)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "**No profile in this run**: GET http://x/debug/pprof/profile: connection refused") {
		t.Fatalf("profile error not shown:\n%s", md.String())
	}
}

func TestRateScheduleCreatesBeforePatches(t *testing.T) {
	s := rateSchedule(500)
	if len(s) != 500 {
		t.Fatalf("%d events, want 500", len(s))
	}
	created := map[int]int{}
	for i, e := range s {
		switch e[1] {
		case 1:
			created[e[0]] = i
		case 2:
			at, ok := created[e[0]]
			if !ok || i-at < 10 {
				t.Fatalf("cluster %d patched at %d, created at %d (ok=%v)", e[0], i, at, ok)
			}
		}
	}
	if len(created) != 250 {
		t.Fatalf("%d clusters created, want 250", len(created))
	}
}

func TestJobDeliveryFromGoBenchOutput(t *testing.T) {
	r := sampleReport()
	all := ParseGoBench("pkg: github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs\n" +
		"BenchmarkJobDeliveryOverhead-2   5   900000000 ns/op   310.5 direct-p50-ms   120.1 maestro-cli-p50-ms   860.2 job-p50-ms   549.7 overhead-p50-ms   2.77 job/direct\n")
	jb, ok := FindGoBench(all, "BenchmarkJobDeliveryOverhead")
	if !ok {
		t.Fatal("not parsed")
	}
	r.JobDelivery = JobDelivery{Status: "measured", Bench: &jb}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| 860.2 | 310.5 | **549.7** | 2.77 | 120.1 |") {
		t.Fatalf("job table missing:\n%s", md.String())
	}
}
