package jobs

// Integration tests: the Job delivery against a real kube-apiserver with
// etcd (deploy/local/kube/kube.sh) and a real Maestro server
// (deploy/local/maestro.sh) with a simulated agent, driven by the real
// pipeline. The test stands in for the kubelet, the Job controller and the
// status-reporter (kubelet_test.go): it runs the real maestro-cli with the
// Job's own command line. Without the servers the tests skip, or fail under
// REQUIRE_INTEGRATION=1.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// itEnv is one integration test's world: a namespace on the test control
// plane, a consumer on the local Maestro with an agent (unless none is
// wanted), and a source id of its own. The delivery runs as the adapter's
// service account, bound to the Role of deploy/kustomize/components/job-delivery/role.yaml: it
// must manage with exactly what the deployment grants.
type itEnv struct {
	cs       kubernetes.Interface // the cluster's own (the node stand-in)
	adapter  kubernetes.Interface // the adapter's service account
	ns       string
	maestro  maestrotest.Env
	consumer string
	sourceID string
}

func newITEnv(t testing.TB, withAgent bool) *itEnv {
	t.Helper()
	cfg := kubetest.Require(t)
	menv := maestrotest.Require(t)
	requireCLI(t) // build it before any clock starts
	cs := kubernetes.NewForConfigOrDie(cfg)
	suffix := randomSuffix(t)
	e := &itEnv{cs: cs, ns: kubetest.Namespace(t, cs), maestro: menv, consumer: "jobs-" + suffix, sourceID: "jobs-it-" + suffix}
	e.adapter = adapterClient(t, cfg, cs, e.ns)
	if withAgent {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := maestrotest.RegisterConsumer(ctx, menv.HTTPEndpoint, e.consumer); err != nil {
			t.Fatal(err)
		}
		// The stand-in: these tests follow the Job's life (kubelet stand-in,
		// status-reporter, deadlines); TestRealAgentJobDelivery runs a Job's
		// work through the real agent.
		agent, err := maestrotest.StartAgent(context.Background(), menv.GRPCBrokerEndpoint, e.consumer, maestrotest.AgentOptions{Logf: func(string, ...any) {}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(agent.Stop)
	}
	return e
}

// adapterClient binds the deployment's Role to the adapter's service
// account in ns and returns a client acting as that account.
func adapterClient(t testing.TB, cfg *rest.Config, cs kubernetes.Interface, ns string) kubernetes.Interface {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kustomize", "components", "job-delivery", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(raw, &role); err != nil {
		t.Fatalf("role.yaml: %v", err)
	}
	ctx := testContext(t)
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const sa = "hyperfleet-maestro-adapter"
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	client := kubernetes.NewForConfigOrDie(as)
	// The authorizer learns of the binding through a watch: wait for it.
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return client
		}
		if time.Now().After(deadline) {
			t.Fatalf("the adapter's Role did not take effect: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *itEnv) options(t testing.TB, mutate func(*Options)) Options {
	o := Options{
		Namespace: e.ns,
		Image:     "quay.io/openshift-hyperfleet/maestro-adapter:test",
		// Sized for a test: maestro-cli waits 20s for the agent at most.
		CLITimeout:     20 * time.Second,
		ActiveDeadline: 60 * time.Second,
		DeleteWait:     30 * time.Second,
		Maestro: MaestroOptions{
			GRPCEndpoint: e.maestro.GRPCEndpoint,
			HTTPEndpoint: e.maestro.HTTPEndpoint,
			SourceID:     e.sourceID,
			Insecure:     true, // the local Maestro serves plaintext
		},
		Logger: maestrotest.SlogLogger(t),
	}
	if mutate != nil {
		mutate(&o)
	}
	return o
}

func (e *itEnv) delivery(t testing.TB, mutate func(*Options)) *Delivery {
	t.Helper()
	d, err := New(testContext(t), e.adapter, e.options(t, mutate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// harness is the real pipeline on a delivery, with a captured status sink.
type harness struct {
	p    *pipeline.Pipeline
	sink *captureSink
}

func newHarness(t testing.TB, e *itEnv, d maestro.Delivery) *harness {
	t.Helper()
	log := maestrotest.SlogLogger(t)
	tracker := deliverytest.RunTracker(t, d, log)
	rule, err := handlers.ParseConsumerRule("fixed:" + e.consumer)
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.New(handlers.Config{Type: handlers.TypeNamespace, Consumer: rule})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.DefaultConfig()
	cfg.AdapterName = handlers.TypeNamespace
	cfg.StatusTimeout = 45 * time.Second
	cfg.RetryBaseDelay, cfg.RetryMaxDelay = 10*time.Millisecond, 100*time.Millisecond
	cfg.Coalesce = false
	sink := &captureSink{}
	p, err := pipeline.New(cfg, pipeline.Deps{Decoder: events.NewDecoder(), Resources: noAPI{}, Handler: h,
		Delivery: d, Tracker: tracker, Sink: sink, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{p: p, sink: sink}
}

// run feeds the messages through the pipeline and returns how each was
// settled.
func (h *harness) run(t testing.TB, msgs ...*events.Message) []recording.Outcome {
	t.Helper()
	src := recording.NewSource(msgs)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := h.p.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	return src.Outcomes()
}

type noAPI struct{}

func (noAPI) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	return nil, failure.Permanentf("the test reads no API (asked for %s)", href)
}

type captureSink struct {
	mu     sync.Mutex
	events []cloudevents.Event
}

func (s *captureSink) Publish(_ context.Context, ev cloudevents.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *captureSink) reports(t testing.TB) []hyperfleet.StatusReport {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hyperfleet.StatusReport
	for _, ev := range s.events {
		var env hyperfleet.StatusEnvelope
		if err := ev.DataAs(&env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env.Report)
	}
	return out
}

// clusterEvent is a Sentinel event with a snapshot of the sample cluster
// at gen; deleted marks it being deleted.
func clusterEvent(t testing.TB, clusterID string, gen int64, deleted bool) *events.Message {
	t.Helper()
	var res map[string]any
	if err := json.Unmarshal([]byte(readSample(t, "cluster-get-response.json")), &res); err != nil {
		t.Fatal(err)
	}
	res["id"], res["name"], res["generation"] = clusterID, "c-"+clusterID, gen
	res["href"] = "/api/hyperfleet/v1/clusters/" + clusterID
	if deleted {
		res["deleted_time"] = time.Now().UTC().Format(time.RFC3339)
	}
	snapshot, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	id := "evt-" + randomSuffix(t)
	body := fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"hyperfleet-sentinel","type":"com.redhat.hyperfleet.cluster.reconcile","datacontenttype":"application/json","data":{"id":%q,"kind":"Cluster","href":"/api/hyperfleet/v1/clusters/%s","generation":%d}}`,
		id, clusterID, clusterID, gen)
	return &events.Message{TransportID: id, Body: body, Snapshot: snapshot, Attempt: 1}
}

func conditions(r hyperfleet.StatusReport) map[string]hyperfleet.Condition {
	out := map[string]hyperfleet.Condition{}
	for _, c := range r.Conditions {
		out[c.Type] = c
	}
	return out
}

// requireReport checks the report's conditions: want maps type to
// "Status" or "Status/Reason".
func requireReport(t testing.TB, what string, r hyperfleet.StatusReport, want map[string]string) {
	t.Helper()
	got := conditions(r)
	for typ, w := range want {
		status, reason, _ := strings.Cut(w, "/")
		c := got[typ]
		if c.Status != status || (reason != "" && c.Reason != reason) {
			t.Errorf("%s: %s = %s/%s (%q), want %s", what, typ, c.Status, c.Reason, c.Message, w)
		}
	}
}

func requireSettled(t testing.TB, outcomes []recording.Outcome, want int) {
	t.Helper()
	if len(outcomes) != want {
		t.Fatalf("%d messages settled, want %d: %+v", len(outcomes), want, outcomes)
	}
	for _, o := range outcomes {
		if o.Settlement != "ack" {
			t.Fatalf("message settled %+v, want ack", o)
		}
	}
}

// TestIntegrationLifecycle: a cluster's namespace work goes through create,
// update and delete as Jobs running the real maestro-cli against the real
// Maestro; the status-reporter's condition on each Job becomes the status
// event, Applied and Available True, then Finalized True.
func TestIntegrationLifecycle(t *testing.T) {
	e := newITEnv(t, true)
	d := e.delivery(t, func(o *Options) { o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:test" })
	n := startNode(t, e.cs, e.ns, nil)
	h := newHarness(t, e, d)
	clusterID := "0194" + randomSuffix(t)

	created := clusterEvent(t, clusterID, 1, false)
	requireSettled(t, h.run(t, created), 1)
	reports := h.sink.reports(t)
	if len(reports) != 1 {
		t.Fatalf("%d reports for one event, want 1", len(reports))
	}
	requireReport(t, "generation 1", reports[0], map[string]string{
		hyperfleet.ConditionApplied: "True", hyperfleet.ConditionAvailable: "True", hyperfleet.ConditionHealth: "True",
	})
	// The Job's maestro-cli acted as the adapter: the work is at Maestro
	// under the adapter's source id.
	works := maestrotest.Bundles(t, e.maestro.HTTPEndpoint, e.sourceID)
	if len(works) != 1 {
		t.Fatalf("Maestro holds %d works of source %s, want 1", len(works), e.sourceID)
	}
	for name, b := range works {
		if b.ConsumerName != e.consumer || b.Metadata.Annotations[workmeta.AnnotationGeneration] != "1" {
			t.Errorf("work %s on %s at generation %q; want consumer %s, generation 1", name, b.ConsumerName,
				b.Metadata.Annotations[workmeta.AnnotationGeneration], e.consumer)
		}
	}
	runs := n.history()
	if len(runs) != 1 || runs[0].exitCode != 0 {
		t.Fatalf("node runs %+v, want one successful maestro-cli run", runs)
	}
	// The Job names the CloudEvent it was started for, and maestro-cli
	// logs it.
	first := created.TransportID // the CloudEvent id, too
	if job, err := e.cs.BatchV1().Jobs(e.ns).Get(testContext(t), runs[0].job, metav1.GetOptions{}); err != nil ||
		job.Annotations[AnnotationSentinelEventID] != first {
		t.Errorf("Job %s (err %v) annotated %v, want %s=%s", runs[0].job, err, job.Annotations, AnnotationSentinelEventID, first)
	}
	if !strings.Contains(runs[0].output, "event_id="+first) {
		t.Errorf("maestro-cli output does not carry event_id=%s:\n%s", first, runs[0].output)
	}
	args := strings.Join(runs[0].args, " ")
	for _, want := range []string{"apply", "--consumer=" + e.consumer, "--source-id=" + e.sourceID, "--watch", "--results-format=status-reporter"} {
		if !strings.Contains(args, want) {
			t.Errorf("maestro-cli ran with %q, lacking %q", args, want)
		}
	}
	if !strings.Contains(runs[0].results, `"status": "success"`) {
		t.Errorf("results file %q does not say success", runs[0].results)
	}

	// Generation 2: a new Job, the work updated in place.
	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 2, false)), 1)
	reports = h.sink.reports(t)
	requireReport(t, "generation 2", reports[len(reports)-1], map[string]string{
		hyperfleet.ConditionApplied: "True", hyperfleet.ConditionAvailable: "True", hyperfleet.ConditionHealth: "True",
	})
	if reports[len(reports)-1].ObservedGeneration != 2 {
		t.Errorf("report for generation %d, want 2", reports[len(reports)-1].ObservedGeneration)
	}
	for name, b := range maestrotest.Bundles(t, e.maestro.HTTPEndpoint, e.sourceID) {
		if b.Metadata.Annotations[workmeta.AnnotationGeneration] != "2" {
			t.Errorf("work %s at generation %q after the second Job, want 2", name, b.Metadata.Annotations[workmeta.AnnotationGeneration])
		}
	}

	// Deletion: a delete Job; the work is gone at Maestro and the report
	// says Finalized.
	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 3, true)), 1)
	reports = h.sink.reports(t)
	requireReport(t, "deleting", reports[len(reports)-1], map[string]string{
		hyperfleet.ConditionFinalized: "True", hyperfleet.ConditionHealth: "True",
	})
	if left := maestrotest.Bundles(t, e.maestro.HTTPEndpoint, e.sourceID); len(left) != 0 {
		t.Errorf("Maestro still holds %d works after the delete Job", len(left))
	}
	if runs := n.history(); len(runs) != 3 || !strings.HasPrefix(strings.Join(runs[2].args, " "), "delete ") {
		t.Errorf("node runs %d, the last %+v; want apply, apply, delete", len(runs), runs[len(runs)-1].args)
	}
}

// TestIntegrationRedeliveryRunsOnce: the same event delivered twice (the
// broker redelivered it, or Sentinel re-published the same generation)
// runs maestro-cli once; both deliveries report.
func TestIntegrationRedeliveryRunsOnce(t *testing.T) {
	e := newITEnv(t, true)
	d := e.delivery(t, func(o *Options) { o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:test" })
	n := startNode(t, e.cs, e.ns, nil)
	h := newHarness(t, e, d)
	clusterID := "0194" + randomSuffix(t)
	msg := clusterEvent(t, clusterID, 1, false)
	again := *msg
	again.Attempt = 2
	requireSettled(t, h.run(t, msg, &again), 2)
	for i, r := range h.sink.reports(t) {
		requireReport(t, fmt.Sprintf("report %d", i), r, map[string]string{hyperfleet.ConditionAvailable: "True"})
	}
	if runs := n.history(); len(runs) != 1 {
		t.Fatalf("maestro-cli ran %d times for one event delivered twice, want once", len(runs))
	}
	list, err := e.cs.BatchV1().Jobs(e.ns).List(testContext(t), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("%d Jobs (err %v), want 1", len(list.Items), err)
	}
}

// TestIntegrationUnknownConsumer: maestro-cli fails (the consumer is not
// registered with Maestro); the report says Health=False with the reason,
// read from the status-reporter's condition, or without a status-reporter
// from the Job's failure and the pod's termination message.
func TestIntegrationUnknownConsumer(t *testing.T) {
	for _, c := range []struct {
		name     string
		reporter string
		reason   string // of Applied and Available
		message  string // in Health's message
	}{
		{"status-reporter", "quay.io/openshift-hyperfleet/status-reporter:test", "ConsumerNotRegistered", "ConsumerNotRegistered:"},
		{"termination-message", "", "BackoffLimitExceeded", "exited with code 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newITEnv(t, false) // no consumer registered
			d := e.delivery(t, func(o *Options) { o.StatusReporterImage = c.reporter })
			n := startNode(t, e.cs, e.ns, nil)
			h := newHarness(t, e, d)
			requireSettled(t, h.run(t, clusterEvent(t, "0194"+randomSuffix(t), 1, false)), 1)
			reports := h.sink.reports(t)
			if len(reports) != 1 {
				t.Fatalf("%d reports, want 1", len(reports))
			}
			r := reports[0]
			t.Logf("report: %+v", r.Conditions)
			requireReport(t, "unknown consumer", r, map[string]string{
				hyperfleet.ConditionApplied:   "False/" + c.reason,
				hyperfleet.ConditionAvailable: "False/" + c.reason,
				hyperfleet.ConditionHealth:    "False",
			})
			if h := conditions(r)[hyperfleet.ConditionHealth]; !strings.Contains(h.Message, c.message) {
				t.Errorf("Health message %q does not contain %q", h.Message, c.message)
			}
			runs := n.history()
			if len(runs) != 1 || runs[0].exitCode == 0 {
				t.Fatalf("node runs %+v, want one failed maestro-cli run", runs)
			}
			if c.reporter == "" && !strings.Contains(conditions(r)[hyperfleet.ConditionApplied].Message, e.consumer) {
				t.Errorf("Applied message %q does not carry maestro-cli's error line (naming the consumer %s)",
					conditions(r)[hyperfleet.ConditionApplied].Message, e.consumer)
			}
		})
	}
}

// TestIntegrationDeadlineOverrun: the pod never runs (unschedulable, image
// not pullable) and the Job controller fails the Job at its deadline: the
// report says Health=False, DeadlineExceeded.
func TestIntegrationDeadlineOverrun(t *testing.T) {
	e := newITEnv(t, true)
	d := e.delivery(t, nil)
	n := startNode(t, e.cs, e.ns, func(*batchv1.Job) podBehaviour { return podNeverStarts })
	h := newHarness(t, e, d)
	requireSettled(t, h.run(t, clusterEvent(t, "0194"+randomSuffix(t), 1, false)), 1)
	reports := h.sink.reports(t)
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	requireReport(t, "deadline", reports[0], map[string]string{
		hyperfleet.ConditionApplied:   "False/" + ReasonDeadline,
		hyperfleet.ConditionAvailable: "False/" + ReasonDeadline,
		hyperfleet.ConditionHealth:    "False",
	})
	if h := conditions(reports[0])[hyperfleet.ConditionHealth]; !strings.Contains(h.Message, ReasonDeadline) {
		t.Errorf("Health message %q does not name %s", h.Message, ReasonDeadline)
	}
	if runs := n.history(); len(runs) != 0 {
		t.Errorf("maestro-cli ran %d times for a pod that never started", len(runs))
	}
}

// TestIntegrationStaleGenerationIsSuperseded: the work is already at
// generation 2 (here applied directly over gRPC, as another adapter
// deployment or a Job whose record expired would leave it) when a Job for
// generation 1 runs. maestro-cli refuses to move it back (exit 2,
// StaleGeneration); the event is superseded, not failed: acknowledged, no
// Health=False report, the work left at generation 2.
func TestIntegrationStaleGenerationIsSuperseded(t *testing.T) {
	e := newITEnv(t, true)
	direct, err := remote.New(testContext(t), remote.Options{GRPCEndpoint: e.maestro.GRPCEndpoint,
		HTTPEndpoint: e.maestro.HTTPEndpoint, SourceID: e.sourceID, Insecure: true, Logger: maestrotest.SlogLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	clusterID := "0194" + randomSuffix(t)
	requireSettled(t, newHarness(t, e, direct).run(t, clusterEvent(t, clusterID, 2, false)), 1)

	d := e.delivery(t, func(o *Options) { o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:test" })
	n := startNode(t, e.cs, e.ns, nil)
	h := newHarness(t, e, d)
	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 1, false)), 1)
	if reports := h.sink.reports(t); len(reports) != 0 {
		t.Errorf("a superseded generation was reported: %+v", reports)
	}
	runs := n.history()
	if len(runs) != 1 || runs[0].exitCode != 2 || !strings.Contains(runs[0].results, maestro.ReasonStaleGeneration) {
		t.Fatalf("node runs %+v, want one maestro-cli run refused with %s", runs, maestro.ReasonStaleGeneration)
	}
	for name, b := range maestrotest.Bundles(t, e.maestro.HTTPEndpoint, e.sourceID) {
		if g := b.Metadata.Annotations[workmeta.AnnotationGeneration]; g != "2" {
			t.Errorf("work %s at generation %q, want 2", name, g)
		}
	}
}

// TestIntegrationSecretTravelsInASecret: a work carrying a Secret (a pull
// secret) is handed to its Job in a Secret, owned by the Job, never in a
// ConfigMap; the real maestro-cli reads it from there and applies it.
func TestIntegrationSecretTravelsInASecret(t *testing.T) {
	e := newITEnv(t, true)
	d := e.delivery(t, nil)
	startNode(t, e.cs, e.ns, nil)
	tracker := deliverytest.RunTracker(t, d, maestrotest.SlogLogger(t))
	ctx := testContext(t)

	w := namespaceWork(t, 1)
	w.Namespace = e.consumer
	w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{
		Raw: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"pull-secret","namespace":"default"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"eyJhdXRocyI6e319"}}`)}})
	stored, err := d.Apply(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, waitTimeout)
	got, err := tracker.Await(actx, w.Namespace, w.Name, func(w *workv1.ManifestWork) bool {
		return w != nil && w.Generation >= stored.Generation && maestro.StatusSettled(w)
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if s, reason := condStatus(got, workv1.WorkApplied); s != metav1.ConditionTrue {
		t.Fatalf("Applied=%s (%s), want True: maestro-cli did not read the work from the Secret", s, reason)
	}

	job := onlyJob(t, e.cs, e.ns, w, OpApply)
	secret, err := e.cs.CoreV1().Secrets(e.ns).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the work's Secret: %v", err)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != job.UID {
		t.Errorf("Secret owners %+v, want the Job %s", secret.OwnerReferences, job.UID)
	}
	if !strings.Contains(string(secret.Data[ConfigMapKey]), "dockerconfigjson") {
		t.Errorf("Secret %s does not hold the work", secret.Name)
	}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigMap %s exists too (err %v): the Secret's data would be in plain sight", job.Name, err)
	}
	if b, ok := maestrotest.Bundles(t, e.maestro.HTTPEndpoint, e.sourceID)[w.Name]; !ok || b.ConsumerName != e.consumer {
		t.Errorf("Maestro does not hold work %s on %s", w.Name, e.consumer)
	}
}
