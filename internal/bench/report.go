package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is everything one `make bench` run measured; benchmarks.json is
// its JSON, BENCHMARKS.md its rendering.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	Seconds     float64   `json:"seconds"`
	Machine     Machine   `json:"machine"`
	// Commands reproduce the run, in order.
	Commands []string `json:"commands"`

	Direct          []DirectRun  `json:"direct_delivery"`
	MaestroBaseline []ApplyRun   `json:"raw_maestro_apply"`
	BackendBaseline []ApplyRun   `json:"adapter_backend_apply"`
	RabbitBaseline  []ConsumeRun `json:"raw_rabbitmq_consume"`
	// AddedLatency: one run per offered load, as multiples of capacity
	// (the raw client's closed-loop rate at the same concurrency).
	AddedLatency []AddedLatency `json:"added_latency"`
	Scale        *ScaleRun      `json:"scale,omitempty"`
	JobDelivery  JobDelivery    `json:"job_delivery"`
	Micro        []GoBench      `json:"go_benchmarks"`
	Targets      []Target       `json:"targets"`
	Notes        []string       `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int    `json:"memory_mib"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
	// LoadAtStart is /proc/loadavg when the run began: the machine is
	// shared, and a high load explains noisy absolute numbers.
	LoadAtStart string `json:"load_at_start"`
	LoadAtEnd   string `json:"load_at_end"`
}

// DetectMachine reads the machine's facts from /proc and the runtime.
func DetectMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemoryMiB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAtStart = LoadAvg()
	return m
}

// LoadAvg is the first three fields of /proc/loadavg, or "".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Phases is the adapter's own account of where an event's time went: the
// mean of each phase of hyperfleet_adapter_phase_duration_seconds and of
// the whole event, in milliseconds, from the histograms' _sum/_count
// (exact, unlike bucket quantiles).
type Phases struct {
	ReadResource float64 `json:"read_resource_ms"`
	Build        float64 `json:"build_ms"`
	Deliver      float64 `json:"deliver_ms"`
	AwaitStatus  float64 `json:"await_status_ms"`
	Report       float64 `json:"report_ms"`
	Event        float64 `json:"event_ms"`
}

// DirectRun is the adapter delivering straight to Maestro: a closed loop
// of Concurrency×Replicas publishers, each publishing an event and waiting
// for its status event before the next.
type DirectRun struct {
	// Agent is "stand-in" (maestro/maestrotest, in the test process) or
	// "real" (Maestro's work agent on the local kube-apiserver).
	Agent       string  `json:"agent"`
	Concurrency int     `json:"concurrency"`
	Replicas    int     `json:"replicas"`
	Events      int     `json:"events"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"events_per_s"`
	// Latency is from publishing the Sentinel event to receiving its status
	// event from the status topic.
	Latency Latency `json:"latency"`
	// NotAvailable counts status events that did not say Available=True.
	NotAvailable int `json:"reports_not_available"`
	// CPUPerEventMs is the adapters' CPU time (all replicas) per event.
	CPUPerEventMs float64 `json:"cpu_per_event_ms"`
	// MaestroCPUPerEventMs is the Maestro server's CPU time per event over
	// the same window (from /proc/<pid>/stat; the server is shared, so it
	// includes whatever else used it meanwhile), and CPURatioToMaestro the
	// adapter's CPU per event divided by it.
	MaestroCPUPerEventMs float64 `json:"maestro_cpu_per_event_ms"`
	CPURatioToMaestro    float64 `json:"cpu_ratio_to_maestro"`
	// WatcherReports counts status events that answered no published
	// event: the status watcher's reports of later status changes.
	WatcherReports int64  `json:"watcher_reports"`
	Phases         Phases `json:"phases"`
	// The baselines at the same total concurrency, and the ratios to them.
	MaestroRate    float64 `json:"raw_maestro_ops_per_s"`
	MaestroLatency Latency `json:"raw_maestro_latency"`
	RatioToMaestro float64 `json:"ratio_to_raw_maestro"`
	// The adapter's Maestro backend alone at the same concurrency (single
	// replica cases only).
	BackendRate    float64 `json:"adapter_backend_ops_per_s,omitempty"`
	BackendLatency Latency `json:"adapter_backend_latency"`
	RabbitRate     float64 `json:"raw_rabbitmq_msgs_per_s"`
	RatioToRabbit  float64 `json:"ratio_to_raw_rabbitmq"`
	// A CPU profile of the adapter over the measured loop (one row only,
	// see directClosedLoop): where it is kept, its length, and `go tool
	// pprof -top` excerpts by cumulative and by own (flat) time; or why
	// there is none.
	CPUProfile        string `json:"cpu_profile,omitempty"`
	CPUProfileSeconds int    `json:"cpu_profile_seconds,omitempty"`
	CPUTop            string `json:"cpu_top,omitempty"`
	CPUFlatTop        string `json:"cpu_flat_top,omitempty"`
	CPUProfileError   string `json:"cpu_profile_error,omitempty"`
}

// Profiled says whether the harness tried to profile this row's adapter.
func (d DirectRun) Profiled() bool { return d.CPUTop != "" || d.CPUProfileError != "" }

// ApplyRun is a Maestro baseline: Concurrency workers, each applying a
// work (create, then patch to the next generation) and waiting until the
// agent reports it Applied and Available. Client is "sdk" (Maestro's gRPC
// source client, raw) or "backend" (the adapter's maestro/remote Backend
// and Tracker, without broker or pipeline).
type ApplyRun struct {
	Client      string  `json:"client"`
	Concurrency int     `json:"concurrency"`
	Ops         int     `json:"ops"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"ops_per_s"`
	Latency     Latency `json:"latency"`
	// Reread counts raw applies whose status the watch never delivered,
	// found by reading the work after a silence.
	Reread int64 `json:"reread,omitempty"`
	// Agent: "stand-in" or "real" (see DirectRun.Agent).
	Agent string `json:"agent"`
	// MaestroCPUPerOpMs is the Maestro server's CPU time per apply over
	// the run (see DirectRun.MaestroCPUPerEventMs).
	MaestroCPUPerOpMs float64 `json:"maestro_cpu_per_op_ms"`
}

// ConsumeRun is the raw RabbitMQ baseline: one amqp091 consumer with
// manual acks at the given prefetch draining a preloaded queue.
type ConsumeRun struct {
	Prefetch int     `json:"prefetch"`
	Messages int     `json:"messages"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"msgs_per_s"`
}

// AddedLatency compares, at a fixed offered load, the adapter's publish →
// status latency with Maestro's own apply → Available round trip.
type AddedLatency struct {
	OfferedRate float64 `json:"offered_events_per_s"`
	// Load is the offered rate as a multiple of the raw Maestro client's
	// closed-loop rate at the same concurrency (its capacity here).
	Load float64 `json:"offered_multiple_of_capacity"`
	// MaxRawRate is the highest raw Maestro rate measured in the run: an
	// offered rate near or above it is past the local Maestro's capacity.
	MaxRawRate float64 `json:"max_raw_maestro_ops_per_s"`
	// AdapterCapacity is the adapter's closed-loop rate at the same
	// concurrency and one replica: an offered rate near or above it queues.
	AdapterCapacity float64 `json:"adapter_capacity_events_per_s"`
	Concurrency     int     `json:"concurrency"`
	Events          int     `json:"events"`
	Adapter         Latency `json:"adapter_publish_to_status"`
	Maestro         Latency `json:"raw_maestro_apply_to_available"`
	// MaestroReread: raw applies found by a read after the watch stayed
	// silent (see ApplyRun.Reread).
	MaestroReread int64 `json:"raw_maestro_reread,omitempty"`
	// MaestroLost: raw applies that failed (past capacity the publish
	// itself times out) or whose status never came within 20 s (left out
	// of the raw latencies; the test log says what Maestro had).
	MaestroLost int `json:"raw_maestro_lost,omitempty"`
	// AddedP50/AddedP99: adapter percentile minus Maestro percentile.
	AddedP50 float64 `json:"added_p50_ms"`
	AddedP99 float64 `json:"added_p99_ms"`
	// OwnP99 is the p99 of each of the adapter's own phases (everything but
	// deliver and await_status, which are Maestro's round trip), estimated
	// from histogram buckets; OwnP99Sum adds them up.
	OwnP99    map[string]float64 `json:"own_phase_p99_ms"`
	OwnP99Sum float64            `json:"own_phase_p99_sum_ms"`
	Phases    Phases             `json:"phases"`
}

// Capacity is the lower of what the local Maestro and the adapter served
// at most in the run (0 when unknown).
func (a AddedLatency) Capacity() float64 {
	switch {
	case a.MaxRawRate > 0 && a.AdapterCapacity > 0:
		return min(a.MaxRawRate, a.AdapterCapacity)
	default:
		return max(a.MaxRawRate, a.AdapterCapacity)
	}
}

// Saturated says whether the offered rate is past 80% of Capacity: then
// latencies are mostly queueing, not the work of one event.
func (a AddedLatency) Saturated() bool { return a.Capacity() > 0 && a.OfferedRate > 0.8*a.Capacity() }

// ScaleRun is one adapter over many distinct clusters: CPU and memory.
type ScaleRun struct {
	AdapterType   string  `json:"adapter_type"`
	Clusters      int     `json:"clusters"`
	Concurrency   int     `json:"concurrency"`
	Seconds       float64 `json:"seconds"`
	Throughput    float64 `json:"events_per_s"`
	NotAvailable  int     `json:"reports_not_available"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerEventMs float64 `json:"cpu_per_event_ms"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	FinalRSSMiB   float64 `json:"final_rss_mib"`
	HeapInuseMiB  float64 `json:"heap_inuse_mib"`
	Latency       Latency `json:"latency"`
	Phases        Phases  `json:"phases"`
	ProfileDir    string  `json:"profile_dir"`
	// Profile excerpts: `go tool pprof -top` of the CPU profile (steady
	// state), and of the heap profile by allocated and in-use space.
	CPUTop   string `json:"cpu_top"`
	AllocTop string `json:"alloc_top"`
	InuseTop string `json:"inuse_top"`
	// MutexTop is the mutex profile: where handling waited on locks.
	MutexTop string `json:"mutex_top"`
	// Constructors: what the profiles say about functions that must run
	// once per process, never per event.
	Constructors []Constructor `json:"constructors"`
	// RESTGet*: the share of CPU and allocations under the Maestro
	// client's REST read of a work (grpcsource RESTFulAPIWatcherStore.Get);
	// CallMuDelayPct: the share of lock delay charged to
	// maestro.SourceDelivery.works (every client call).
	RESTGetCPUPct   float64 `json:"rest_get_cpu_pct"`
	RESTGetAllocPct float64 `json:"rest_get_alloc_pct"`
	CallMuDelayPct  float64 `json:"callmu_delay_pct"`
	// The status watcher (pipeline.WatchStatus): the status events it
	// published during the run (reports answering no event), its share of
	// CPU and of lock delay, and the share of the heap in use at the end
	// held by works decoded from Maestro's status stream.
	WatcherReports  int64   `json:"watcher_reports"`
	WatcherCPUPct   float64 `json:"watcher_cpu_pct"`
	WatcherLockPct  float64 `json:"watcher_lock_delay_pct"`
	DecodedInusePct float64 `json:"decoded_works_inuse_pct"`
	// After the run, the harness waits (up to 20 s, until 3 s pass with
	// none) for the watcher's last reports, then measures the heap again.
	TailSeconds              float64 `json:"tail_seconds"`
	TailReports              int64   `json:"tail_watcher_reports"`
	HeapAfterTailMiB         float64 `json:"heap_inuse_after_tail_mib"`
	DecodedInuseAfterTailPct float64 `json:"decoded_works_inuse_after_tail_pct"`
}

// Constructor is one once-per-process function and what the profiles
// attribute to it over the whole scale run.
type Constructor struct {
	What    string `json:"what"`
	Pattern string `json:"pattern"`
	// CPUCumPct is its cumulative share of the steady-state CPU profile.
	CPUCumPct float64 `json:"cpu_cum_pct"`
	// AllocBytes/AllocPct: bytes allocated under it since the process
	// started, and their share of all allocations.
	AllocBytes int64   `json:"alloc_bytes"`
	AllocPct   float64 `json:"alloc_pct"`
}

// JobDelivery is the Job path's per-event overhead, from
// BenchmarkJobDeliveryOverhead in maestro/jobs when it exists.
type JobDelivery struct {
	Status string   `json:"status"` // measured or pending
	Reason string   `json:"reason,omitempty"`
	Bench  *GoBench `json:"bench,omitempty"`
}

// Target is one goal of the issue and whether this run met it.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	// Margin says by how much it was met or missed; Why explains a miss.
	Margin string `json:"margin"`
	Why    string `json:"why,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown renders BENCHMARKS.md.
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := &mdWriter{w: w}
	b.p("# Benchmarks")
	b.p("")
	b.p("Generated by `make bench` on %s in %.0f s. Every number below comes from that one run; the baselines "+
		"were measured in the same run on the same machine, so the **ratios** are what to compare across runs "+
		"(the machine is shared: absolute numbers move with its load). *Watcher reports* are status events that answered no published "+
		"event: `pipeline.WatchStatus` reporting a work's later status change.", r.GeneratedAt.UTC().Format("2006-01-02 15:04 MST"), r.Seconds)
	b.p("")
	b.p("## Machine")
	b.p("")
	b.p("| | |")
	b.p("|---|---|")
	b.p("| CPUs (`nproc`) | %d |", r.Machine.CPUs)
	b.p("| CPU model | %s |", r.Machine.CPUModel)
	b.p("| Memory | %d MiB |", r.Machine.MemoryMiB)
	b.p("| Go | %s (%s) |", r.Machine.GoVersion, r.Machine.OS)
	b.p("| Kernel | %s |", r.Machine.Kernel)
	b.p("| Load average at start / end | %s / %s |", r.Machine.LoadAtStart, r.Machine.LoadAtEnd)
	b.p("")
	b.p("## How to reproduce")
	b.p("")
	b.p("```sh")
	for _, c := range r.Commands {
		b.p("%s", c)
	}
	b.p("```")
	b.p("")

	b.p("## Targets")
	b.p("")
	b.p("| Target | Goal | Measured | Met | By how much |")
	b.p("|---|---|---|---|---|")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		b.p("| %s | %s | %s | %s | %s |", t.Name, t.Goal, t.Measured, met, t.Margin)
	}
	b.p("")
	for _, t := range r.Targets {
		if t.Why != "" {
			b.p("- **%s**: %s", t.Name, t.Why)
		}
	}
	b.p("")
	if cause := RateCause(r); cause != "" {
		b.p("**Why direct delivery is below the raw client.** %s", cause)
		b.p("")
	}

	b.p("## Direct delivery (adapter → Maestro), end to end")
	b.p("")
	b.p("Real RabbitMQ, a real Maestro server (`deploy/local/maestro.sh`), one simulated agent (`maestro/maestrotest`) " +
		"serving every cluster (`CONSUMER_RULE=fixed:<consumer>`), adapter processes built from `cmd/adapter` with " +
		"`DELIVERY=maestro`, adapter type `namespace`. A closed loop of *concurrency × replicas* publishers each " +
		"publishes a Sentinel event and waits for its status event before publishing the next; clusters are distinct, " +
		"each gets generation 1 (the work is created) and then generation 2 (the work is patched). Latency: from " +
		"publishing the event to receiving its status event from the status topic (both broker hops included). " +
		"The raw Maestro baseline runs the same loop with the source client and no adapter, at the same total " +
		"concurrency, applying the same works; the raw RabbitMQ baseline drains a preloaded queue with prefetch = concurrency.")
	b.p("")
	b.p("The last row runs Maestro's real work agent (`maestro/agenttest`, applying to the local kube-apiserver) instead of the " +
		"simulated one, with a raw baseline of its own. CPU: the adapter processes' `process_cpu_seconds_total` and the Maestro " +
		"server's utime + stime from `/proc/<pid>/stat` over the same window, per event; the Maestro server is shared with whatever " +
		"else runs on this machine, so its figure is an upper bound.")
	b.p("")
	b.p("| Agent | Concurrency | Replicas | Events | Events/s | p50 ms | p95 ms | p99 ms | Raw Maestro ops/s | **Ratio to Maestro** | Adapter backend alone ops/s | Raw RabbitMQ msgs/s | Ratio to RabbitMQ | Adapter CPU ms/event | Maestro CPU ms/event | **Adapter ÷ Maestro CPU** | Watcher reports |")
	b.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, d := range r.Direct {
		backend := "–"
		if d.BackendRate > 0 {
			backend = fmt.Sprintf("%.1f", d.BackendRate)
		}
		b.p("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | **%.2f** | %s | %.0f | %.4f | %.2f | %.2f | **%.2f** | %d |", d.Agent,
			d.Concurrency, d.Replicas, d.Events,
			d.Throughput, d.Latency.P50, d.Latency.P95, d.Latency.P99, d.MaestroRate, d.RatioToMaestro, backend, d.RabbitRate, d.RatioToRabbit,
			d.CPUPerEventMs, d.MaestroCPUPerEventMs, d.CPURatioToMaestro, d.WatcherReports)
	}
	b.p("")
	b.p("Where the time of one event goes, by the adapter's own histograms (means, ms; `event` is the whole handling, " +
		"publish → status minus `event` is the two broker hops, scheduling and acknowledgement):")
	b.p("")
	b.p("| Agent | Concurrency | Replicas | publish → status | event | read_resource | build | deliver | await_status | report | raw Maestro apply → Available | adapter backend alone apply → Available |")
	b.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, d := range r.Direct {
		p := d.Phases
		backend := "–"
		if d.BackendRate > 0 {
			backend = fmt.Sprintf("%.2f", d.BackendLatency.Mean)
		}
		b.p("| %s | %d | %d | %.2f | %.2f | %.3f | %.3f | %.2f | %.2f | %.2f | %.2f | %s |", d.Agent, d.Concurrency, d.Replicas, d.Latency.Mean, p.Event,
			p.ReadResource, p.Build, p.Deliver, p.AwaitStatus, p.Report, d.MaestroLatency.Mean, backend)
	}
	b.p("")

	for _, d := range r.Direct {
		if d.Profiled() {
			writeDirectProfile(b, d)
		}
	}

	b.p("## Baselines")
	b.p("")
	b.p("Maestro apply rate, no broker and no pipeline: workers create a work, wait until the agent reports it Applied and " +
		"Available, patch it to the next generation and wait again. *Raw* is Maestro's own gRPC source client " +
		"(`grpcsource.NewMaestroGRPCSourceWorkClient`) with its watch; *adapter backend* is the adapter's `maestro/remote` Backend and " +
		"`maestro.Tracker`, which choose create or patch and guard the resource generation from a watch-fed cache (a REST read " +
		"only on a miss or after a refused stale patch) and write through the OCM source client on a store answering from it.")
	b.p("")
	b.p("| Client | Agent | Concurrency | Ops | Ops/s | p50 ms | p95 ms | p99 ms | Maestro CPU ms/op | Status read after a silent watch |")
	b.p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, a := range append(append([]ApplyRun{}, r.MaestroBaseline...), r.BackendBaseline...) {
		client := "raw source client"
		if a.Client == "backend" {
			client = "adapter backend"
		}
		b.p("| %s | %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %d |", client, a.Agent, a.Concurrency, a.Ops, a.Rate, a.Latency.P50,
			a.Latency.P95, a.Latency.P99, a.MaestroCPUPerOpMs, a.Reread)
	}
	b.p("")
	b.p("Raw RabbitMQ consume rate (amqp091, one consumer, manual ack):")
	b.p("")
	b.p("| Prefetch | Messages | Msgs/s |")
	b.p("|---:|---:|---:|")
	for _, c := range r.RabbitBaseline {
		b.p("| %d | %d | %.0f |", c.Prefetch, c.Messages, c.Rate)
	}
	b.p("")

	for _, a := range r.AddedLatency {
		b.p("## Added latency at %.1f events/s (%.1f× capacity)", a.OfferedRate, a.Load)
		b.p("")
		b.p("An open loop publishes %d events at a fixed %.0f events/s to one adapter (concurrency %d), half creating a work and "+
			"half patching one; in the same run, just before, Maestro's raw source client applies the same works at the same rate. "+
			"*Added* is the adapter's percentile minus Maestro's: it includes both broker hops, which the raw path does not have.",
			a.Events, a.OfferedRate, a.Concurrency)
		if a.Saturated() {
			b.p("")
			b.p("**%.1f events/s is at or past capacity in this run** (raw Maestro served %.1f ops/s in the closed loop, the adapter %.1f events/s "+
				"at concurrency %d): latencies are mostly queueing, not the work of one event; the adapter's p99 should track the raw "+
				"client's.", a.OfferedRate, a.MaxRawRate, a.AdapterCapacity, a.Concurrency)
		}
		b.p("")
		b.p("| | p50 ms | p95 ms | p99 ms | mean ms |")
		b.p("|---|---:|---:|---:|---:|")
		b.p("| Adapter: publish → status event | %.2f | %.2f | %.2f | %.2f |", a.Adapter.P50, a.Adapter.P95, a.Adapter.P99, a.Adapter.Mean)
		b.p("| Raw Maestro: apply → Available | %.2f | %.2f | %.2f | %.2f |", a.Maestro.P50, a.Maestro.P95, a.Maestro.P99, a.Maestro.Mean)
		b.p("| **Added** (difference) | %.2f | | **%.2f** | %.2f |", a.AddedP50, a.AddedP99, round(a.Adapter.Mean-a.Maestro.Mean, 3))
		b.p("")
		if a.MaestroLost > 0 {
			b.p("%d raw applies never reached Applied and Available within 20 s (Maestro accepted the write; the test log says what "+
				"it had then); they are left out of the raw latencies, which flatters the raw side.", a.MaestroLost)
			b.p("")
		}
		if a.MaestroReread > 0 {
			b.p("%d raw applies got no status from the client's watch and were found Applied and Available by reading the work "+
				"after %s of silence; their latency includes that wait.", a.MaestroReread, "5 s")
			b.p("")
		}
		b.p("The adapter's own phases (not deliver or await_status, which are Maestro's round trip), p99 interpolated from the buckets " +
			"of `hyperfleet_adapter_phase_duration_seconds` (bounds 1, 2.5, 5, 10 ms …), and means from its sum and count:")
		b.p("")
		b.p("| Phase | p99 ms | mean ms |")
		b.p("|---|---:|---:|")
		b.p("| read_resource | %.3f | %.3f |", a.OwnP99["read_resource"], a.Phases.ReadResource)
		b.p("| build | %.3f | %.3f |", a.OwnP99["build"], a.Phases.Build)
		b.p("| report (status publish, confirmed) | %.3f | %.3f |", a.OwnP99["report"], a.Phases.Report)
		b.p("| sum | %.3f | %.3f |", a.OwnP99Sum, round(a.Phases.ReadResource+a.Phases.Build+a.Phases.Report, 3))
		b.p("")
	}

	b.p("## Job delivery")
	b.p("")
	switch r.JobDelivery.Status {
	case "measured":
		jb := r.JobDelivery.Bench
		m := jb.Metrics
		if _, ok := m["overhead-p50-ms"]; ok {
			b.p("`%s` (`%s`, %d iterations): each iteration delivers one new generation of one work directly and through a "+
				"Job, on the same Maestro server and agent, and times Apply → Applied and Available at that generation.",
				jb.Name, strings.TrimPrefix(jb.Package, "github.com/openshift-hyperfleet/maestro-adapter/"), jb.Iterations)
			b.p("")
			b.p("| Job p50 ms | Direct p50 ms | **Per-event overhead of the Job path (p50) ms** | Job ÷ direct | maestro-cli process p50 ms |")
			b.p("|---:|---:|---:|---:|---:|")
			b.p("| %s | %s | **%s** | %s | %s |", num(m, "job-p50-ms"), num(m, "direct-p50-ms"), num(m, "overhead-p50-ms"),
				num(m, "job/direct"), num(m, "maestro-cli-p50-ms"))
			b.p("")
			b.p("No kubelet runs here: the benchmark stands in for the pod and the status reporter at once, so this is the " +
				"delivery's own overhead (Job and ConfigMap creation, informers, a fresh maestro-cli process connecting, applying " +
				"and watching, the status writes); a real cluster adds pod scheduling, image pull and container start on top.")
		} else {
			b.p("`%s` (%s): %s.", jb.Name, jb.Package, metricsString(m))
		}
	default:
		b.p("Per-event overhead: **pending** — %s", r.JobDelivery.Reason)
	}
	b.p("")

	if s := r.Scale; s != nil {
		b.p("## %d distinct clusters: CPU and memory", s.Clusters)
		b.p("")
		b.p("One adapter (type `%s`, concurrency %d, `DELIVERY=maestro`) handles one event for each of %d distinct "+
			"clusters, published at once. CPU from `/proc/<pid>/stat` (user + system) between the first publish and the "+
			"last status event; peak RSS is `VmHWM` from `/proc/<pid>/status` at the end.", s.AdapterType, s.Concurrency, s.Clusters)
		b.p("")
		b.p("| Events/s | p50 ms | p99 ms | CPU s | CPU ms/event | Peak RSS MiB | Final RSS MiB | Go heap in use MiB |")
		b.p("|---:|---:|---:|---:|---:|---:|---:|---:|")
		b.p("| %.1f | %.1f | %.1f | %.2f | %.3f | %.1f | %.1f | %.1f |", s.Throughput, s.Latency.P50, s.Latency.P99, s.CPUSeconds,
			s.CPUPerEventMs, s.PeakRSSMiB, s.FinalRSSMiB, s.HeapInuseMiB)
		b.p("")
		b.p("Once-per-process functions, and what the profiles attribute to them over the whole run (profiles in `%s`):", s.ProfileDir)
		b.p("")
		b.p("| What | Functions (regexp) | CPU cum %% (steady state) | Allocated since start | %% of all allocations |")
		b.p("|---|---|---:|---:|---:|")
		for _, c := range s.Constructors {
			b.p("| %s | `%s` | %.2f | %s | %.3f |", c.What, c.Pattern, c.CPUCumPct, bytesString(c.AllocBytes), c.AllocPct)
		}
		b.p("")
		b.p("Where the adapter's Maestro backend goes: the client's REST read of a work (`grpcsource.(*RESTFulAPIWatcherStore).Get`) "+
			"is %.1f%% of the steady-state CPU and %.1f%% of all allocations; `maestro.(*SourceDelivery).works`, through which "+
			"every client call goes, carries %.1f%% of the lock delay.", s.RESTGetCPUPct, s.RESTGetAllocPct, s.CallMuDelayPct)
		b.p("")
		b.p("The status watcher (`pipeline.WatchStatus`, which reports status changes between events) published %d status events "+
			"that answered no event during the run; it has %.1f%% of the steady-state CPU and %.1f%% of the lock delay. Works decoded "+
			"from Maestro's status stream (`codec.(*ManifestBundleCodec).Decode`) hold %.1f%% of the heap in use at the end.",
			s.WatcherReports, s.WatcherCPUPct, s.WatcherLockPct, s.DecodedInusePct)
		b.p("")
		b.p("After the last event's status the harness waited %.1f s for the watcher's tail (%d more reports), then measured the "+
			"heap again: %.1f MiB in use (from %.1f MiB), %.1f%% of it decoded works.", s.TailSeconds, s.TailReports,
			s.HeapAfterTailMiB, s.HeapInuseMiB, s.DecodedInuseAfterTailPct)
		b.p("")
		b.p("CPU profile of the steady state, top functions by cumulative time (`go tool pprof -top -cum`):")
		b.p("")
		b.p("```")
		b.p("%s", strings.TrimRight(s.CPUTop, "\n"))
		b.p("```")
		b.p("")
		b.p("Allocations over the whole run, top functions by cumulative allocated bytes (`-sample_index=alloc_space -top -cum`):")
		b.p("")
		b.p("```")
		b.p("%s", strings.TrimRight(s.AllocTop, "\n"))
		b.p("```")
		b.p("")
		b.p("Lock contention over the whole run, top functions by delay (`/debug/pprof/mutex`, 1 in 5 contended locks sampled; " +
			"the delay is charged to where the lock was released):")
		b.p("")
		b.p("```")
		b.p("%s", strings.TrimRight(s.MutexTop, "\n"))
		b.p("```")
		b.p("")
		b.p("Heap in use at the end, top functions by in-use bytes (`-sample_index=inuse_space -top`):")
		b.p("")
		b.p("```")
		b.p("%s", strings.TrimRight(s.InuseTop, "\n"))
		b.p("```")
		b.p("")
	}

	b.p("## Hot paths (`go test -bench`)")
	b.p("")
	b.p("| Package | Benchmark | ns/op | B/op | allocs/op | Other |")
	b.p("|---|---|---:|---:|---:|---|")
	for _, m := range r.Micro {
		other := map[string]float64{}
		for k, v := range m.Metrics {
			switch k {
			case "ns/op", "B/op", "allocs/op":
			default:
				other[k] = v
			}
		}
		b.p("| %s | %s | %s | %s | %s | %s |", strings.TrimPrefix(m.Package, "github.com/openshift-hyperfleet/maestro-adapter/"),
			m.Name, num(m.Metrics, "ns/op"), num(m.Metrics, "B/op"), num(m.Metrics, "allocs/op"), metricsString(other))
	}
	b.p("")
	if len(r.Notes) > 0 {
		b.p("## Notes")
		b.p("")
		for _, n := range r.Notes {
			b.p("- %s", n)
		}
		b.p("")
	}
	return b.err
}

// writeDirectProfile renders the CPU profile of one direct-delivery row:
// what its "CPU per event" target row is made of.
func writeDirectProfile(b *mdWriter, d DirectRun) {
	b.p("## Adapter CPU per event at %s: the profile that explains its \"CPU per event\" row", d.label())
	b.p("")
	b.p("This explains the *CPU per event, %s* row of the targets: the adapter used %.2f ms of CPU per event against "+
		"Maestro's %.2f ms (%.0f%%; the target is ≤ %.0f%%). While that row's closed loop ran, the harness took a %d s CPU "+
		"profile of its adapter process (type `namespace`, %s agent) from `/debug/pprof/profile` on `PPROF_ADDR`. With "+
		"`PPROF_ADDR` set the adapter also samples 1 in 5 contended locks, and the profiler takes 100 samples a second: "+
		"both add a little to this row's CPU figure, to no other row's.", d.label(), d.CPUPerEventMs, d.MaestroCPUPerEventMs,
		d.CPURatioToMaestro*100, TargetCPUShare*100, d.CPUProfileSeconds, d.Agent)
	b.p("")
	if d.CPUTop == "" {
		b.p("**No profile in this run**: %s", d.CPUProfileError)
		b.p("")
		return
	}
	b.p("Profile: `%s` (the binary beside it as `adapter`). Top functions by cumulative time (`go tool pprof -top -cum`):", d.CPUProfile)
	b.p("")
	b.p("```")
	b.p("%s", strings.TrimRight(d.CPUTop, "\n"))
	b.p("```")
	b.p("")
	b.p("By own (flat) time (`go tool pprof -top`):")
	b.p("")
	b.p("```")
	b.p("%s", strings.TrimRight(d.CPUFlatTop, "\n"))
	b.p("```")
	b.p("")
}

type mdWriter struct {
	w   io.Writer
	err error
}

func (m *mdWriter) p(format string, args ...any) {
	if m.err != nil {
		return
	}
	_, m.err = fmt.Fprintf(m.w, format+"\n", args...)
}

func num(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func metricsString(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, strconv.FormatFloat(m[k], 'f', -1, 64)+" "+k)
	}
	return strings.Join(parts, ", ")
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
