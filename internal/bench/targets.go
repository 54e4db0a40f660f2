package bench

import (
	"fmt"
	"strings"
)

// The targets (issue 14), each judged in one run against its
// same-run baseline.
const (
	TargetMaestroRatio   = 0.95  // direct delivery rate ÷ raw Maestro apply rate
	TargetCPUShare       = 0.20  // adapter CPU per event ÷ Maestro's CPU per event
	TargetAddedP99Ms     = 5.0   // p99 added over Maestro's round trip, below capacity
	TargetOverloadLoad   = 2.0   // the overload target's offered load, × capacity
	TargetOverloadP99    = 1.2   // adapter p99 ÷ raw client p99 at that load
	TargetPeakRSSMiB     = 100.0 // with 10,000 clusters
	TargetConstructorPct = 1.0   // max share of allocations of a once-per-process function
)

func (d DirectRun) label() string {
	l := fmt.Sprintf("concurrency %d × %d replica(s)", d.Concurrency, d.Replicas)
	if d.Agent == "real" {
		l += ", real agent"
	}
	return l
}

// Targets evaluates r against the targets, saying by how much each
// is met or missed and, for a miss, why, from the run's own figures.
func Targets(r *Report) []Target {
	var out []Target
	for _, d := range r.Direct {
		t := Target{
			Name:     "Direct delivery rate, " + d.label(),
			Goal:     fmt.Sprintf("≥ %.0f%% of raw Maestro apply rate at concurrency %d", TargetMaestroRatio*100, d.Concurrency*d.Replicas),
			Measured: fmt.Sprintf("%.1f events/s = %.0f%% of %.1f ops/s", d.Throughput, d.RatioToMaestro*100, d.MaestroRate),
			Met:      d.RatioToMaestro >= TargetMaestroRatio,
		}
		diff := (d.RatioToMaestro - TargetMaestroRatio) * 100
		need := TargetMaestroRatio * d.MaestroRate
		if t.Met {
			t.Margin = fmt.Sprintf("met by %.0f points", diff)
		} else {
			t.Margin = fmt.Sprintf("missed by %.0f points (%.1f events/s short of %.1f)", -diff, need-d.Throughput, need)
			t.Why = whyRate(d)
		}
		out = append(out, t)
	}
	cpuWhy := "see the scale run's CPU profile below for where the adapter's CPU goes."
	for _, d := range r.Direct {
		if d.CPUTop != "" {
			cpuWhy = fmt.Sprintf("see \"Adapter CPU per event at %s\" below: the adapter's CPU profile during that row.", d.label())
		}
	}
	for _, d := range r.Direct {
		if d.MaestroCPUPerEventMs <= 0 {
			continue
		}
		t := Target{
			Name: "CPU per event, " + d.label(),
			Goal: fmt.Sprintf("adapter ≤ %.0f%% of Maestro's", TargetCPUShare*100),
			Measured: fmt.Sprintf("adapter %.2f ms, Maestro %.2f ms = %.0f%%", d.CPUPerEventMs, d.MaestroCPUPerEventMs,
				d.CPURatioToMaestro*100),
			Met: d.CPURatioToMaestro <= TargetCPUShare,
		}
		if t.Met {
			t.Margin = fmt.Sprintf("met by %.0f points", (TargetCPUShare-d.CPURatioToMaestro)*100)
		} else {
			t.Margin = fmt.Sprintf("missed by %.0f points", (d.CPURatioToMaestro-TargetCPUShare)*100)
			t.Why = cpuWhy
		}
		out = append(out, t)
	}
	var below, over *AddedLatency
	for i := range r.AddedLatency {
		a := &r.AddedLatency[i]
		switch {
		case a.Load < 1 && below == nil:
			below = a
		case a.Load == TargetOverloadLoad:
			over = a
		}
	}
	if below != nil {
		t := Target{
			Name: fmt.Sprintf("Added latency below capacity (%.1f events/s, %.1f× capacity)", below.OfferedRate, below.Load),
			Goal: fmt.Sprintf("p99 < %.0f ms above Maestro's round trip", TargetAddedP99Ms),
			Measured: fmt.Sprintf("p99 %.2f ms − %.2f ms = %.2f ms (adapter's own phases' p99 sum %.2f ms)",
				below.Adapter.P99, below.Maestro.P99, below.AddedP99, below.OwnP99Sum),
			Met: below.AddedP99 < TargetAddedP99Ms,
		}
		if t.Met {
			t.Margin = fmt.Sprintf("met by %.2f ms", TargetAddedP99Ms-below.AddedP99)
		} else {
			t.Margin = fmt.Sprintf("missed by %.2f ms", below.AddedP99-TargetAddedP99Ms)
			t.Why = whyLatency(*below, backendExtra(r))
		}
		out = append(out, t)
	}
	if over != nil {
		ratio := Ratio(over.Adapter.P99, over.Maestro.P99)
		t := Target{
			Name:     fmt.Sprintf("p99 at %.0f× capacity (%.1f events/s)", over.Load, over.OfferedRate),
			Goal:     fmt.Sprintf("adapter p99 ≤ %.1f× the raw client's", TargetOverloadP99),
			Measured: fmt.Sprintf("adapter %.1f ms, raw %.1f ms = %.2f×", over.Adapter.P99, over.Maestro.P99, ratio),
			Met:      over.Maestro.P99 > 0 && ratio <= TargetOverloadP99,
		}
		if t.Met {
			t.Margin = fmt.Sprintf("met by %.2f", TargetOverloadP99-ratio)
		} else {
			t.Margin = fmt.Sprintf("missed by %.2f", ratio-TargetOverloadP99)
			t.Why = fmt.Sprintf("past capacity both paths queue; the adapter queues in RabbitMQ (prefetch = concurrency %d) and its "+
				"deliveries then take Maestro's queueing on top. The adapter's closed-loop capacity at this concurrency was %.1f events/s "+
				"against the raw client's %.1f ops/s: a lower capacity drains the same backlog more slowly, which is most of a p99 "+
				"past capacity. Mean deliver %.2f ms, await_status %.2f ms.", over.Concurrency, over.AdapterCapacity, over.MaxRawRate,
				over.Phases.Deliver, over.Phases.AwaitStatus)
		}
		out = append(out, t)
	}
	if s := r.Scale; s != nil {
		t := Target{
			Name:     fmt.Sprintf("Peak RSS with %d clusters", s.Clusters),
			Goal:     fmt.Sprintf("< %.0f MiB", TargetPeakRSSMiB),
			Measured: fmt.Sprintf("%.1f MiB (Go heap in use at the end %.1f MiB)", s.PeakRSSMiB, s.HeapInuseMiB),
			Met:      s.PeakRSSMiB > 0 && s.PeakRSSMiB < TargetPeakRSSMiB,
		}
		if t.Met {
			t.Margin = fmt.Sprintf("met by %.1f MiB", TargetPeakRSSMiB-s.PeakRSSMiB)
		} else {
			t.Margin = fmt.Sprintf("missed by %.1f MiB", s.PeakRSSMiB-TargetPeakRSSMiB)
			t.Why = fmt.Sprintf("the Go heap held %.1f MiB of live objects at the end; the largest in-use allocation sites: %s. "+
				"%.1f%% of it were works decoded from Maestro's status stream (ManifestBundleCodec.Decode) still referenced. "+
				"A queue of status changes is what holds decoded works: maestro.Tracker.Subscribe keeps, per work, the latest change "+
				"not yet handed over, and pipeline.WatchStatus takes the next only after reporting the previous one, which reads the "+
				"work over REST (%.1f%% of the lock delay is the watcher's); with %d clusters changing "+
				"status faster than that, the queue grows with the number of clusters. The watcher published %d status events answering "+
				"no event during the run and %d more in the %.1f s after it; the heap was then %.1f MiB, %.1f%% decoded works.",
				s.HeapInuseMiB, firstProfileRows(s.InuseTop, 3), s.DecodedInusePct, s.WatcherLockPct, s.Clusters,
				s.WatcherReports, s.TailReports, s.TailSeconds, s.HeapAfterTailMiB, s.DecodedInuseAfterTailPct)
		}
		out = append(out, t)

		t = Target{
			Name: "No per-event client construction or template recompilation",
			Goal: fmt.Sprintf("once-per-process functions absent from the steady-state CPU profile and < %.0f%% of allocations", TargetConstructorPct),
			Met:  len(s.Constructors) > 0,
		}
		var seen, bad []string
		worst := 0.0
		for _, c := range s.Constructors {
			worst = max(worst, c.AllocPct)
			if c.CPUCumPct > 0 || c.AllocPct >= TargetConstructorPct {
				t.Met = false
				bad = append(bad, fmt.Sprintf("%s (CPU %.2f%%, allocations %.2f%%)", c.What, c.CPUCumPct, c.AllocPct))
			}
			if c.CPUCumPct > 0 {
				seen = append(seen, c.What)
			}
		}
		t.Measured = fmt.Sprintf("%d functions checked; largest allocation share %.3f%%; in the CPU profile: %s",
			len(s.Constructors), worst, orNone(seen))
		if t.Met {
			t.Margin = fmt.Sprintf("met: largest share %.3f%% of the %.0f%% allowed", worst, TargetConstructorPct)
		} else {
			t.Margin = "missed: " + strings.Join(bad, "; ")
			t.Why = "these ran during the steady state or allocated in proportion to events; see the profiles below."
		}
		out = append(out, t)
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// whyRate explains a rate below the target from the run's own figures. A
// closed loop's rate is its concurrency over its per-event latency, so the
// ratio to Maestro is roughly the inverse ratio of the latencies; what the
// adapter adds to Maestro's round trip is where its rate went.
func whyRate(d DirectRun) string {
	p := d.Phases
	own := p.ReadResource + p.Build + p.Report
	outside := d.Latency.Mean - p.Event
	why := fmt.Sprintf("mean publish → status %.1f ms against %.1f ms for a raw apply → Available (a closed loop's rate is its "+
		"concurrency over its latency). Handling took %.1f ms: deliver %.1f + await_status %.1f ms through the adapter's Maestro backend, "+
		"own phases (read_resource + build + report, the last being the confirmed status publish) %.1f ms; broker hops and settling %.1f ms.",
		d.Latency.Mean, d.MaestroLatency.Mean, p.Event, p.Deliver, p.AwaitStatus, own, outside)
	if d.BackendRate > 0 {
		why += fmt.Sprintf(" The backend alone, without broker or pipeline, did %.1f ops/s (%.0f%% of raw) at %.1f ms per apply.",
			d.BackendRate, Ratio(d.BackendRate, d.MaestroRate)*100, d.BackendLatency.Mean)
	}
	why += fmt.Sprintf(" CPU: %.2f ms per event, %.2f cores at this rate.", d.CPUPerEventMs, d.CPUPerEventMs*d.Throughput/1000)
	return why
}

// RateCause is the one explanation shared by every missed direct-delivery
// rate target, from the code and the run's profiles; "" when none missed.
func RateCause(r *Report) string {
	missed := false
	for _, d := range r.Direct {
		missed = missed || d.RatioToMaestro < TargetMaestroRatio
	}
	if !missed {
		return ""
	}
	cause := "The adapter's Maestro backend no longer reads a work over REST on the hot path: SourceDelivery.Apply decides from its " +
		"watch-fed cache, and writes go through the OCM source client on a store answering with what Apply knows (maestro/remote " +
		"writer.go), so a delivery costs one publish, as the raw client's does (which itself reads once inside Create/Patch). What " +
		"remains between the two is the pipeline around the publish: the broker hop of the event, reading the resource, building, " +
		"the status event's publish with a broker confirm and its hop back (see the phases table). More replicas " +
		"do not raise the rate here: each is one more process on a 2-core machine that Maestro, PostgreSQL, RabbitMQ and the simulated " +
		"agent already saturate."
	if s := r.Scale; s != nil {
		cause += fmt.Sprintf(" Profiles of the scale run: the REST reads left (grpcsource RESTFulAPIWatcherStore.Get and the writer's store) are %.1f%% of the adapter's "+
			"CPU and %.1f%% of its allocations; SourceDelivery.works (the client calls) carries %.1f%% of all lock delay (mutex profile below).",
			s.RESTGetCPUPct, s.RESTGetAllocPct, s.CallMuDelayPct)
	}
	return cause
}

// backendExtra is the mean time the adapter's Maestro backend adds to a
// raw apply at concurrency 1 (no queueing), from the baselines; 0 when
// they were not measured.
func backendExtra(r *Report) float64 {
	for _, d := range r.Direct {
		if d.Concurrency == 1 && d.Replicas == 1 && d.BackendRate > 0 {
			return round(d.BackendLatency.Mean-d.MaestroLatency.Mean, 2)
		}
	}
	return 0
}

func whyLatency(a AddedLatency, backendExtraMs float64) string {
	why := fmt.Sprintf("Publish → status includes what a raw apply does not: the event's hop through RabbitMQ, reading the resource, "+
		"building, publishing the status event with a broker confirm, and its hop to the collector. The adapter's own phases' p99 "+
		"add up to %.2f ms (read_resource %.2f, build %.2f, report %.2f); the mean deliver phase was %.2f ms and await_status %.2f ms.",
		a.OwnP99Sum, a.OwnP99["read_resource"], a.OwnP99["build"], a.OwnP99["report"], a.Phases.Deliver, a.Phases.AwaitStatus)
	if backendExtraMs > 0 {
		why += fmt.Sprintf(" At concurrency 1 the adapter's Maestro backend alone takes %.2f ms more per apply than the raw client (mean).", backendExtraMs)
	}
	return why
}

// firstProfileRows returns the function names of the first n data rows of
// `pprof -top` output, with their flat amounts.
func firstProfileRows(top string, n int) string {
	var rows []string
	inTable := false
	for _, l := range strings.Split(top, "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && f[0] == "flat" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 6 {
			continue
		}
		rows = append(rows, fmt.Sprintf("%s (%s)", strings.Join(f[5:], " "), f[0]))
		if len(rows) == n {
			break
		}
	}
	return orNone(rows)
}
