package agenttest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// feedbackSynced is the manifest condition the OCM agent sets on evaluating
// a manifest's feedback rules.
const feedbackSynced = "StatusFeedbackSynced"

// TestRealAgentFeedbackMatchesStandIn proves maestrotest's simulated agent
// against the real one: the same work, with feedback rules of every kind
// the agent distinguishes (scalars of each type, a whole object, a path
// matching several values, a missing path, a path that does not parse, a
// JSON value over 1 KiB, a rule for a version the object is not at; a
// config matched by a "*" pattern, a second matching config whose rules the
// agent ignores), goes to a real agent and to
// a stand-in, and both must report the same feedback values and the same
// StatusFeedbackSynced condition for every manifest. The objects are ones
// whose live state the stand-in can know: a Namespace (status phase Active),
// a ConfigMap and a Deployment read only in what the manifest sets (no
// Deployment controller runs here, and the stand-in's synthesized
// Deployment status is its own choice).
func TestRealAgentFeedbackMatchesStandIn(t *testing.T) {
	suffix := randomSuffix(t)
	real, standIn := "agenttest-fb-real-"+suffix, "agenttest-fb-sim-"+suffix
	agents := agenttest.Start(t, real)
	cs, err := kubernetes.NewForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*deadline+agentNoticesGone)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, agents.Maestro.HTTPEndpoint, standIn); err != nil {
		t.Fatal(err)
	}
	sim, err := maestrotest.StartAgent(context.Background(), agents.Maestro.GRPCBrokerEndpoint, standIn,
		maestrotest.AgentOptions{Logf: maestrotest.TestLogf(t, "stand-in: ")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	be, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: agents.Maestro.GRPCEndpoint, HTTPEndpoint: agents.Maestro.HTTPEndpoint,
		SourceID: "agenttest-fb-" + suffix, Logger: maestrotest.SlogLogger(t),
		Insecure: true, // the local Maestro serves plaintext
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })

	ns := "agenttest-fb-" + suffix
	const name = "feedback"
	t.Cleanup(func() {
		// Best effort, after a failure; the test deletes them itself.
		_ = be.Delete(context.Background(), real, name)
		_ = be.Delete(context.Background(), standIn, name)
	})
	got := map[string]*workv1.ManifestWork{}
	for _, consumer := range []string{real, standIn} {
		if _, err := be.Apply(ctx, feedbackWork(t, consumer, name, ns)); err != nil {
			t.Fatalf("apply to %s: %v", consumer, err)
		}
	}
	for _, consumer := range []string{real, standIn} {
		until := time.Now().Add(deadline)
		for {
			w, err := be.Get(ctx, consumer, name)
			if err == nil && feedbackEvaluated(w) {
				got[consumer] = w
				break
			}
			if time.Now().After(until) {
				t.Fatalf("%s: feedback not evaluated on every manifest within %s (err %v): %s", consumer, deadline, err, describe(w))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	want, have := feedbackOf(got[real]), feedbackOf(got[standIn])
	for _, k := range sortedKeys(want, have) {
		if want[k] != have[k] {
			t.Errorf("%s: real agent %.200s, stand-in %.200s", k, orNone(want[k]), orNone(have[k]))
		} else {
			t.Logf("%s: %.80s", k, orNone(want[k]))
		}
	}
	// The cases must have come out as the real agent's reader says they
	// do; otherwise the comparison proves less than it claims.
	for k, v := range map[string]string{
		"Namespace/phase":              "String:Active",
		"Namespace/name":               "String:" + ns,
		"Namespace/status":             `JsonRaw:{"phase":"Active"}`,
		"Namespace/missing":            "",
		"Namespace/unparsable":         "",
		"Namespace/shadowed":           "",
		"Namespace/" + feedbackSynced:  "False",
		"ConfigMap/greeting":           "String:hello",
		"ConfigMap/immutable":          "Boolean:false",
		"ConfigMap/other-version":      "",
		"ConfigMap/status":             "", // a ConfigMap has none
		"Deployment/replicas":          "Integer:2",
		"Deployment/containers":        `JsonRaw:["a","b"]`,
		"Deployment/" + feedbackSynced: "True",
	} {
		if want[k] != v {
			t.Errorf("real agent: %s = %s, the test expects %s", k, orNone(want[k]), orNone(v))
		}
	}
	// Leave nothing behind on the shared kube-apiserver: the real agent
	// deletes the Namespace (and what is in it) with the work. Its two
	// steps are waited on apart, so a failure says which was slow: the
	// namespace controller finalizing the Namespace, then the agent noticing
	// it gone, which it checks on its AppliedManifestWork finalizer's
	// requeue (50 ms doubling, capped at 60 s), so a Namespace that took
	// 30 s is noticed up to 20 s later and one that took 60 s up to 40 s.
	deleted := time.Now()
	for _, consumer := range []string{real, standIn} {
		if err := be.Delete(ctx, consumer, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitNamespaceGone(ctx, cs, ns, deadline); err != nil {
		t.Fatal(err) // with the controller manager's lines about ns
	}
	nsGone := time.Since(deleted)
	until := time.Now().Add(agentNoticesGone)
	for {
		w, err := be.Get(ctx, real, name)
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("work %s/%s not deleted within %s of its namespace going (%s after the delete): %v, %s",
				real, name, agentNoticesGone, nsGone.Round(time.Millisecond), err, describe(w))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("delete -> namespace NotFound after %s, work gone from Maestro after %s",
		nsGone.Round(time.Millisecond), time.Since(deleted).Round(time.Millisecond))

	// Maestro's agent raises the OCM agent's 1024-byte limit on a JSON
	// value: the whole data, over 2 KiB, comes back.
	if v := want["ConfigMap/data"]; !strings.HasPrefix(v, `JsonRaw:{"big":"xxx`) || len(v) < bigValueBytes {
		t.Errorf("real agent: ConfigMap/data = %.80s (%d bytes), want the whole data as JSON", orNone(v), len(v))
	}
}

// agentNoticesGone bounds how long after its applied objects are gone the
// real agent removes the work: the next requeue of its AppliedManifestWork
// finalizer, at most 60 s away (OCM's finalizercontroller), plus the status
// round trip to Maestro.
const agentNoticesGone = 75 * time.Second

// bigValueBytes is the size of a ConfigMap value that makes its whole data
// over 1 KiB as JSON.
const bigValueBytes = 2048

func feedbackWork(t *testing.T, consumer, name, ns string) *workv1.ManifestWork {
	t.Helper()
	manifests := []map[string]any{
		{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}},
		{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "settings", "namespace": ns},
			"immutable": false,
			"data":      map[string]any{"greeting": "hello", "big": strings.Repeat("x", bigValueBytes)},
		},
		{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": ns},
			"spec": map[string]any{
				"replicas": 2,
				"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
					"spec": map[string]any{"containers": []any{
						map[string]any{"name": "a", "image": "registry.example.com/a:1"},
						map[string]any{"name": "b", "image": "registry.example.com/b:1"},
					}},
				},
			},
		},
	}
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer,
		Labels:      map[string]string{workmeta.LabelAdapter: "agenttest"},
		Annotations: map[string]string{workmeta.AnnotationGeneration: "1"}}}
	for _, m := range manifests {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	paths := func(p ...workv1.JsonPath) []workv1.FeedbackRule {
		return []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: p}}
	}
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{
		{
			ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: ns},
			FeedbackRules: paths(
				workv1.JsonPath{Name: "phase", Path: ".status.phase"},
				workv1.JsonPath{Name: "name", Path: ".metadata.name"},
				workv1.JsonPath{Name: "status", Path: ".status"},
				workv1.JsonPath{Name: "missing", Path: ".status.nothing"},
				workv1.JsonPath{Name: "unparsable", Path: ".status[?("},
			),
		},
		{
			// Matches the Namespace too, after the config above: the agent
			// takes the feedback rules of the first matching config only.
			ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: "*"},
			FeedbackRules:      paths(workv1.JsonPath{Name: "shadowed", Path: ".metadata.name"}),
		},
		{
			ResourceIdentifier: workv1.ResourceIdentifier{Resource: "configmaps", Name: "settings", Namespace: ns},
			FeedbackRules: paths(
				workv1.JsonPath{Name: "greeting", Path: ".data.greeting"},
				workv1.JsonPath{Name: "immutable", Path: ".immutable"},
				workv1.JsonPath{Name: "data", Path: ".data"},
				workv1.JsonPath{Name: "status", Path: ".status"},
				workv1.JsonPath{Name: "other-version", Path: ".data.greeting", Version: "v2"},
			),
		},
		{
			// A pattern, not the name: the agent matches "*" as any run
			// of characters.
			ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "w*b", Namespace: ns},
			FeedbackRules: paths(
				workv1.JsonPath{Name: "replicas", Path: ".spec.replicas"},
				workv1.JsonPath{Name: "containers", Path: ".spec.template.spec.containers[*].name"},
			),
		},
	}
	return w
}

// feedbackEvaluated: every manifest carries the StatusFeedbackSynced
// condition, at the work's generation.
func feedbackEvaluated(w *workv1.ManifestWork) bool {
	if w == nil || len(w.Status.ResourceStatus.Manifests) != len(w.Spec.Workload.Manifests) {
		return false
	}
	if c := apimeta.FindStatusCondition(w.Status.Conditions, workv1.WorkAvailable); c == nil || c.ObservedGeneration != w.Generation {
		return false
	}
	for _, m := range w.Status.ResourceStatus.Manifests {
		if apimeta.FindStatusCondition(m.Conditions, feedbackSynced) == nil {
			return false
		}
	}
	return true
}

// feedbackOf maps Kind/name of each feedback value to Type:value, and
// Kind/StatusFeedbackSynced to the condition's status.
func feedbackOf(w *workv1.ManifestWork) map[string]string {
	out := map[string]string{}
	for _, m := range w.Status.ResourceStatus.Manifests {
		kind := m.ResourceMeta.Kind
		for _, v := range m.StatusFeedbacks.Values {
			var s string
			switch {
			case v.Value.Integer != nil:
				s = fmt.Sprint(*v.Value.Integer)
			case v.Value.String != nil:
				s = *v.Value.String
			case v.Value.Boolean != nil:
				s = fmt.Sprint(*v.Value.Boolean)
			case v.Value.JsonRaw != nil:
				s = *v.Value.JsonRaw
			}
			out[kind+"/"+v.Name] = string(v.Value.Type) + ":" + s
		}
		if c := apimeta.FindStatusCondition(m.Conditions, feedbackSynced); c != nil {
			out[kind+"/"+feedbackSynced] = string(c.Status)
		}
	}
	return out
}

func sortedKeys(maps ...map[string]string) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range maps {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
