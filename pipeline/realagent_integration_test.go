package pipeline

// End-to-end tests of every adapter type on Maestro's real agent: the
// pipeline in-process with DELIVERY=maestro semantics (maestro/remote, as in
// remote_integration_test.go) delivers through the local Maestro to a real
// agent (maestro/agenttest), which applies the works to the local
// kube-apiserver with the real OpenShift/HyperShift CRDs installed
// (handlers/crdtest) and kube-controller-manager finalizing namespaces.
// They need the local stack (`eval "$(deploy/local/maestro.sh env)"; eval
// "$(deploy/local/kube/kube.sh env)"`): without it they skip, or fail under
// REQUIRE_INTEGRATION=1.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	hyperv1 "github.com/openshift/hypershift/api/hypershift/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers/crdtest"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
)

// realAgentWait bounds each wait on the real agent. It applies in well under
// a second and finishes a namespace's deletion in about 6 s (the namespace
// controller's fixed 5 s wait); this covers a busy 2-core machine.
const realAgentWait = 60 * time.Second

// The recordings' first cluster, which every real-agent run renames so that
// reruns and other tests on the shared kube-apiserver never meet its
// objects.
const (
	recordedClusterID   = "019466a0-8f8e-7abc-9def-0123456789ab"
	recordedClusterName = "hp-cluster-abc12"
)

var (
	gvrNodePools          = hyperv1.GroupVersion.WithResource("nodepools")
	gvrIngressControllers = operatorv1.GroupVersion.WithResource("ingresscontrollers")
	gvrOAuths             = configv1.GroupVersion.WithResource("oauths")
)

// realCluster is the kube-apiserver the real agent applies to, as the test
// reads it.
type realCluster struct {
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newRealCluster(t *testing.T, agents *agenttest.Agents) *realCluster {
	t.Helper()
	kube, err := kubernetes.NewForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	return &realCluster{kube: kube, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// object reads the live object a manifest describes; nil when NotFound.
func (c *realCluster) object(ctx context.Context, manifest *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := manifest.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	got, err := c.dyn.Resource(m.Resource).Namespace(manifest.GetNamespace()).Get(ctx, manifest.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return got, err
}

// ensureNamespace creates ns unless it exists, as a management cluster has
// it before any adapter runs; remove deletes it when the test ends.
func (c *realCluster) ensureNamespace(t *testing.T, ns string, remove bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), realAgentWait)
	defer cancel()
	for {
		got, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err == nil && got.DeletionTimestamp == nil {
			break
		}
		if apierrors.IsNotFound(err) {
			_, err = c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				continue
			}
		}
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("namespace %s: %v", ns, err)
		}
		// Terminating (a previous run's): wait for it to go.
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s is still terminating: %v", ns, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if remove {
		t.Cleanup(func() {
			_ = c.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		})
	}
}

// removeLeftover deletes a fixed-name object (the OAuth singleton, the
// default IngressController) that a crashed earlier run may have left, and
// waits until it is gone, so that this run's deletion check sees only its
// own.
func (c *realCluster) removeLeftover(t *testing.T, gvr schema.GroupVersionResource, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), realAgentWait)
	defer cancel()
	r := c.dyn.Resource(gvr).Namespace(ns)
	if err := r.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting leftover %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	for {
		if _, err := r.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("leftover %s %s/%s not gone: %v", gvr.Resource, ns, name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeStatus writes obj's status through the status subresource, as the
// operator owning the kind would.
func (c *realCluster) writeStatus(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, status any) error {
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	r := c.dyn.Resource(gvr).Namespace(ns)
	obj, err := r.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.Object["status"] = st
	_, err = r.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err
}

// snapshotReader serves the newest snapshot fed of each resource, as the
// HyperFleet API would: the status watcher reads the resource it reports
// on.
type snapshotReader struct {
	mu     sync.Mutex
	byHref map[string][]byte
}

func (r *snapshotReader) feed(t *testing.T, msgs ...*events.Message) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byHref == nil {
		r.byHref = map[string][]byte{}
	}
	for _, m := range msgs {
		for _, snap := range [][]byte{m.Snapshot, m.OwnerSnapshot} {
			if len(snap) == 0 {
				continue
			}
			res, err := hyperfleet.ParseResource(snap, "recorded snapshot")
			if err != nil {
				t.Fatal(err)
			}
			r.byHref[res.Href] = snap
		}
	}
}

func (r *snapshotReader) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	r.mu.Lock()
	snap, ok := r.byHref[href]
	r.mu.Unlock()
	if !ok {
		return nil, hyperfleet.ErrNotFound
	}
	return hyperfleet.ParseResource(snap, "snapshot of "+href)
}

// realAgentCase is what one adapter type's run checks beyond what every
// type shares (the delivered manifests are in the kube-apiserver, the
// reports say Applied/Available/Health and Finalized).
type realAgentCase struct {
	typ string
	// prepare creates what a management cluster has before the adapter
	// runs.
	prepare func(t *testing.T, c *realCluster, run *realRun)
	// check asserts the type's own fields of the live objects at gen.
	check func(t *testing.T, c *realCluster, run *realRun, gen int64)
	// status, when set, writes the status of a custom resource through its
	// status subresource and returns the feedback the report must then
	// carry: kind -> feedback name -> value.
	status func(t *testing.T, c *realCluster, run *realRun) map[string]map[string]any
}

// realRun is one type's renamed cluster.
type realRun struct {
	clusterID, clusterName, namespace string
}

func (r *realRun) rename(t *testing.T, msgs []*events.Message) []*events.Message {
	t.Helper()
	repl := strings.NewReplacer(recordedClusterID, r.clusterID, recordedClusterName, r.clusterName)
	out := make([]*events.Message, 0, len(msgs))
	for _, m := range msgs {
		c := *m
		c.Body = []byte(repl.Replace(string(m.Body)))
		if m.Snapshot != nil {
			c.Snapshot = json.RawMessage(repl.Replace(string(m.Snapshot)))
		}
		if m.OwnerSnapshot != nil {
			c.OwnerSnapshot = json.RawMessage(repl.Replace(string(m.OwnerSnapshot)))
		}
		out = append(out, &c)
	}
	return out
}

func getTyped[T any](t *testing.T, c *realCluster, gvr schema.GroupVersionResource, ns, name string) *T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), realAgentWait)
	defer cancel()
	u, err := c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return out
}

func wantGeneration(t *testing.T, what string, annotations map[string]string, gen int64) {
	t.Helper()
	if got := annotations["hyperfleet.io/generation"]; got != fmt.Sprint(gen) {
		t.Errorf("%s carries generation annotation %q, want %d", what, got, gen)
	}
}

func realAgentCases() []realAgentCase {
	landingZone := func(t *testing.T, c *realCluster, run *realRun) { c.ensureNamespace(t, run.namespace, true) }
	return []realAgentCase{
		{
			typ: handlers.TypeNamespace,
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				ctx := context.Background()
				ns, err := c.kube.CoreV1().Namespaces().Get(ctx, run.namespace, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if ns.Labels[handlers.LabelClusterName] != run.clusterName {
					t.Errorf("namespace %s labels %v, want %s=%s", ns.Name, ns.Labels, handlers.LabelClusterName, run.clusterName)
				}
				cm, err := c.kube.CoreV1().ConfigMaps(run.namespace).Get(ctx, handlers.ClusterInfoConfigMap, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if cm.Data["cluster-id"] != run.clusterID || cm.Data["platform"] != "gcp" || cm.Data["region"] != "us-central1" ||
					cm.Data["generation"] != fmt.Sprint(gen) {
					t.Errorf("ConfigMap %s/%s data %v at generation %d", run.namespace, cm.Name, cm.Data, gen)
				}
			},
		},
		{
			typ:     handlers.TypeNodePool,
			prepare: landingZone,
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				// gpu-pool: autoscaling off, nodeCount 1 then 3.
				gpu := getTyped[hyperv1.NodePool](t, c, gvrNodePools, run.namespace, "gpu-pool")
				want := map[int64]int32{1: 1, 2: 3}[gen]
				if gpu.Spec.Replicas == nil || *gpu.Spec.Replicas != want || gpu.Spec.AutoScaling != nil {
					t.Errorf("NodePool gpu-pool at generation %d: replicas %v, autoScaling %+v; want replicas %d", gen, gpu.Spec.Replicas, gpu.Spec.AutoScaling, want)
				}
				if gpu.Spec.Platform.Type != hyperv1.NonePlatform || !strings.Contains(gpu.Annotations[handlers.AnnotationGCPPlatform], `"machineType":"a2-highgpu-1g"`) {
					t.Errorf("NodePool gpu-pool: platform %q, %s annotation %q", gpu.Spec.Platform.Type, handlers.AnnotationGCPPlatform, gpu.Annotations[handlers.AnnotationGCPPlatform])
				}
				if gpu.Spec.ClusterName != run.clusterName || !strings.Contains(gpu.Spec.Release.Image, "ose-cluster-version-operator") {
					t.Errorf("NodePool gpu-pool: clusterName %q, release %q", gpu.Spec.ClusterName, gpu.Spec.Release.Image)
				}
				wantGeneration(t, "NodePool gpu-pool", gpu.Annotations, gen)
				// worker-pool-1: autoscaling 1..10.
				worker := getTyped[hyperv1.NodePool](t, c, gvrNodePools, run.namespace, "worker-pool-1")
				if as := worker.Spec.AutoScaling; as == nil || as.Min != 1 || as.Max != 10 || worker.Spec.Replicas != nil {
					t.Errorf("NodePool worker-pool-1: autoScaling %+v, replicas %v; want 1..10 and no replicas", as, worker.Spec.Replicas)
				}
				wantGeneration(t, "NodePool worker-pool-1", worker.Annotations, gen)
			},
			status: func(t *testing.T, c *realCluster, run *realRun) map[string]map[string]any {
				st := hyperv1.NodePoolStatus{Replicas: 1, Version: "4.14.0", Conditions: []hyperv1.NodePoolCondition{
					{Type: hyperv1.NodePoolReadyConditionType, Status: corev1.ConditionTrue, Reason: "AsExpected", LastTransitionTime: metav1.Now()},
				}}
				if err := c.writeStatus(context.Background(), gvrNodePools, run.namespace, "gpu-pool", st); err != nil {
					t.Fatalf("writing NodePool gpu-pool's status: %v", err)
				}
				return map[string]map[string]any{"NodePool/gpu-pool": {"replicas": 1, "version": "4.14.0", "ready": "True"}}
			},
		},
		{
			typ:     handlers.TypePullSecret,
			prepare: landingZone,
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				s, err := c.kube.CoreV1().Secrets(run.namespace).Get(context.Background(), handlers.PullSecretName, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var cfg struct {
					Auths map[string]json.RawMessage `json:"auths"`
				}
				if s.Type != corev1.SecretTypeDockerConfigJson || json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) != nil || cfg.Auths["registry.example.com"] == nil {
					t.Errorf("Secret %s/%s: type %s, keys %d; want a dockerconfigjson for registry.example.com", run.namespace, s.Name, s.Type, len(s.Data))
				}
				wantGeneration(t, "pull Secret", s.Annotations, gen)
			},
		},
		{
			typ: handlers.TypeIDP,
			prepare: func(t *testing.T, c *realCluster, _ *realRun) {
				c.removeLeftover(t, gvrOAuths, "", handlers.OAuthName)
			},
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				oauth := getTyped[configv1.OAuth](t, c, gvrOAuths, "", handlers.OAuthName)
				var names []string
				for _, p := range oauth.Spec.IdentityProviders {
					names = append(names, p.Name+"/"+string(p.Type))
				}
				want := map[int64]int{1: 1, 2: 2}[gen]
				if len(names) != want || names[0] != "corp-ldap/LDAP" || oauth.Spec.IdentityProviders[0].LDAP == nil ||
					oauth.Spec.IdentityProviders[0].LDAP.URL == "" {
					t.Errorf("OAuth cluster at generation %d: identity providers %v, want %d starting with corp-ldap/LDAP", gen, names, want)
				}
				if gen == 2 && (len(names) < 2 || !strings.HasSuffix(names[1], "/GitHub")) {
					t.Errorf("OAuth cluster at generation 2: identity providers %v, want a GitHub one added", names)
				}
				wantGeneration(t, "OAuth cluster", oauth.Annotations, gen)
			},
			status: func(t *testing.T, c *realCluster, _ *realRun) map[string]map[string]any {
				// OpenShift's OAuth status has no fields: whatever is written
				// is pruned to {}, which is what the whole-status feedback
				// then carries.
				if err := c.writeStatus(context.Background(), gvrOAuths, "", handlers.OAuthName, map[string]any{"pruned": "by the schema"}); err != nil {
					t.Fatalf("writing OAuth's status: %v", err)
				}
				return map[string]map[string]any{"OAuth/cluster": {"status": map[string]any{}}}
			},
		},
		{
			typ: handlers.TypeIngress,
			prepare: func(t *testing.T, c *realCluster, _ *realRun) {
				// On a management cluster the ingress operator's namespace
				// is always there; it stays, like on one.
				c.ensureNamespace(t, handlers.IngressControllerNamespace, false)
				c.removeLeftover(t, gvrIngressControllers, handlers.IngressControllerNamespace, handlers.IngressControllerName)
			},
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				ic := getTyped[operatorv1.IngressController](t, c, gvrIngressControllers, handlers.IngressControllerNamespace, handlers.IngressControllerName)
				if want := "apps." + run.clusterName + ".example.com"; ic.Spec.Domain != want || ic.Spec.Replicas == nil || *ic.Spec.Replicas != handlers.DefaultIngressReplicas {
					t.Errorf("IngressController: domain %q, replicas %v; want %s and %d", ic.Spec.Domain, ic.Spec.Replicas, want, handlers.DefaultIngressReplicas)
				}
				wantGeneration(t, "IngressController", ic.Annotations, gen)
			},
			status: func(t *testing.T, c *realCluster, run *realRun) map[string]map[string]any {
				domain := "apps." + run.clusterName + ".example.com"
				st := operatorv1.IngressControllerStatus{AvailableReplicas: 2, Domain: domain, Selector: "ingresscontroller=default",
					Conditions: []operatorv1.OperatorCondition{{Type: operatorv1.IngressControllerAvailableConditionType,
						Status: operatorv1.ConditionTrue, Reason: "AsExpected", LastTransitionTime: metav1.Now()}}}
				if err := c.writeStatus(context.Background(), gvrIngressControllers, handlers.IngressControllerNamespace, handlers.IngressControllerName, st); err != nil {
					t.Fatalf("writing the IngressController's status: %v", err)
				}
				return map[string]map[string]any{"IngressController/default": {"domain": domain, "availableReplicas": 2, "available": "True"}}
			},
		},
		{
			typ:     handlers.TypeTemplate,
			prepare: landingZone,
			check: func(t *testing.T, c *realCluster, run *realRun, gen int64) {
				ctx := context.Background()
				cm, err := c.kube.CoreV1().ConfigMaps(run.namespace).Get(ctx, "template-values", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				wantRelease := map[int64]string{1: "4.14.0", 2: "4.14.1"}[gen]
				if cm.Data["cluster-id"] != run.clusterID || cm.Data["release"] != wantRelease || !strings.Contains(cm.Data["networking.yaml"], "10.10.0.0/16") {
					t.Errorf("ConfigMap template-values at generation %d: data %v; want release %s", gen, cm.Data, wantRelease)
				}
				if _, err := c.kube.CoreV1().ServiceAccounts(run.namespace).Get(ctx, "cluster-agent", metav1.GetOptions{}); err != nil {
					t.Errorf("ServiceAccount cluster-agent: %v", err)
				}
				rb, err := c.kube.RbacV1().RoleBindings(run.namespace).Get(ctx, "cluster-agent-view", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rb.RoleRef.Name != "view" || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "cluster-agent" {
					t.Errorf("RoleBinding cluster-agent-view: roleRef %+v, subjects %+v", rb.RoleRef, rb.Subjects)
				}
			},
		},
	}
}

// Every adapter type and the template example, end to end on Maestro's
// real agent: the recorded events of testdata/recordings/<type>.jsonl
// (create, update, delete) go through the pipeline and Maestro to the
// agent, which applies the works to the kube-apiserver. After each event
// the objects hold what the handler built (every field of every delivered
// manifest, and the type's own fields checked by name), the report says
// Applied/Available/Health True (Finalized True after the deletion, when
// every object is gone); a custom resource's status written through its
// status subresource comes back as the work's status feedback and, through
// the status watch, in a report.
func TestRealAgentAdapterTypes(t *testing.T) {
	consumer := "pl-real-" + remoteSuffix(t)
	agents := agenttest.Start(t, consumer)
	crdtest.Install(t, agents.Kube)
	cluster := newRealCluster(t, agents)
	for _, tc := range realAgentCases() {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			testRealAgentType(t, agents, cluster, consumer, tc)
		})
	}
}

func testRealAgentType(t *testing.T, agents *agenttest.Agents, cluster *realCluster, consumer string, tc realAgentCase) {
	suffix := remoteSuffix(t)
	run := &realRun{clusterID: recordedClusterID[:24] + suffix + "0000", clusterName: "hp-" + suffix}
	run.namespace = handlers.DNSLabel(run.clusterID)
	msgs := run.rename(t, loadRecording(t, tc.typ+".jsonl"))
	// The first cluster's events (both node pools of it for nodepool),
	// by generation: create, update, delete.
	byGen := map[int64][]*events.Message{}
	for _, m := range msgs {
		if !bytes.Contains(m.Body, []byte(run.clusterID)) {
			continue
		}
		ev, err := events.NewDecoder().Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		byGen[ev.Generation] = append(byGen[ev.Generation], m)
	}
	if len(byGen[1]) == 0 || len(byGen[2]) == 0 || len(byGen[3]) == 0 || len(byGen) != 3 {
		t.Fatalf("recording %s.jsonl: cluster %s has events of %d generations, want 1, 2 and 3", tc.typ, recordedClusterID, len(byGen))
	}
	if tc.prepare != nil {
		tc.prepare(t, cluster, run)
	}

	reader := &snapshotReader{}
	h := newRemoteHarness(t, remoteHarnessOpts{
		env: agents.Maestro, adapterType: tc.typ, consumer: consumer, reader: reader,
		handlerCfg: func(c *handlers.Config) {
			if c.Type == handlers.TypeTemplate {
				c.TemplateDir = "../testdata/templates"
			}
		},
		cfg: func(c *Config) { c.StatusTimeout = realAgentWait },
	})
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = h.p.WatchStatus(ctx) }()
	t.Cleanup(func() { cancel(); <-watchDone })

	// feed runs one generation's events and returns each resource's last
	// report at that generation: the event's, or one the watcher published
	// since for the same generation.
	feed := func(gen int64) ([]hyperfleet.StatusReport, time.Duration) {
		t.Helper()
		reader.feed(t, byGen[gen]...)
		start := time.Now()
		out := h.run(t, byGen[gen]...)
		took := time.Since(start)
		for _, o := range out {
			if o.Settlement != "ack" {
				t.Fatalf("generation %d: %+v", gen, out)
			}
		}
		last := map[string]hyperfleet.StatusReport{}
		for _, r := range h.sink.reports(t) {
			if r.Report.ObservedGeneration == gen {
				last[r.Resource.ID] = r.Report
			}
		}
		if len(last) != len(byGen[gen]) {
			t.Fatalf("generation %d: reports on %d resources, want %d", gen, len(last), len(byGen[gen]))
		}
		var reps []hyperfleet.StatusReport
		for _, r := range last {
			if err := r.Validate(); err != nil {
				t.Error(err)
			}
			reps = append(reps, r)
		}
		return reps, took
	}
	requireAll := func(what string, reps []hyperfleet.StatusReport, want map[string]string) {
		t.Helper()
		for _, r := range reps {
			requireConditions(t, what, r, want)
		}
	}

	// Generation 1: created.
	reps, applied := feed(1)
	requireAll("create report", reps, map[string]string{"Applied": "True", "Available": "True", "Health": "True", "Finalized": "False"})
	works := h.deliveredWorks(t, reps)
	requireManifestsLive(t, cluster, works, 1)
	tc.check(t, cluster, run, 1)
	if tc.typ == handlers.TypeNamespace {
		// The Namespace's whole status comes back as feedback.
		requireFeedback(t, reps[0], map[string]map[string]any{"Namespace/" + run.namespace: {"status": map[string]any{"phase": "Active"}}})
	}

	// Feedback from a status written the way the kind's operator would.
	feedbackTook := "n/a (no custom resource status to write)"
	if tc.status != nil {
		seen := len(h.sink.reports(t))
		written := time.Now()
		want := tc.status(t, cluster, run)
		for _, r := range reps {
			if feedbackMatches(r, want) == "" {
				t.Fatalf("the create report already carries the feedback %v of a status not written yet", want)
			}
		}
		waitCond(t, realAgentWait, "the written status as feedback in a report", func() bool {
			for _, r := range h.sink.reports(t)[seen:] {
				if feedbackMatches(r.Report, want) == "" {
					return true
				}
			}
			return false
		})
		feedbackTook = time.Since(written).Round(time.Millisecond).String()
		// The works as Maestro's REST API has them carry the same values.
		var atMaestro []handlers.WorkReport
		for _, w := range works {
			got, err := h.backend.Get(context.Background(), w.Namespace, w.Name)
			if err != nil {
				t.Fatal(err)
			}
			atMaestro = append(atMaestro, handlers.WorkReport{Name: w.Name, Manifests: manifestsOf(got)})
		}
		if msg := feedbackIn(atMaestro, want); msg != "" {
			t.Errorf("works at Maestro: %s", msg)
		}
	}

	// Generation 2: the objects change in place.
	reps, _ = feed(2)
	requireAll("update report", reps, map[string]string{"Applied": "True", "Available": "True", "Health": "True"})
	works = h.deliveredWorks(t, reps)
	requireManifestsLive(t, cluster, works, 2)
	tc.check(t, cluster, run, 2)

	// Generation 3: deleted; every object goes.
	reps, deleted := feed(3)
	requireAll("delete report", reps, map[string]string{"Finalized": "True", "Health": "True"})
	requireManifestsGone(t, cluster, works)
	t.Logf("%s through the real agent: create event -> Applied/Available report %s; delete event -> Finalized report %s; status write -> feedback report %s",
		tc.typ, applied.Round(time.Millisecond), deleted.Round(time.Millisecond), feedbackTook)
}

// deliveredWorks reads from Maestro every work the reports list.
func (h *remoteHarness) deliveredWorks(t *testing.T, reps []hyperfleet.StatusReport) []*workv1.ManifestWork {
	t.Helper()
	var out []*workv1.ManifestWork
	for _, r := range reps {
		for _, wr := range reportWorks(t, r) {
			w, err := h.backend.Get(context.Background(), wr.Consumer, wr.Name)
			if err != nil {
				t.Fatalf("work %s/%s: %v", wr.Consumer, wr.Name, err)
			}
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		t.Fatal("the reports list no work")
	}
	return out
}

func reportWorks(t *testing.T, r hyperfleet.StatusReport) []handlers.WorkReport {
	t.Helper()
	raw, err := json.Marshal(r.Data[handlers.DataKeyWorks])
	if err != nil {
		t.Fatal(err)
	}
	var works []handlers.WorkReport
	if err := json.Unmarshal(raw, &works); err != nil {
		t.Fatalf("report data %s: %v", raw, err)
	}
	return works
}

// manifestsOf is the per-manifest feedback of a work in the report's form.
func manifestsOf(w *workv1.ManifestWork) []handlers.ManifestReport {
	var out []handlers.ManifestReport
	for _, m := range w.Status.ResourceStatus.Manifests {
		fb := map[string]any{}
		for _, v := range m.StatusFeedbacks.Values {
			switch {
			case v.Value.Integer != nil:
				fb[v.Name] = *v.Value.Integer
			case v.Value.String != nil:
				fb[v.Name] = *v.Value.String
			case v.Value.Boolean != nil:
				fb[v.Name] = *v.Value.Boolean
			case v.Value.JsonRaw != nil:
				var x any
				_ = json.Unmarshal([]byte(*v.Value.JsonRaw), &x)
				fb[v.Name] = x
			}
		}
		out = append(out, handlers.ManifestReport{Kind: m.ResourceMeta.Kind, Name: m.ResourceMeta.Name, Feedback: fb})
	}
	return out
}

// feedbackIn says what of want (kind/name -> feedback name -> value) the
// works' manifests lack; "" when they carry all of it.
func feedbackIn(works []handlers.WorkReport, want map[string]map[string]any) string {
	var missing []string
	for obj, values := range want {
		var got map[string]any
		found := false
		for _, w := range works {
			for _, m := range w.Manifests {
				if m.Kind+"/"+m.Name == obj {
					got, found = m.Feedback, true
				}
			}
		}
		if !found {
			missing = append(missing, obj+" not reported")
			continue
		}
		for name, v := range values {
			if !sameJSON(got[name], v) {
				missing = append(missing, fmt.Sprintf("%s feedback %s = %v, want %v", obj, name, got[name], v))
			}
		}
	}
	sort.Strings(missing)
	return strings.Join(missing, "; ")
}

func feedbackMatches(r hyperfleet.StatusReport, want map[string]map[string]any) string {
	raw, _ := json.Marshal(r.Data[handlers.DataKeyWorks])
	var works []handlers.WorkReport
	if err := json.Unmarshal(raw, &works); err != nil {
		return err.Error()
	}
	return feedbackIn(works, want)
}

func requireFeedback(t *testing.T, r hyperfleet.StatusReport, want map[string]map[string]any) {
	t.Helper()
	if msg := feedbackMatches(r, want); msg != "" {
		t.Errorf("report feedback: %s", msg)
	}
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// requireManifestsLive checks that every manifest of the works is in the
// kube-apiserver with every field the manifest sets (status aside, and
// metadata but for name, namespace, labels and annotations).
func requireManifestsLive(t *testing.T, c *realCluster, works []*workv1.ManifestWork, gen int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), realAgentWait)
	defer cancel()
	n := 0
	for _, w := range works {
		for _, m := range w.Spec.Workload.Manifests {
			manifest := &unstructured.Unstructured{}
			if err := manifest.UnmarshalJSON(m.Raw); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("%s %s/%s", manifest.GetKind(), manifest.GetNamespace(), manifest.GetName())
			live, err := c.object(ctx, manifest)
			if err != nil || live == nil {
				t.Errorf("generation %d: %s is not in the kube-apiserver (err %v)", gen, what, err)
				continue
			}
			want := manifest.DeepCopy().Object
			delete(want, "status")
			md := want["metadata"].(map[string]any)
			for k := range md {
				if k != "name" && k != "namespace" && k != "labels" && k != "annotations" {
					delete(md, k)
				}
			}
			for _, diff := range subsetDiff("", want, live.Object) {
				t.Errorf("generation %d: %s: %s", gen, what, diff)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("the works hold no manifest")
	}
}

// subsetDiff lists where got lacks or differs from a field want sets.
// Empty and null values in want match an absent field: the API server
// drops them.
func subsetDiff(path string, want, got any) []string {
	switch w := want.(type) {
	case nil:
		return nil
	case map[string]any:
		if len(w) == 0 && got == nil {
			return nil
		}
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %v, want an object", orRoot(path), got)}
		}
		var out []string
		for k, v := range w {
			out = append(out, subsetDiff(path+"."+k, v, g[k])...)
		}
		return out
	case []any:
		if len(w) == 0 && got == nil {
			return nil
		}
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s is %v, want %v", orRoot(path), got, w)}
		}
		var out []string
		for i := range w {
			out = append(out, subsetDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	default:
		if !sameJSON(want, got) && !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s is %v, want %v", orRoot(path), got, want)}
		}
		return nil
	}
}

func orRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// requireManifestsGone waits until no manifest of the works is in the
// kube-apiserver.
func requireManifestsGone(t *testing.T, c *realCluster, works []*workv1.ManifestWork) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), realAgentWait)
	defer cancel()
	for {
		var left []string
		for _, w := range works {
			for _, m := range w.Spec.Workload.Manifests {
				manifest := &unstructured.Unstructured{}
				if err := manifest.UnmarshalJSON(m.Raw); err != nil {
					t.Fatal(err)
				}
				live, err := c.object(ctx, manifest)
				if err != nil || live != nil {
					left = append(left, fmt.Sprintf("%s %s/%s (err %v)", manifest.GetKind(), manifest.GetNamespace(), manifest.GetName(), err))
				}
			}
		}
		if len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still in the kube-apiserver %s after the deletion was reported: %v", realAgentWait, left)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
