package bench

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"runtime"
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
	// GenerationRead is the mean Maestro read of the report phase (the
	// generation check before publishing; delivery calls with op "get").
	GenerationRead float64 `json:"generation_read_ms"`
	Event          float64 `json:"event_ms"`
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
