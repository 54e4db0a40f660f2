package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// benchConfig is the harness's settings, from the environment (make bench
// sets them). The defaults keep `make bench` under ten minutes on the
// project's 2-core machine.
type benchConfig struct {
	out         string        // BENCH_OUT: where BENCHMARKS.md and benchmarks.json go
	micro       string        // BENCH_MICRO: `go test -bench` output to include
	profileDir  string        // BENCH_PROFILE_DIR: where profiles are kept
	caseTime    time.Duration // BENCH_CASE_SECONDS: length of each closed-loop case
	scale       int           // BENCH_SCALE_CLUSTERS: clusters of the memory/CPU run
	rate        float64       // BENCH_RATE: offered load of the added-latency run
	rateEvents  int           // BENCH_RATE_EVENTS: events of the added-latency run
	rabbitMsgs  int           // BENCH_RABBIT_MESSAGES: messages per raw consume run
	profileTime time.Duration // BENCH_PROFILE_SECONDS: CPU profile length in the scale run
	// BENCH_ADAPTER_BIN (read by buildAdapter): a prebuilt adapter to run
	// instead of building cmd/adapter, to compare two builds row by row.
}

func loadBenchConfig(t *testing.T) benchConfig {
	t.Helper()
	c := benchConfig{
		out: repoRoot, micro: os.Getenv("BENCH_MICRO"), profileDir: filepath.Join(os.TempDir(), "hyperfleet-bench"),
		caseTime: 10 * time.Second, scale: 10000, rate: 50, rateEvents: 500, rabbitMsgs: 5000, profileTime: 15 * time.Second,
	}
	if v := os.Getenv("BENCH_OUT"); v != "" {
		c.out = v
	}
	if v := os.Getenv("BENCH_PROFILE_DIR"); v != "" {
		c.profileDir = v
	}
	num := func(name string, set func(float64)) {
		v := os.Getenv(name)
		if v == "" {
			return
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		set(f)
	}
	num("BENCH_CASE_SECONDS", func(f float64) { c.caseTime = time.Duration(f * float64(time.Second)) })
	num("BENCH_SCALE_CLUSTERS", func(f float64) { c.scale = int(f) })
	num("BENCH_RATE", func(f float64) { c.rate = f })
	num("BENCH_RATE_EVENTS", func(f float64) { c.rateEvents = int(f) })
	num("BENCH_RABBIT_MESSAGES", func(f float64) { c.rabbitMsgs = int(f) })
	num("BENCH_PROFILE_SECONDS", func(f float64) { c.profileTime = time.Duration(f * float64(time.Second)) })
	if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
		t.Fatalf("BENCH_PROFILE_DIR: %v", err)
	}
	return c
}

// commands is how a reader reproduces the run; keep it in step with the
// Makefile's bench target.
var commands = []string{
	"make bench",
	"# which runs, after starting RabbitMQ, PostgreSQL, Maestro and kube-apiserver when they are not running:",
	`eval "$(deploy/local/maestro.sh env)"; eval "$(deploy/local/kube/kube.sh env)"`,
	"go test -run '^$' -bench . -benchmem ./... | tee /tmp/hyperfleet-bench/go-bench.txt",
	"BENCH_E2E=1 BENCH_MICRO=/tmp/hyperfleet-bench/go-bench.txt BENCH_PROFILE_DIR=/tmp/hyperfleet-bench BENCH_OUT=$PWD \\",
	"  go test -count=1 -timeout 60m -run TestEndToEndBenchmark -v ./internal/bench",
}

// TestEndToEndBenchmark measures the adapter on the real local stack and
// writes BENCHMARKS.md and benchmarks.json. It runs only with BENCH_E2E=1
// (make bench): it takes minutes and loads the whole machine.
func TestEndToEndBenchmark(t *testing.T) {
	if os.Getenv("BENCH_E2E") != "1" {
		t.Skip("end-to-end benchmark: run with BENCH_E2E=1 (make bench)")
	}
	env := maestrotest.Require(t)
	cfg := loadBenchConfig(t)
	quietKlog(t)
	began := time.Now()
	rep := &Report{GeneratedAt: began, Machine: DetectMachine(), Commands: commands}
	h := &harness{cfg: cfg, env: env, bin: buildAdapter(t, t.TempDir()), tmpl: loadClusterTemplate(t), run: randomHex(t, 3)}

	// A failed case leaves its row out; the report says which failed.
	run := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("**%s failed in this run**; its figures are missing (see the test log).", name))
		}
	}
	run("raw-rabbitmq", func(t *testing.T) {
		for _, pf := range []int{1, 4, 16} {
			r := rawConsume(t, pf, cfg.rabbitMsgs)
			t.Logf("raw RabbitMQ consume, prefetch %d: %.0f msgs/s", pf, r.Rate)
			rep.RabbitBaseline = append(rep.RabbitBaseline, r)
		}
	})
	rabbitAt := func(prefetch int) float64 {
		for _, r := range rep.RabbitBaseline {
			if r.Prefetch == prefetch {
				return r.Rate
			}
		}
		return 0
	}

	// Each adapter case is measured right after the baselines at the same
	// total concurrency, so that all see the same machine.
	sdkAt, backendAt := map[int]ApplyRun{}, map[int]ApplyRun{}
	for _, c := range []struct {
		concurrency, replicas int
		real                  bool
	}{{1, 1, false}, {4, 1, false}, {16, 1, false}, {4, 2, false}, {4, 3, false}, {4, 1, true}} {
		total := c.concurrency * c.replicas
		if c.real {
			// The same delivery through Maestro's real work agent, with a
			// raw baseline of its own: where the time goes when the agent
			// really applies (to the local kube-apiserver).
			h.realAgent = true
			delete(sdkAt, total)
			delete(backendAt, total)
			backendAt[total] = ApplyRun{} // the backend alone is measured with the stand-in only
		}
		agent := ""
		if c.real {
			agent = "/real-agent"
		}
		if _, done := sdkAt[total]; !done {
			run(fmt.Sprintf("raw-maestro%s/concurrency-%d", agent, total), func(t *testing.T) {
				r := h.applyClosedLoop(t, total, "sdk")
				t.Logf("raw Maestro source client, concurrency %d: %.1f ops/s, p50 %.1f ms, p99 %.1f ms", total, r.Rate, r.Latency.P50, r.Latency.P99)
				sdkAt[total] = r
				rep.MaestroBaseline = append(rep.MaestroBaseline, r)
			})
		}
		if _, done := backendAt[total]; !done && c.replicas == 1 {
			run(fmt.Sprintf("adapter-backend/concurrency-%d", total), func(t *testing.T) {
				r := h.applyClosedLoop(t, total, "backend")
				t.Logf("adapter's Maestro backend alone, concurrency %d: %.1f ops/s, p50 %.1f ms, p99 %.1f ms", total, r.Rate, r.Latency.P50, r.Latency.P99)
				backendAt[total] = r
				rep.BackendBaseline = append(rep.BackendBaseline, r)
			})
		}
		run(fmt.Sprintf("direct%s/concurrency-%d/replicas-%d", agent, c.concurrency, c.replicas), func(t *testing.T) {
			d := h.directClosedLoop(t, c.concurrency, c.replicas)
			base := sdkAt[total]
			d.MaestroRate, d.MaestroLatency, d.RatioToMaestro = base.Rate, base.Latency, Ratio(d.Throughput, base.Rate)
			if b, ok := backendAt[total]; ok && b.Rate > 0 {
				d.BackendRate, d.BackendLatency = b.Rate, b.Latency
			}
			d.RabbitRate = rabbitAt(c.concurrency)
			d.RatioToRabbit = Ratio(d.Throughput, d.RabbitRate)
			t.Logf("direct, concurrency %d × %d replicas: %.1f events/s (%.2f of raw Maestro), p50 %.1f ms, p99 %.1f ms",
				c.concurrency, c.replicas, d.Throughput, d.RatioToMaestro, d.Latency.P50, d.Latency.P99)
			rep.Direct = append(rep.Direct, d)
		})
	}
	h.realAgent = false

	// Offered loads as multiples of capacity: what the raw source client
	// served in the closed loop at the added-latency runs' concurrency
	// (stand-in agent). Below capacity the difference of the latencies is
	// the adapter's own time; past it both queue, and the adapter's p99
	// should track Maestro's queueing rather than grow from its own.
	capacity := 0.0
	for _, r := range rep.MaestroBaseline {
		if r.Concurrency == addedLatencyConcurrency && r.Agent != "real" {
			capacity = r.Rate
		}
	}
	if capacity == 0 && cfg.rate > 0 {
		capacity = cfg.rate // no baseline measured: BENCH_RATE stands for it
	}
	for _, load := range addedLatencyLoads {
		rate := round(capacity*load, 1)
		run(fmt.Sprintf("added-latency/%.1fx-capacity", load), func(t *testing.T) {
			a := h.addedLatency(t, rate)
			a.Load, a.MaxRawRate = load, capacity
			for _, d := range rep.Direct {
				if d.Concurrency == addedLatencyConcurrency && d.Replicas == 1 && d.Agent != "real" {
					a.AdapterCapacity = d.Throughput
				}
			}
			t.Logf("added latency at %.1f events/s (%.1f× capacity): p50 %+.2f ms, p99 %+.2f ms (adapter p99 %.1f ms, raw %.1f ms)",
				rate, load, a.AddedP50, a.AddedP99, a.Adapter.P99, a.Maestro.P99)
			rep.AddedLatency = append(rep.AddedLatency, *a)
		})
	}

	run("scale", func(t *testing.T) {
		var rate float64 // the stand-in's closed loop at the scale run's concurrency
		for _, d := range rep.Direct {
			if d.Agent == "stand-in" && d.Concurrency == 16 && d.Replicas == 1 {
				rate = d.Throughput
			}
		}
		rep.Scale = h.scaleRun(t, rate)
		t.Logf("%d clusters: %.3f ms CPU/event, peak RSS %.1f MiB", rep.Scale.Clusters, rep.Scale.CPUPerEventMs, rep.Scale.PeakRSSMiB)
	})

	rep.Micro, rep.JobDelivery = microResults(t, cfg.micro)
	rep.Machine.LoadAtEnd = LoadAvg()
	rep.Targets = Targets(rep)
	rep.Notes = append(rep.Notes, runNotes(rep, cfg)...)
	rep.Seconds = round(time.Since(began).Seconds(), 0)
	writeReport(t, cfg.out, rep)
}

type harness struct {
	cfg  benchConfig
	env  maestrotest.Env
	bin  string
	tmpl clusterTemplate
	run  string // random, so that names never clash with an earlier run's
	n    atomic.Int64
	// realAgent runs Maestro's real work agent for the cases started while
	// it is set, instead of the simulated one.
	realAgent bool
}

func (h *harness) agentName() string {
	if h.realAgent {
		return "real"
	}
	return "stand-in"
}

// name returns a fresh name for a case's consumer, source and topics.
func (h *harness) name(what string) string {
	return fmt.Sprintf("bench-%s-%d-%s", h.run, h.n.Add(1), what)
}

// clusterID names cluster k of a case: distinct across cases, so that no
// two cases ever share a work.
func (h *harness) clusterID(caseName string, k int) string {
	f := fnv.New32a()
	_, _ = f.Write([]byte(caseName))
	return fmt.Sprintf("019466a0-%04x-7000-8000-%012d", f.Sum32()&0xffff, k)
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	ds  []time.Duration
	bad int
}

func (l *latencies) add(d time.Duration, ok bool) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	if !ok {
		l.bad++
	}
	l.mu.Unlock()
}

// closedLoop runs op on cluster numbers from first on with workers
// goroutines, each taking the next number when its previous op is done,
// until d has passed. It returns the time from start to the end of the
// last op and the number of ops done, or the first error.
func closedLoop(workers int, d time.Duration, first int, op func(k int) error) (time.Duration, int, error) {
	var (
		next    atomic.Int64
		done    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
		failed  atomic.Bool
	)
	next.Store(int64(first))
	start := time.Now()
	stopAt := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) && !failed.Load() {
				k := int(next.Add(1) - 1)
				if err := op(k); err != nil {
					errOnce.Do(func() { firstEr = err })
					failed.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return time.Since(start), int(done.Load()), firstEr
}

// warmUp runs op once on each of n cluster numbers at once: connections,
// caches and the JIT-free but lazy parts of every client get going before
// the clock starts.
func warmUp(n int, op func(k int) error) error {
	errs := make(chan error, n)
	for k := range n {
		go func() { errs <- op(k) }()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// applyClosedLoop is a Maestro baseline at a concurrency: each worker
// creates a work (generation 1), waits until it is Applied and Available,
// patches it (generation 2) and waits again. client is "sdk" (Maestro's
// source client, raw) or "backend" (the adapter's maestro/remote Backend).
func (h *harness) applyClosedLoop(t *testing.T, concurrency int, client string) ApplyRun {
	name := h.name(fmt.Sprintf("%s-c%d", client, concurrency))
	startAgent(t, h.env, name, h.realAgent)
	a := h.applier(t, client, name)
	builder := newWorkBuilder(t, name, h.tmpl)
	ctx := context.Background()
	lat := &latencies{}
	op := func(record bool) func(k int) error {
		return func(k int) error {
			id := h.clusterID(name, k)
			for gen := int64(1); gen <= 2; gen++ {
				w, err := builder.work(id, k, gen)
				if err != nil {
					return err
				}
				d, err := a.apply(ctx, w, gen == 1)
				if err != nil {
					return err
				}
				if record {
					lat.add(d, true)
				}
			}
			return nil
		}
	}
	h.warmUpClient(t, concurrency, op(false))
	cpu := startMaestroCPU()
	elapsed, n, err := closedLoop(concurrency, h.cfg.caseTime, 0, op(true))
	if err != nil {
		t.Fatal(err)
	}
	run := ApplyRun{Client: client, Concurrency: concurrency, Ops: 2 * n, Seconds: round(elapsed.Seconds(), 3),
		Rate: round(float64(2*n)/elapsed.Seconds(), 1), Latency: Summarize(lat.ds),
		Agent: h.agentName(), MaestroCPUPerOpMs: cpu.perOpMs(2 * n)}
	if sdk, ok := a.(*rawSDK); ok {
		run.Reread = sdk.reread.Load()
	}
	return run
}

func (h *harness) applier(t *testing.T, client, name string) applier {
	switch client {
	case "sdk":
		return newRawSDK(t, h.env, name, name)
	case "backend":
		return newBackendClient(t, h.env, name)
	}
	t.Fatalf("unknown client %q", client)
	return nil
}

// warmUpClient runs the warm-up, retrying while a fresh client has not
// connected yet (the raw source client does not wait for its connection).
func (h *harness) warmUpClient(t *testing.T, n int, op func(k int) error) {
	deadline := time.Now().Add(30 * time.Second)
	first := 10_000_000
	for {
		err := warmUp(n, func(k int) error { return op(first + k) })
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm-up: %v", err)
		}
		first += n
		time.Sleep(200 * time.Millisecond) // a client still connecting: retry with a deadline
	}
}

// adapterCase is a running set of adapter replicas with what the harness
// needs to drive and observe them.
type adapterCase struct {
	name  string
	topo  *topology
	api   *apiDir
	procs []*adapterProc
}

func (h *harness) startCase(t *testing.T, what, adapterType string, concurrency, replicas int, pprof bool, extraEnv ...string) *adapterCase {
	name := h.name(what)
	startAgent(t, h.env, name, h.realAgent)
	c := &adapterCase{name: name, topo: newTopology(t, name), api: newAPIDir(t, h.tmpl)}
	spec := adapterSpec{bin: h.bin, topo: c.topo, api: c.api, env: h.env, sourceID: name, consumer: name,
		adapterType: adapterType, concurrency: concurrency, pprof: pprof, extraEnv: extraEnv}
	for i := range replicas {
		c.procs = append(c.procs, startAdapter(t, spec, fmt.Sprintf("%s-%d", name, i)))
	}
	for _, p := range c.procs {
		p.waitReady(t)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, consumers := c.topo.queueState(); consumers == replicas {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d adapters did not all consume from the shared queue within 30s", replicas)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	return c
}

func (c *adapterCase) scrape(t *testing.T) [][]Sample {
	out := make([][]Sample, len(c.procs))
	for i, p := range c.procs {
		out[i] = p.scrape(t)
	}
	return out
}

func (c *adapterCase) stop(t *testing.T) {
	for _, p := range c.procs {
		p.stop(t)
	}
}

// event publishes the event for cluster k at gen and waits for its status.
func (h *harness) event(ctx context.Context, c *adapterCase, k int, gen int64) (time.Duration, bool, error) {
	s, err := c.topo.publish(ctx, c.api, h.clusterID(c.name, k), k, gen)
	if err != nil {
		return 0, false, err
	}
	return s.wait(ctx, eventTimeout)
}

// directClosedLoop runs replicas adapters at concurrency each, with
// concurrency×replicas publishers in a closed loop: each publishes the
// event for a new cluster at generation 1, waits for its status event,
// publishes generation 2 and waits again.
//
// The row of cpuProfileConcurrency × 1 replica with the stand-in agent also
// takes a CPU profile of its adapter over the measured loop: the namespace
// rows are where the CPU-per-event target is judged, and the scale run's
// profile is of the template type under a burst.
func (h *harness) directClosedLoop(t *testing.T, concurrency, replicas int) DirectRun {
	profiled := concurrency == cpuProfileConcurrency && replicas == 1 && !h.realAgent
	c := h.startCase(t, fmt.Sprintf("c%d-r%d", concurrency, replicas), "namespace", concurrency, replicas, profiled)
	workers := concurrency * replicas
	ctx := context.Background()
	lat := &latencies{}
	op := func(record bool) func(k int) error {
		return func(k int) error {
			for gen := int64(1); gen <= 2; gen++ {
				d, ok, err := h.event(ctx, c, k, gen)
				if err != nil {
					return err
				}
				if record {
					lat.add(d, ok)
				}
			}
			return nil
		}
	}
	if err := warmUp(workers, func(k int) error { return op(false)(1_000_000 + k) }); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	w := window{before: c.scrape(t)}
	strayBefore := c.topo.stray.Load()
	var profile *cpuProfile
	if profiled {
		profile = h.startCPUProfile(c.procs[0], fmt.Sprintf("adapter-cpu-direct-c%d-r%d.pprof", concurrency, replicas))
	}
	cpu := startMaestroCPU()
	elapsed, n, err := closedLoop(workers, h.cfg.caseTime, 0, op(true))
	if err != nil {
		t.Fatal(err)
	}
	maestroCPUms := cpu.perOpMs(2 * n)
	if profile != nil {
		// Before the adapter stops: the profile ends within the loop.
		profile.wait()
	}
	w.after = c.scrape(t)
	watcherReports := c.topo.stray.Load() - strayBefore
	c.stop(t)
	events := 2 * n
	d := DirectRun{
		Agent:       h.agentName(),
		Concurrency: concurrency, Replicas: replicas, Events: events, Seconds: round(elapsed.Seconds(), 3),
		Throughput: round(float64(events)/elapsed.Seconds(), 1), Latency: Summarize(lat.ds), NotAvailable: lat.bad,
		CPUPerEventMs: round(w.cpuSeconds()/float64(events)*1000, 3), Phases: w.phases(), WatcherReports: watcherReports,
		MaestroCPUPerEventMs: maestroCPUms,
	}
	d.CPURatioToMaestro = Ratio(d.CPUPerEventMs, d.MaestroCPUPerEventMs)
	if profile != nil {
		profile.excerpts(t, h, &d)
	}
	return d
}

// cpuProfileConcurrency is the concurrency of the direct-delivery row whose
// adapter is CPU-profiled: the default CONCURRENCY.
const cpuProfileConcurrency = 4

// cpuProfile is a CPU profile of an adapter being taken while a case runs.
type cpuProfile struct {
	path    string
	seconds int
	done    chan error
	err     error
}

// startCPUProfile starts fetching a CPU profile of p's adapter for the
// case's length (whole seconds, as /debug/pprof/profile takes them), into
// file name in BENCH_PROFILE_DIR.
func (h *harness) startCPUProfile(p *adapterProc, name string) *cpuProfile {
	cp := &cpuProfile{path: filepath.Join(h.cfg.profileDir, name), seconds: max(1, int(h.cfg.caseTime/time.Second)), done: make(chan error, 1)}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, cp.seconds)
	go func() { cp.done <- fetch(url, cp.path, time.Duration(cp.seconds)*time.Second+30*time.Second) }()
	return cp
}

func (cp *cpuProfile) wait() { cp.err = <-cp.done }

// excerpts puts the profile's `go tool pprof -top` listings into d. A
// profile that failed is reported in d rather than failing the case: the
// row's figures stand without it.
func (cp *cpuProfile) excerpts(t *testing.T, h *harness, d *DirectRun) {
	d.CPUProfileSeconds = cp.seconds
	if cp.err != nil {
		t.Logf("CPU profile of the adapter: %v", cp.err)
		d.CPUProfileError = cp.err.Error()
		return
	}
	h.keepBinary()
	d.CPUProfile = cp.path
	var err error
	if d.CPUTop, err = pprofTop(h.bin, cp.path, "-top", "-cum", "-nodecount=30"); err == nil {
		d.CPUFlatTop, err = pprofTop(h.bin, cp.path, "-top", "-nodecount=15")
	}
	if err != nil {
		t.Logf("CPU profile of the adapter: %v", err)
		d.CPUProfileError = err.Error()
	}
}

// keepBinary copies the adapter binary beside the profiles, so that they
// can be looked at again with the same symbols.
func (h *harness) keepBinary() {
	if b, err := os.ReadFile(h.bin); err == nil {
		_ = os.WriteFile(filepath.Join(h.cfg.profileDir, "adapter"), b, 0o755)
	}
}

// rateSchedule is the open loop's order of (cluster, generation): every
// cluster is created, and patched ten clusters later, so that a patch never
// overtakes its create and half the events are patches, as in the closed
// loop.
func rateSchedule(events int) [][2]int {
	clusters := events / 2
	const lag = 10
	var s [][2]int
	for k := range clusters {
		s = append(s, [2]int{k, 1})
		if k >= lag {
			s = append(s, [2]int{k - lag, 2})
		}
	}
	for k := max(clusters-lag, 0); k < clusters; k++ {
		s = append(s, [2]int{k, 2})
	}
	return s
}

// openLoop starts op for each scheduled item at a fixed rate, without
// waiting for earlier ones, and waits until all are done.
func openLoop(rate float64, schedule [][2]int, op func(k int, gen int64) error) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	errs := make(chan error, len(schedule))
	for i, item := range schedule {
		if i > 0 {
			<-tick.C
		}
		go func() { errs <- op(item[0], int64(item[1])) }()
	}
	var all []error
	for range schedule {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// addedLatencyConcurrency is the adapter's concurrency in the added-latency
// runs: the default CONCURRENCY.
const addedLatencyConcurrency = 4

// addedLatencyLoads are the offered loads of the added-latency runs, as
// multiples of capacity: below it (the added-time target), at twice it
// (the overload target) and at four times it (the p99 should stay flat).
var addedLatencyLoads = []float64{0.5, 2, 4}

// addedLatency offers a fixed load to Maestro directly (the raw source
// client) and then to one adapter, and compares the latencies.
func (h *harness) addedLatency(t *testing.T, rate float64) *AddedLatency {
	const concurrency = addedLatencyConcurrency
	schedule := rateSchedule(h.cfg.rateEvents)
	ctx := context.Background()

	rawName := h.name("raw-rate")
	startAgent(t, h.env, rawName, false)
	raw := newRawSDK(t, h.env, rawName, rawName)
	builder := newWorkBuilder(t, rawName, h.tmpl)
	rawLat := &latencies{}
	var lost []string
	var lostMu sync.Mutex
	rawOp := func(record bool) func(k int, gen int64) error {
		return func(k int, gen int64) error {
			w, err := builder.work(h.clusterID(rawName, k), k, gen)
			if err != nil {
				return err
			}
			// An open loop past capacity queues; 20 s is far beyond any
			// queueing this run can build up. A work whose status never
			// comes is counted and reported, not waited for.
			d, err := raw.applyWithin(ctx, w, gen == 1, 20*time.Second)
			if err != nil && record {
				// Past capacity the raw client's own writes time out
				// (its publish waits for Maestro) or never get a status:
				// the baseline failing under overload is counted and
				// reported, not a failure of the run.
				lostMu.Lock()
				lost = append(lost, err.Error())
				lostMu.Unlock()
				return nil
			}
			if err == nil && record {
				rawLat.add(d, true)
			}
			return err
		}
	}
	h.warmUpClient(t, concurrency, func(k int) error { return rawOp(false)(k, 1) })
	if err := openLoop(rate, schedule, rawOp(true)); err != nil {
		t.Fatal(err)
	}

	c := h.startCase(t, "rate", "namespace", concurrency, 1, false)
	lat := &latencies{}
	op := func(record bool) func(k int, gen int64) error {
		return func(k int, gen int64) error {
			d, ok, err := h.event(ctx, c, k, gen)
			if err == nil && record {
				lat.add(d, ok)
			}
			return err
		}
	}
	if err := warmUp(concurrency, func(k int) error { return op(false)(1_000_000+k, 1) }); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	w := window{before: c.scrape(t)}
	if err := openLoop(rate, schedule, op(true)); err != nil {
		t.Fatal(err)
	}
	w.after = c.scrape(t)
	c.stop(t)

	for _, l := range lost {
		t.Logf("raw apply without status: %s", l)
	}
	a := &AddedLatency{OfferedRate: rate, Concurrency: concurrency, Events: len(schedule), MaestroReread: raw.reread.Load(),
		MaestroLost: len(lost),
		Adapter:     Summarize(lat.ds), Maestro: Summarize(rawLat.ds), OwnP99: map[string]float64{}, Phases: w.phases()}
	a.AddedP50 = round(a.Adapter.P50-a.Maestro.P50, 3)
	a.AddedP99 = round(a.Adapter.P99-a.Maestro.P99, 3)
	for _, p := range []string{"read_resource", "build", "report"} {
		v := w.quantile(phaseMetric, map[string]string{"phase": p}, 0.99)
		a.OwnP99[p] = v
		a.OwnP99Sum = round(a.OwnP99Sum+v, 3)
	}
	if lat.bad > 0 {
		t.Errorf("%d status events did not say Available=True", lat.bad)
	}
	return a
}

// constructors are functions that must run once per process. If any ran
// per event, the steady-state CPU profile would show it and its share of
// allocations would grow with the events.
var constructors = []struct{ what, pattern string }{
	// Anchored: a background goroutine started by a constructor runs in a
	// closure (New.func1) that must not count as the constructor.
	{"Maestro source client and its gRPC connection", `remote\.New$|grpcsource\.NewMaestroGRPCSourceWorkClient$|grpc\.NewClient$|grpc\.Dial(Context)?$`},
	{"HTTP connections (REST client)", `net/http\.\(\*Transport\)\.dialConn$`},
	{"RabbitMQ connections and channels", `amqp091-go\.Dial(Config)?$|amqp091-go\.\(\*Connection\)\.Channel$`},
	{"Template parsing", `text/template\.\(\*Template\)\.Parse$|text/template/parse\.Parse$`},
	{"Handler construction", `handlers\.New$|handlers\.newTemplateHandler$`},
	{"Regexp compilation", `regexp\.Compile$|regexp\.MustCompile$`},
}

// Where the profiles show the adapter's Maestro backend spending: REST
// reads of works, and the lock around every client call.
const (
	restGetPattern = `grpcsource\.\(\*RESTFulAPIWatcherStore\)\.Get$|remote\.\(\*knownStore\)\.Get$`
	callMuPattern  = `maestro\.\(\*SourceDelivery\)\.works$`
	watcherPattern = `pipeline\.\(\*Pipeline\)\.WatchStatus$`
	decodePattern  = `codec\.\(\*ManifestBundleCodec\)\.Decode$`
)

// scaleTimeout bounds the wait for any one status event of the scale run,
// where every event is queued at once: room for 10,000 events at 15/s,
// or more where this run's Maestro served fewer (scaleWait).
const scaleTimeout = 12 * time.Minute

// scaleWait is how long the scale run waits for its last status event:
// scaleTimeout, or twice what n events take at rate (the closed-loop rate
// this run measured at the scale run's concurrency) when that is longer. A
// slower Maestro (a busier machine, a fuller database) makes a slower run,
// not a failed one.
func scaleWait(n int, rate float64) time.Duration {
	if rate <= 0 { // the scale run alone (go test -run .../scale): no rate measured
		return 2 * scaleTimeout
	}
	return max(scaleTimeout, time.Duration(2*float64(n)/rate*float64(time.Second)))
}

// scaleRun runs one adapter of the template type (templates are where
// per-event recompilation would hide) over distinct clusters published at
// once, with profiles.
func (h *harness) scaleRun(t *testing.T, rate float64) *ScaleRun {
	const concurrency = 16
	templates, err := filepath.Abs(filepath.Join(repoRoot, "testdata", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	c := h.startCase(t, "scale", "template", concurrency, 1, true, "TEMPLATE_DIR="+templates)
	p := c.procs[0]
	ctx := context.Background()
	n := h.cfg.scale
	timeout := scaleWait(n, rate)
	for k := range n {
		if err := c.api.write(h.clusterID(c.name, k), k, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := warmUp(concurrency, func(k int) error {
		_, _, err := h.event(ctx, c, n+k, 1)
		return err
	}); err != nil {
		t.Fatalf("warm-up: %v", err)
	}

	w := window{before: c.scrape(t)}
	strayBefore := c.topo.stray.Load()
	lat := &latencies{}
	var received atomic.Int64
	profileStarted := make(chan struct{})
	profileDone := make(chan error, 1)
	cpuProfile := filepath.Join(h.cfg.profileDir, "adapter-cpu.pprof")
	heapProfile := filepath.Join(h.cfg.profileDir, "adapter-heap.pprof")
	mutexProfile := filepath.Join(h.cfg.profileDir, "adapter-mutex.pprof")
	go func() {
		// The steady state: from a tenth of the statuses on.
		<-profileStarted
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, int(h.cfg.profileTime.Seconds()))
		profileDone <- fetch(url, cpuProfile, h.cfg.profileTime+30*time.Second)
	}()
	var startOnce sync.Once
	start := time.Now()
	var waiters sync.WaitGroup
	errs := make(chan error, n)
	next := atomic.Int64{}
	var publishers sync.WaitGroup
	for range 8 {
		publishers.Add(1)
		go func() {
			defer publishers.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				s, err := c.topo.publish(ctx, c.api, h.clusterID(c.name, k), k, 1)
				if err != nil {
					errs <- err
					return
				}
				waiters.Add(1)
				go func() {
					defer waiters.Done()
					// Every event is queued at once: the last waits for
					// all the others.
					d, ok, err := s.wait(ctx, timeout)
					if err != nil {
						errs <- err
						return
					}
					lat.add(d, ok)
					if received.Add(1) == int64(n/10) {
						startOnce.Do(func() { close(profileStarted) })
					}
				}()
			}
		}()
	}
	publishers.Wait()
	waiters.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	startOnce.Do(func() { close(profileStarted) })
	if err := <-profileDone; err != nil {
		t.Fatalf("CPU profile: %v", err)
	}
	w.after = c.scrape(t)
	if err := fetch("http://"+p.pprof+"/debug/pprof/heap?gc=1", heapProfile, 30*time.Second); err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	if err := fetch("http://"+p.pprof+"/debug/pprof/mutex", mutexProfile, 30*time.Second); err != nil {
		t.Fatalf("mutex profile: %v", err)
	}
	// The heap profile's ?gc=1 collected garbage just now: this is the
	// live heap at the end of the run.
	heapInuse, _ := Value(p.scrape(t), "go_memstats_heap_inuse_bytes", nil)

	// Then the status watcher's tail: give it up to 20 s to finish
	// reporting, and see what the heap holds once it has had that time.
	afterRun := c.topo.stray.Load()
	drainStart := time.Now()
	last, quiet := afterRun, 0
	for quiet < 3 && time.Since(drainStart) < 20*time.Second {
		time.Sleep(time.Second) // sampling a counter once a second, bounded
		if now := c.topo.stray.Load(); now != last {
			last, quiet = now, 0
		} else {
			quiet++
		}
	}
	heapAfterProfile := filepath.Join(h.cfg.profileDir, "adapter-heap-after-watcher.pprof")
	if err := fetch("http://"+p.pprof+"/debug/pprof/heap?gc=1", heapAfterProfile, 30*time.Second); err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	heapAfter, _ := Value(p.scrape(t), "go_memstats_heap_inuse_bytes", nil)
	s := &ScaleRun{
		AdapterType: "template", Clusters: n, Concurrency: concurrency, Seconds: round(elapsed.Seconds(), 3),
		Throughput: round(float64(n)/elapsed.Seconds(), 1), NotAvailable: lat.bad, Latency: Summarize(lat.ds),
		CPUSeconds: round(w.cpuSeconds(), 3), PeakRSSMiB: p.procStatusMiB("VmHWM"), FinalRSSMiB: p.procStatusMiB("VmRSS"),
		HeapInuseMiB: round(heapInuse/(1<<20), 1), Phases: w.phases(), ProfileDir: h.cfg.profileDir,
	}
	s.CPUPerEventMs = round(s.CPUSeconds/float64(n)*1000, 3)
	s.WatcherReports = afterRun - strayBefore
	s.TailSeconds = round(time.Since(drainStart).Seconds(), 1)
	s.TailReports = c.topo.stray.Load() - afterRun
	s.HeapAfterTailMiB = round(heapAfter/(1<<20), 1)
	c.stop(t)

	h.keepBinary()
	var perr error
	if s.CPUTop, perr = pprofTop(h.bin, cpuProfile, "-top", "-cum", "-nodecount=30"); perr != nil {
		t.Fatal(perr)
	}
	if s.AllocTop, perr = pprofTop(h.bin, heapProfile, "-sample_index=alloc_space", "-top", "-cum", "-nodecount=30"); perr != nil {
		t.Fatal(perr)
	}
	if s.InuseTop, perr = pprofTop(h.bin, heapProfile, "-sample_index=inuse_space", "-top", "-nodecount=20"); perr != nil {
		t.Fatal(perr)
	}
	if s.MutexTop, perr = pprofTop(h.bin, mutexProfile, "-top", "-cum", "-nodecount=15"); perr != nil {
		t.Fatal(perr)
	}
	if _, s.RESTGetCPUPct, perr = pprofFocus(h.bin, cpuProfile, restGetPattern); perr != nil {
		t.Fatal(perr)
	}
	if _, s.RESTGetAllocPct, perr = pprofFocus(h.bin, heapProfile, restGetPattern, "-sample_index=alloc_space"); perr != nil {
		t.Fatal(perr)
	}
	if _, s.CallMuDelayPct, perr = pprofFocus(h.bin, mutexProfile, callMuPattern); perr != nil {
		t.Fatal(perr)
	}
	if _, s.WatcherCPUPct, perr = pprofFocus(h.bin, cpuProfile, watcherPattern); perr != nil {
		t.Fatal(perr)
	}
	if _, s.WatcherLockPct, perr = pprofFocus(h.bin, mutexProfile, watcherPattern); perr != nil {
		t.Fatal(perr)
	}
	if _, s.DecodedInusePct, perr = pprofFocus(h.bin, heapProfile, decodePattern, "-sample_index=inuse_space"); perr != nil {
		t.Fatal(perr)
	}
	if _, s.DecodedInuseAfterTailPct, perr = pprofFocus(h.bin, heapAfterProfile, decodePattern, "-sample_index=inuse_space"); perr != nil {
		t.Fatal(perr)
	}
	for _, k := range constructors {
		_, cpuPct, err := pprofFocus(h.bin, cpuProfile, k.pattern)
		if err != nil {
			t.Fatal(err)
		}
		bytes, allocPct, err := pprofFocus(h.bin, heapProfile, k.pattern, "-sample_index=alloc_space")
		if err != nil {
			t.Fatal(err)
		}
		s.Constructors = append(s.Constructors, Constructor{What: k.what, Pattern: k.pattern, CPUCumPct: cpuPct,
			AllocBytes: int64(bytes), AllocPct: allocPct})
	}
	return s
}

// microResults reads the `go test -bench` output make bench saved, and
// the Job path's figure from it.
func microResults(t *testing.T, path string) ([]GoBench, JobDelivery) {
	jobs := JobDelivery{Status: "pending"}
	hasJobBench := false
	if files, _ := filepath.Glob(filepath.Join(repoRoot, "maestro", "jobs", "*_test.go")); len(files) > 0 {
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "func BenchmarkJobDeliveryOverhead(") {
				hasJobBench = true
			}
		}
	}
	if path == "" {
		jobs.Reason = "BENCH_MICRO not set: this run did not include the Go benchmarks (make bench runs them)."
		return nil, jobs
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("BENCH_MICRO: %v", err)
	}
	all := ParseGoBench(string(raw))
	for i := range all {
		if strings.HasPrefix(trimProcs(all[i].Name), "BenchmarkJobDeliveryOverhead") {
			jobs = JobDelivery{Status: "measured", Bench: &all[i]}
			break
		}
	}
	if jobs.Status == "pending" {
		if hasJobBench {
			jobs.Reason = "maestro/jobs has BenchmarkJobDeliveryOverhead, but it reported no result in this run (see the go test -bench output)."
		} else {
			jobs.Reason = "the Job delivery path (maestro/jobs) has no BenchmarkJobDeliveryOverhead yet in this tree; " +
				"it is being built alongside. Once it lands, make bench runs it with the other Go benchmarks and this section shows its figure."
		}
	}
	return all, jobs
}

func writeReport(t *testing.T, dir string, rep *Report) {
	for name, write := range map[string]func(*os.File) error{
		"BENCHMARKS.md":   func(f *os.File) error { return rep.WriteMarkdown(f) },
		"benchmarks.json": func(f *os.File) error { return rep.WriteJSON(f) },
	} {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			f.Close()
			t.Fatalf("%s: %v", path, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(path)
		t.Logf("wrote %s", abs)
	}
}

// runNotes says what a reader needs to read the tables right.
func runNotes(rep *Report, cfg benchConfig) []string {
	notes := []string{
		fmt.Sprintf("Each closed-loop case runs %s after a warm-up (one cluster per publisher, not counted). "+
			"Events are Sentinel events as the HyperFleet broker library publishes them; each carries a traceparent whose trace id "+
			"the adapter copies into the status event, which is how a status event is matched to the event it answers.", cfg.caseTime),
		"Ratios to raw RabbitMQ are far below 1 by design: they show the broker's own consume rate is not what limits the adapter.",
		"Added latency is a difference of percentiles of two distributions measured one after the other, not a per-event difference; " +
			"the adapter's own phase p99s (from its histograms, bucket-interpolated) bound its own share independently of Maestro.",
		"The scale run uses the template adapter type on testdata/templates: rendering templates is the costliest build and the place " +
			"where per-event template recompilation would show. Its latency figures are under a burst of every event published at once, " +
			"so they are mostly queueing, not service time.",
		"Works created by the run stay in the local Maestro's database (under names no other test uses) until `deploy/local/maestro.sh start` recreates it.",
	}
	if rep.Machine.LoadAtStart != "" {
		notes = append(notes, fmt.Sprintf("Load average at start %s and at end %s on %d CPUs: other work on the machine competes with "+
			"every case alike, which the ratios absorb and the absolute numbers do not.", rep.Machine.LoadAtStart, rep.Machine.LoadAtEnd, rep.Machine.CPUs))
	}
	if cfg.micro != "" {
		if raw, err := os.ReadFile(cfg.micro); err == nil {
			var failed []string
			for _, l := range strings.Split(string(raw), "\n") {
				if strings.HasPrefix(l, "FAIL\t") || strings.HasPrefix(l, "--- FAIL") {
					failed = append(failed, strings.TrimSpace(l))
				}
			}
			if len(failed) > 0 {
				notes = append(notes, "Go benchmarks that failed in this run (their figures are missing above): "+strings.Join(failed, "; "))
			}
		}
	}
	return notes
}

// quietKlog silences klog, through which the OCM SDK (the simulated agents
// and the raw source client run in this process) logs every event it
// publishes: thousands of lines that would bury the results.
func quietKlog(t *testing.T) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := fs.Set(k, v); err != nil {
			t.Fatalf("klog flag %s: %v", k, err)
		}
	}
	klog.SetOutput(io.Discard)
}

// TestRenderReport re-renders BENCHMARKS.md from a benchmarks.json
// (BENCH_RENDER=path), re-evaluating the targets with this code: for
// changing the report's wording without measuring again. The numbers are
// the file's; nothing is measured.
func TestRenderReport(t *testing.T) {
	path := os.Getenv("BENCH_RENDER")
	if path == "" {
		t.Skip("re-renders a report: set BENCH_RENDER to a benchmarks.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rep.Targets = Targets(&rep)
	writeReport(t, filepath.Dir(path), &rep)
}
