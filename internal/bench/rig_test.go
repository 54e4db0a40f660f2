package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// repoRoot is the module root, seen from this package's directory (where
// go test runs the test binary).
const repoRoot = "../.."

// eventTimeout bounds the wait for one status event (or one raw apply):
// far above any healthy latency, so that only a stuck stack trips it.
const eventTimeout = 60 * time.Second

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeAddr returns a loopback address with a port free right now. Another
// process could take it before the adapter binds it; on this machine that
// has not happened, and the adapter would fail loudly if it did.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// buildAdapter builds cmd/adapter into dir, with symbols, so that pprof can
// name functions.
func buildAdapter(t testing.TB, dir string) string {
	t.Helper()
	if bin := os.Getenv("BENCH_ADAPTER_BIN"); bin != "" {
		// A prebuilt adapter: to compare two builds row by row, run the
		// same rows once with each (see README, Performance).
		return bin
	}
	bin := filepath.Join(dir, "adapter")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/adapter")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/adapter: %v\n%s", err, out)
	}
	return bin
}

// --- clusters -------------------------------------------------------------

// clusterTemplate is the API's answer for the sample cluster; every
// benchmark cluster is a copy with its own id, name and generation, so the
// handler builds works of the size real clusters produce.
type clusterTemplate map[string]any

func loadClusterTemplate(t testing.TB) clusterTemplate {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "api", "clusters", "019466a0-8f8e-7abc-9def-0123456789ab.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func clusterHref(id string) string { return "/api/hyperfleet/v1/clusters/" + id }

func (c clusterTemplate) render(id string, k int, gen int64) []byte {
	m := make(map[string]any, len(c))
	for key, v := range c {
		m[key] = v
	}
	m["id"], m["href"], m["name"], m["generation"] = id, clusterHref(id), fmt.Sprintf("bench-%d", k), gen
	b, _ := json.Marshal(m)
	return b
}

// apiDir is a directory the adapter reads resources from (API_DIR), written
// atomically so that a reader never sees half a file.
type apiDir struct {
	dir  string
	tmpl clusterTemplate
}

func newAPIDir(t testing.TB, tmpl clusterTemplate) *apiDir {
	t.Helper()
	d := &apiDir{dir: t.TempDir(), tmpl: tmpl}
	if err := os.MkdirAll(filepath.Join(d.dir, "clusters"), 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *apiDir) write(id string, k int, gen int64) error {
	path := filepath.Join(d.dir, "clusters", id+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, d.tmpl.render(id, k, gen), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// --- RabbitMQ -------------------------------------------------------------

// statusArrival is one status event as the collector saw it.
type statusArrival struct {
	at        time.Time
	available bool
}

// topology is one case's RabbitMQ setup: the input topic the adapters
// subscribe to, the status topic they publish to, and a collector queue
// on the status topic whose events are matched to the events published.
type topology struct {
	conn        *amqp.Connection
	topic       string
	sub         string
	statusTopic string
	pub         *rabbitmq.Publisher
	traceBase   string
	seq         atomic.Int64

	mu      sync.Mutex
	pending map[string]chan statusArrival // by trace id
	stray   atomic.Int64                  // status events matching nothing pending
}

func newTopology(t testing.TB, name string) *topology {
	t.Helper()
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v (make bench starts it with deploy/local/services.sh ensure)", rabbitURL, err)
	}
	tp := &topology{conn: conn, topic: name, sub: "adapters", statusTopic: name + "-status",
		traceBase: randomHex(t, 8), pending: map[string]chan statusArrival{}}
	collector := tp.statusTopic + "-collector"
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(tp.statusTopic, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(collector, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(collector, "#", tp.statusTopic, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(collector, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			tp.collect(time.Now(), d.Body)
		}
	}()
	pub, err := rabbitmq.NewPublisher(context.Background(), rabbitmq.PublisherConfig{URL: rabbitURL, Exchange: tp.topic})
	if err != nil {
		t.Fatal(err)
	}
	tp.pub = pub
	t.Cleanup(func() {
		_ = pub.Close()
		_ = ch.Close()
		<-done
		if c, err := conn.Channel(); err == nil {
			queue := tp.topic + "-" + tp.sub
			for _, q := range []string{queue, queue + ".dlq", collector} {
				_, _ = c.QueueDelete(q, false, false, false)
			}
			for _, x := range []string{tp.topic, tp.statusTopic, queue + ".dlx"} {
				_ = c.ExchangeDelete(x, false, false)
			}
			_ = c.Close()
		}
		_ = conn.Close()
	})
	return tp
}

// collect matches a status event to the event it answers by the trace id
// the adapter carries over from the event's traceparent.
func (tp *topology) collect(at time.Time, body []byte) {
	var ev struct {
		TraceParent string                    `json:"traceparent"`
		Data        hyperfleet.StatusEnvelope `json:"data"`
	}
	if json.Unmarshal(body, &ev) != nil || len(ev.TraceParent) != 55 {
		tp.stray.Add(1)
		return
	}
	trace := ev.TraceParent[3:35]
	tp.mu.Lock()
	ch, ok := tp.pending[trace]
	delete(tp.pending, trace)
	tp.mu.Unlock()
	if !ok {
		// The status watcher's reports between events carry no trace.
		tp.stray.Add(1)
		return
	}
	c := ev.Data.Report.Condition(hyperfleet.ConditionAvailable)
	ch <- statusArrival{at: at, available: c != nil && c.Status == hyperfleet.True}
}

// queueState reports messages and consumers of the adapters' shared queue.
func (tp *topology) queueState() (messages, consumers int) {
	ch, err := tp.conn.Channel()
	if err != nil {
		return 0, 0
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(tp.topic+"-"+tp.sub, true, false, false, false, nil)
	if err != nil {
		return 0, 0
	}
	return q.Messages, q.Consumers
}

// sent is one published event: when, and where its status will arrive.
type sent struct {
	at     time.Time
	status chan statusArrival
}

// publish writes the cluster at gen into the API directory, then publishes
// the Sentinel event for it, as the HyperFleet broker library does, with a
// traceparent whose trace id identifies the event. The publish time is
// taken right before the publish.
func (tp *topology) publish(ctx context.Context, api *apiDir, id string, k int, gen int64) (sent, error) {
	if err := api.write(id, k, gen); err != nil {
		return sent{}, err
	}
	seq := tp.seq.Add(1)
	trace := fmt.Sprintf("%s%016x", tp.traceBase, seq)
	ev := cloudevents.New()
	ev.SetID(fmt.Sprintf("bench-%s-%d", tp.traceBase, seq))
	ev.SetSource("hyperfleet-sentinel")
	ev.SetType("com.redhat.hyperfleet.cluster.reconcile")
	ev.SetExtension("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if err := ev.SetData(cloudevents.ApplicationJSON, map[string]any{"id": id, "kind": "Cluster", "href": clusterHref(id), "generation": gen}); err != nil {
		return sent{}, err
	}
	s := sent{status: make(chan statusArrival, 1)}
	tp.mu.Lock()
	tp.pending[trace] = s.status
	tp.mu.Unlock()
	s.at = time.Now()
	if err := tp.pub.PublishSentinel(ctx, ev); err != nil {
		return sent{}, fmt.Errorf("publish event for cluster %s: %w", id, err)
	}
	return s, nil
}

// wait waits up to timeout for the status event.
func (s sent) wait(ctx context.Context, timeout time.Duration) (time.Duration, bool, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-s.status:
		return a.at.Sub(s.at), a.available, nil
	case <-ctx.Done():
		return 0, false, ctx.Err()
	case <-t.C:
		return 0, false, fmt.Errorf("no status event within %s of publishing", timeout)
	}
}

// --- adapter processes ----------------------------------------------------

// adapterProc is one adapter process with its log in a file.
type adapterProc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	health  string
	metrics string
	pprof   string
	done    chan struct{}
	exitErr error
}

type adapterSpec struct {
	bin         string
	topo        *topology
	api         *apiDir
	env         maestrotest.Env
	sourceID    string
	consumer    string
	adapterType string
	concurrency int
	pprof       bool
	extraEnv    []string
}

func startAdapter(t testing.TB, s adapterSpec, name string) *adapterProc {
	t.Helper()
	p := &adapterProc{name: name, log: filepath.Join(t.TempDir(), name+".log"), health: freeAddr(t), metrics: freeAddr(t), done: make(chan struct{})}
	env := []string{
		"ADAPTER_TYPE=" + s.adapterType, "SOURCE=broker", "BROKER_TYPE=rabbitmq", "BROKER_CONFIG_FILE=",
		"BROKER_RABBITMQ_URL=" + rabbitURL, "BROKER_RABBITMQ_EXCHANGE_TYPE=topic",
		"HYPERFLEET_BROKER_TOPIC=" + s.topo.topic, "HYPERFLEET_BROKER_SUBSCRIPTION_ID=" + s.topo.sub,
		"BROKER_STATUS_TOPIC=" + s.topo.statusTopic, "API_DIR=" + s.api.dir,
		"DELIVERY=maestro", "MAESTRO_INSECURE=true", "MAESTRO_GRPC_ENDPOINT=" + s.env.GRPCEndpoint, "MAESTRO_HTTP_ENDPOINT=" + s.env.HTTPEndpoint,
		"MAESTRO_SOURCE_ID=" + s.sourceID, "CONSUMER_RULE=fixed:" + s.consumer,
		"CONCURRENCY=" + strconv.Itoa(s.concurrency), "STATUS_TIMEOUT=30s",
		// The production defaults: JSON logs at info.
		"LOG_FORMAT=json", "LOG_LEVEL=info",
		"HEALTH_ADDR=" + p.health, "METRICS_ADDR=" + p.metrics,
	}
	if s.pprof {
		p.pprof = freeAddr(t)
		env = append(env, "PPROF_ADDR="+p.pprof)
	}
	env = append(env, s.extraEnv...)
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "run")
	// Only what the adapter needs, plus PATH and HOME: nothing of the
	// harness's environment (MAESTRO_*, BROKER_*) leaks in by accident.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	go func() { p.exitErr = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log tail:\n%s", name, tail(p.log, 30))
		}
	})
	return p
}

// stop sends SIGTERM and waits for the process to exit.
func (p *adapterProc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits until /readyz answers 200 (the adapter is connected to
// RabbitMQ and Maestro).
func (p *adapterProc) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited during start-up: %v\n%s", p.name, p.exitErr, tail(p.log, 30))
		default:
		}
		resp, err := client.Get("http://" + p.health + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60s (last: %v)\n%s", p.name, err, tail(p.log, 30))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// scrape reads the adapter's /metrics.
func (p *adapterProc) scrape(t testing.TB) []Sample {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseMetrics(string(b))
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.name, err)
	}
	return s
}

// procStatus reads a field of /proc/<pid>/status in kB (VmHWM, VmRSS) as MiB.
func (p *adapterProc) procStatusMiB(field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == field+":" {
			kb, _ := strconv.ParseFloat(fs[1], 64)
			return round(kb/1024, 1)
		}
	}
	return 0
}

// fetch GETs an ops URL of the adapter into a file.
func fetch(url, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// --- metrics over a window -------------------------------------------------

const (
	phaseMetric = "hyperfleet_adapter_phase_duration_seconds"
	eventMetric = "hyperfleet_adapter_event_duration_seconds"
	// deliveryMetric times the delivery backend's calls by op.
	deliveryMetric = "hyperfleet_adapter_delivery_call_duration_seconds"
)

// window is what several adapters' metrics say about the time between two
// scrapes of each.
type window struct {
	before, after [][]Sample
}

func (w window) delta(name string, labels map[string]string) float64 {
	total := 0.0
	for i := range w.after {
		a, _ := Value(w.after[i], name, labels)
		b, _ := Value(w.before[i], name, labels)
		total += a - b
	}
	return total
}

// mean is a histogram's mean over the window, in ms.
func (w window) mean(name string, labels map[string]string) float64 {
	n := w.delta(name+"_count", labels)
	if n == 0 {
		return 0
	}
	return round(w.delta(name+"_sum", labels)/n*1000, 3)
}

// quantile is a histogram's q-quantile over the window, in ms, from the
// buckets of every adapter added up.
func (w window) quantile(name string, labels map[string]string, q float64) float64 {
	var sum []Bucket
	for i := range w.after {
		d := SubBuckets(Histogram(w.after[i], name, labels), Histogram(w.before[i], name, labels))
		if sum == nil {
			sum = d
			continue
		}
		for j := range sum {
			if j < len(d) {
				sum[j].Count += d[j].Count
			}
		}
	}
	v, _ := Quantile(sum, q)
	return round(v*1000, 3)
}

func (w window) phases() Phases {
	ph := func(name string) float64 { return w.mean(phaseMetric, map[string]string{"phase": name}) }
	return Phases{
		ReadResource: ph("read_resource"), Build: ph("build"), Deliver: ph("deliver"),
		AwaitStatus: ph("await_status"), Report: ph("report"),
		GenerationRead: w.mean(deliveryMetric, map[string]string{"op": "get"}),
		Event:          w.mean(eventMetric, map[string]string{"outcome": "reconciled"}),
	}
}

func (w window) cpuSeconds() float64 { return w.delta("process_cpu_seconds_total", nil) }

// --- works and the adapter's own Maestro backend ---------------------------

// workBuilder builds the works the namespace adapter would deliver, with
// the same handler, so that the baselines apply exactly what the adapter
// applies. Works are built before the clock starts.
type workBuilder struct {
	handler handlers.Handler
	tmpl    clusterTemplate
}

func newWorkBuilder(t testing.TB, consumer string, tmpl clusterTemplate) *workBuilder {
	t.Helper()
	rule, err := handlers.ParseConsumerRule("fixed:" + consumer)
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.New(handlers.Config{Type: handlers.TypeNamespace, Consumer: rule})
	if err != nil {
		t.Fatal(err)
	}
	return &workBuilder{handler: h, tmpl: tmpl}
}

// work builds the work for cluster k at gen.
func (b *workBuilder) work(id string, k int, gen int64) (*workv1.ManifestWork, error) {
	res, err := hyperfleet.ParseResource(b.tmpl.render(id, k, gen), "benchmark cluster")
	if err != nil {
		return nil, err
	}
	works, err := b.handler.Build(handlers.Target{Resource: res, Cluster: res})
	if err != nil {
		return nil, err
	}
	if len(works) != 1 {
		return nil, fmt.Errorf("namespace handler built %d works, want 1", len(works))
	}
	return works[0], nil
}

// applier applies a work and waits until the agent reports it Applied and
// Available; create says whether it is new.
type applier interface {
	apply(ctx context.Context, w *workv1.ManifestWork, create bool) (time.Duration, error)
}

// backendClient is the adapter's delivery layer alone: maestro/remote's
// Backend and a maestro.Tracker, as the pipeline uses them, with no broker
// and no pipeline. Between the raw source client and the adapter, it says
// which layer an overhead belongs to.
type backendClient struct {
	backend *remote.Backend
	tracker *maestro.Tracker
}

func newBackendClient(t testing.TB, env maestrotest.Env, sourceID string) *backendClient {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	be, err := remote.New(ctx, remote.Options{GRPCEndpoint: env.GRPCEndpoint, HTTPEndpoint: env.HTTPEndpoint, SourceID: sourceID, Insecure: true, Logger: log})
	if err != nil {
		t.Fatalf("Maestro backend: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	tr := deliverytest.RunTracker(t, be, log)
	if err := be.Ready(ctx); err != nil {
		t.Fatalf("Maestro backend not ready: %v", err)
	}
	return &backendClient{backend: be, tracker: tr}
}

// apply applies w and waits as the pipeline does: until the agent reports
// it Applied and Available at the version the write produced.
func (r *backendClient) apply(ctx context.Context, w *workv1.ManifestWork, _ bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	start := time.Now()
	// As pipeline/reconcile.go does: the waiter is registered before the
	// write and starts from what the write returned, with no read.
	e := r.tracker.Expect(w.Namespace, w.Name)
	stored, err := r.backend.Apply(ctx, w)
	if err != nil {
		e.Cancel()
		return 0, fmt.Errorf("apply %s: %w", w.Name, err)
	}
	if _, err := e.Await(ctx, stored, func(got *workv1.ManifestWork) bool {
		return got != nil && got.Generation >= stored.Generation && maestro.StatusSettled(got)
	}); err != nil {
		return 0, fmt.Errorf("work %s not Applied and Available: %w", w.Name, err)
	}
	return time.Since(start), nil
}

// maestroCPU returns the CPU time (user + system, seconds) the local
// Maestro server has used so far, from /proc/<pid>/stat; its pid file is in
// deploy/local/maestro.sh's state directory. ok is false when it cannot be
// read (a server not started by the script, or on another host).
func maestroCPU() (seconds float64, ok bool) {
	dir := os.Getenv("MAESTRO_STATE_DIR")
	if dir == "" {
		dir = "/tmp/hyperfleet-maestro"
	}
	pid, err := os.ReadFile(filepath.Join(dir, "maestro.pid"))
	if err != nil {
		return 0, false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "stat"))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; fields after its ")"
	// start at field 3, so utime (14) and stime (15) are 11 and 12 there.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clockTicks = 100 // USER_HZ: 100 on every Linux this runs on
	return (utime + stime) / clockTicks, true
}

// maestroCPUMeter measures Maestro's CPU time over a window.
type maestroCPUMeter struct {
	start float64
	ok    bool
}

func startMaestroCPU() maestroCPUMeter {
	s, ok := maestroCPU()
	return maestroCPUMeter{s, ok}
}

// perOpMs is Maestro's CPU time since start per op, in ms (0 if unknown).
func (m maestroCPUMeter) perOpMs(ops int) float64 {
	end, ok := maestroCPU()
	if !m.ok || !ok || ops == 0 {
		return 0
	}
	return round((end-m.start)/float64(ops)*1000, 3)
}

// startAgent registers consumer on Maestro and runs an agent on it for the
// rest of the test: Maestro's real work agent on the local kube-apiserver
// when real is set (maestro/agenttest), the simulated one otherwise.
func startAgent(t testing.TB, env maestrotest.Env, consumer string, real bool) {
	t.Helper()
	if real {
		agenttest.Start(t, consumer)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	a, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, consumer,
		maestrotest.AgentOptions{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
}

// --- raw RabbitMQ -----------------------------------------------------------

// rawConsume preloads n Sentinel events into a fresh durable queue and
// drains it with one amqp091 consumer, manual acks, at the given prefetch:
// the broker's own rate, which bounds any consumer of it.
func rawConsume(t testing.TB, prefetch, n int) ConsumeRun {
	t.Helper()
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := "bench-raw-consume-" + randomHex(t, 4)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = ch.QueueDelete(queue, false, false, false) }()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"specversion":"1.0","id":"0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41","source":"hyperfleet-sentinel",` +
		`"type":"com.redhat.hyperfleet.cluster.reconcile","datacontenttype":"application/json","data":{"generation":1,` +
		`"href":"/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab","id":"019466a0-8f8e-7abc-9def-0123456789ab","kind":"Cluster"}}`)
	ctx := context.Background()
	var pending []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, rabbitmq.SentinelPublishing(body, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, dc)
		if len(pending) == 500 || i == n-1 {
			for _, dc := range pending {
				if !dc.Wait() {
					t.Fatal("preload publish nacked")
				}
			}
			pending = pending[:0]
		}
	}
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer cch.Close()
	if err := cch.Qos(prefetch, 0, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deliveries, err := cch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		d, ok := <-deliveries
		if !ok {
			t.Fatal("consumer closed")
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	return ConsumeRun{Prefetch: prefetch, Messages: n, Seconds: round(secs, 3), Rate: round(float64(n)/secs, 1)}
}

// --- pprof ------------------------------------------------------------------

// pprofTop runs `go tool pprof` on a profile of bin and returns its output
// without the File/Build ID/Time lines, which say nothing a reader needs.
func pprofTop(bin, profile string, args ...string) (string, error) {
	all := append([]string{"tool", "pprof"}, args...)
	all = append(all, bin, profile)
	out, err := exec.Command("go", all...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n"), nil
}

// pprofFocus is what a profile attributes to functions matching pattern:
// the amount (base units) and its percentage of the whole profile. A
// pattern matching no sample is 0, 0.
func pprofFocus(bin, profile, pattern string, args ...string) (float64, float64, error) {
	all := append([]string{"tool", "pprof", "-top", "-focus=" + pattern, "-nodecount=1000000", "-nodefraction=0", "-edgefraction=0"}, args...)
	all = append(all, bin, profile)
	out, err := exec.Command("go", all...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "matched no samples") {
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("go %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	amount, pct, _, err := PprofShowing(string(out))
	return amount, pct, err
}
