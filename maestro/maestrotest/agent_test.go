package maestrotest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openshift-online/maestro/pkg/api/openapi"
	"github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubetypes "k8s.io/apimachinery/pkg/types"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func TestMain(m *testing.M) {
	// Reconnect quickly after TestAgentSurvivesMaestroRestart restarts Maestro.
	maestrotest.SetReconnectDelay(500 * time.Millisecond)
	os.Exit(m.Run())
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sourceClient builds Maestro's gRPC source work client: writes go over gRPC,
// reads (Get/List) over the REST API.
func sourceClient(ctx context.Context, t *testing.T, env maestrotest.Env, sourceID string) workv1client.WorkV1Interface {
	t.Helper()
	cfg := openapi.NewConfiguration()
	cfg.Servers = openapi.ServerConfigurations{{URL: env.HTTPEndpoint}}
	cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	client, err := grpcsource.NewMaestroGRPCSourceWorkClient(ctx, maestrotest.Logger(t), openapi.NewAPIClient(cfg),
		&grpcoptions.GRPCOptions{Dialer: &grpcoptions.GRPCDialer{URL: env.GRPCEndpoint}}, sourceID)
	if err != nil {
		t.Fatalf("source client: %v", err)
	}
	return client
}

// eventually polls cond until it reports done or the timeout passes. There is
// no event to wait on across the server, so poll the observable state.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var state string
	for {
		var done bool
		done, state = cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		<-tick.C
	}
}

func manifest(t *testing.T, obj map[string]interface{}) workv1.Manifest {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
}

func conditionAt(conds []metav1.Condition, typ string, gen int64) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen
}

func describe(w *workv1.ManifestWork, err error) string {
	if err != nil {
		return err.Error()
	}
	b, _ := json.Marshal(w.Status)
	return fmt.Sprintf("generation %d, status %s", w.Generation, b)
}

func TestAgentAgainstRealMaestro(t *testing.T) {
	env := maestrotest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	suffix := randomSuffix(t)
	consumer := "mt-agent-" + suffix
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	// Registering again is fine.
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatalf("second registration: %v", err)
	}

	agent, err := maestrotest.StartAgent(ctx, env.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)

	sourceID := "maestrotest-" + suffix
	works := sourceClient(ctx, t, env, sourceID).ManifestWorks(consumer)
	name := "work-" + suffix
	work := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: consumer,
			Labels: map[string]string{"hyperfleet.io/test": suffix, "env": "ci"},
		},
		Spec: workv1.ManifestWorkSpec{
			Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{
				manifest(t, map[string]interface{}{
					"apiVersion": "v1", "kind": "Namespace",
					"metadata": map[string]interface{}{"name": "ns-" + suffix},
				}),
				manifest(t, map[string]interface{}{
					"apiVersion": "apps/v1", "kind": "Deployment",
					"metadata": map[string]interface{}{"name": "web", "namespace": "ns-" + suffix},
					"spec":     map[string]interface{}{"replicas": 2},
				}),
			}},
			ManifestConfigs: []workv1.ManifestConfigOption{
				{
					ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: "ns-" + suffix},
					FeedbackRules: []workv1.FeedbackRule{{
						Type:      workv1.JSONPathsType,
						JsonPaths: []workv1.JsonPath{{Name: "status", Path: ".status"}, {Name: "phase", Path: ".status.phase"}},
					}},
				},
				{
					ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "web", Namespace: "ns-" + suffix},
					FeedbackRules:      []workv1.FeedbackRule{{Type: workv1.WellKnownStatusType}},
				},
			},
		},
	}
	if _, err := works.Create(ctx, work, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}

	// 1. The agent's status comes back to the source.
	var got *workv1.ManifestWork
	eventually(t, 30*time.Second, "Applied and Available at generation 1", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, describe(got, err)
		}
		return conditionAt(got.Status.Conditions, workv1.WorkApplied, got.Generation) &&
			conditionAt(got.Status.Conditions, workv1.WorkAvailable, got.Generation) &&
			len(got.Status.ResourceStatus.Manifests) == 2, describe(got, nil)
	})
	if got.Generation != 1 {
		t.Errorf("generation = %d, want 1", got.Generation)
	}
	nsStatus := got.Status.ResourceStatus.Manifests[0]
	if nsStatus.ResourceMeta.Kind != "Namespace" || nsStatus.ResourceMeta.Resource != "namespaces" {
		t.Errorf("manifest 0 meta = %+v", nsStatus.ResourceMeta)
	}
	feedback := map[string]workv1.FieldValue{}
	for _, m := range got.Status.ResourceStatus.Manifests {
		if !conditionAt(m.Conditions, workv1.ManifestApplied, 1) || !conditionAt(m.Conditions, workv1.ManifestAvailable, 1) {
			t.Errorf("manifest %+v conditions = %+v", m.ResourceMeta, m.Conditions)
		}
		for _, v := range m.StatusFeedbacks.Values {
			feedback[m.ResourceMeta.Kind+"/"+v.Name] = v.Value
		}
	}
	if v := feedback["Namespace/status"]; v.Type != workv1.JsonRaw || v.JsonRaw == nil || *v.JsonRaw != `{"phase":"Active"}` {
		t.Errorf("Namespace/status feedback = %+v", v)
	}
	if v := feedback["Namespace/phase"]; v.Type != workv1.String || v.String == nil || *v.String != "Active" {
		t.Errorf("Namespace/phase feedback = %+v", v)
	}
	if v := feedback["Deployment/ReadyReplicas"]; v.Type != workv1.Integer || v.Integer == nil || *v.Integer != 2 {
		t.Errorf("Deployment/ReadyReplicas feedback = %+v", v)
	}

	// 2. Label selectors become JSONB searches, which the server hands to the
	// SQL search parser (deploy/local/ocm-common-sqlparser).
	for selector, want := range map[string]int{
		"hyperfleet.io/test=" + suffix:                       1, // @>
		"hyperfleet.io/test=" + suffix + ",env in (ci,prod)": 1, // @> and ->> in (...)
		"hyperfleet.io/test=" + suffix + ",env!=ci":          0, // ->> <>
		"hyperfleet.io/test=" + suffix + ",env":              1, // ->> IS NOT NULL
		"hyperfleet.io/test=" + suffix + ",missing":          0,
		"hyperfleet.io/test=other-" + suffix:                 0,
	} {
		list, err := works.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Errorf("list %q: %v", selector, err)
			continue
		}
		if len(list.Items) != want {
			t.Errorf("list %q: %d works, want %d", selector, len(list.Items), want)
		}
	}

	// 3. A spec change is generation 2, and the agent reports it.
	newWork := got.DeepCopy()
	newWork.Spec.Workload.Manifests[1] = manifest(t, map[string]interface{}{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]interface{}{"name": "web", "namespace": "ns-" + suffix},
		"spec":     map[string]interface{}{"replicas": 3},
	})
	patch, err := grpcsource.ToWorkPatch(got, newWork)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := works.Patch(ctx, name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch: %v", err)
	}
	eventually(t, 30*time.Second, "Applied and Available at generation 2", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, describe(got, err)
		}
		return got.Generation == 2 &&
			conditionAt(got.Status.Conditions, workv1.WorkApplied, 2) &&
			conditionAt(got.Status.Conditions, workv1.WorkAvailable, 2), describe(got, nil)
	})
	// The agent knows the work by its Maestro resource ID.
	agentView := agent.Works()
	if id := maestrotest.WorkID(sourceID, consumer, name); len(agentView) != 1 || agentView[0].Name != id || agentView[0].Generation != 2 ||
		agentView[0].Labels["hyperfleet.io/test"] != suffix {
		t.Errorf("agent.Works() = %d works, want %s (ID %s) at generation 2 with the source's labels", len(agentView), name, id)
		for _, w := range agentView {
			t.Logf("agent work %s generation %d labels %v", w.Name, w.Generation, w.Labels)
		}
	}

	// 4. Deletion: the agent drops the finalizer, the SDK reports Deleted, and
	// Maestro removes the work.
	if err := works.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	eventually(t, 30*time.Second, "the work to be gone", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "not found"
		}
		return false, describe(got, err)
	})
	eventually(t, 10*time.Second, "the agent to forget the work", func() (bool, string) {
		n := len(agent.Works())
		return n == 0, fmt.Sprintf("%d works", n)
	})
}

func TestAgentFailureAndDelay(t *testing.T) {
	env := maestrotest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	suffix := randomSuffix(t)
	consumer := "mt-fail-" + suffix
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	sourceID := "maestrotest-" + suffix
	brokenID := maestrotest.WorkID(sourceID, consumer, "broken-"+suffix)
	agent, err := maestrotest.StartAgent(ctx, env.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{
		Delay: delay,
		// The agent sees works under their resource IDs, with the source's labels.
		Fail: func(w *workv1.ManifestWork) error {
			switch {
			case w.Name == brokenID:
				return fmt.Errorf("simulated apply failure for %s", w.Name)
			case w.Labels["test.hyperfleet.io/fail"] == "degraded":
				return maestrotest.Degraded("simulated degradation")
			}
			return nil
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)
	works := sourceClient(ctx, t, env, sourceID).ManifestWorks(consumer)

	newWork := func(name string) *workv1.ManifestWork {
		return &workv1.ManifestWork{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer, Labels: map[string]string{
				"test.hyperfleet.io/fail": strings.SplitN(name, "-", 2)[0],
			}},
			Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{
				manifest(t, map[string]interface{}{
					"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]interface{}{"name": name, "namespace": "default"},
				}),
			}}},
		}
	}
	created := time.Now()
	for _, name := range []string{"broken-" + suffix, "degraded-" + suffix} {
		if _, err := works.Create(ctx, newWork(name), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}

	eventually(t, 30*time.Second, "Applied=False on the broken work", func() (bool, string) {
		w, err := works.Get(ctx, "broken-"+suffix, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(w.Status.Conditions, workv1.WorkApplied)
		return c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == 1 &&
			strings.Contains(c.Message, "simulated apply failure"), describe(w, nil)
	})
	if elapsed := time.Since(created); elapsed < delay {
		t.Errorf("status arrived %s after create, before the %s delay", elapsed, delay)
	}
	eventually(t, 30*time.Second, "Degraded=True on the degraded work", func() (bool, string) {
		w, err := works.Get(ctx, "degraded-"+suffix, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return conditionAt(w.Status.Conditions, workv1.WorkApplied, 1) &&
			conditionAt(w.Status.Conditions, workv1.WorkDegraded, 1), describe(w, nil)
	})

	for _, name := range []string{"broken-" + suffix, "degraded-" + suffix} {
		if err := works.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	eventually(t, 30*time.Second, "both works to be gone", func() (bool, string) {
		list, err := works.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, fmt.Sprintf("%d works left", len(list.Items))
	})
}

// TestAgentSurvivesMaestroRestart restarts the shared Maestro server, which
// disturbs any other test using it at the time; it runs only when asked for
// with MAESTROTEST_RESTART=1 (and MAESTRO_CTL set by maestro.sh env).
func TestAgentSurvivesMaestroRestart(t *testing.T) {
	env := maestrotest.Require(t)
	if os.Getenv("MAESTROTEST_RESTART") != "1" {
		t.Skip("restarts the shared Maestro server; set MAESTROTEST_RESTART=1 to run")
	}
	if env.Ctl == "" {
		t.Fatalf("%s is not set; cannot restart Maestro", maestrotest.EnvCtl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	suffix := randomSuffix(t)
	consumer := "mt-restart-" + suffix
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	agent, err := maestrotest.StartAgent(ctx, env.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)
	works := sourceClient(ctx, t, env, "maestrotest-"+suffix).ManifestWorks(consumer)
	name := "work-" + suffix
	configMap := func(value string) workv1.Manifest {
		return manifest(t, map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": name, "namespace": "default"},
			"data":     map[string]interface{}{"value": value},
		})
	}
	work := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer},
		Spec:       workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{configMap("1")}}},
	}
	if _, err := works.Create(ctx, work, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	var got *workv1.ManifestWork
	eventually(t, 30*time.Second, "Available at generation 1", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return conditionAt(got.Status.Conditions, workv1.WorkAvailable, 1), describe(got, nil)
	})

	restarted := time.Now()
	if err := env.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("maestro restarted in %s", time.Since(restarted))

	// Both clients reconnect on their own; the first writes may fail until
	// they have, so retry the patch until it is accepted.
	newWork := got.DeepCopy()
	newWork.Spec.Workload.Manifests[0] = configMap("2")
	patch, err := grpcsource.ToWorkPatch(got, newWork)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the patch to be accepted after the restart", func() (bool, string) {
		_, err := works.Patch(ctx, name, kubetypes.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Logf("patch accepted %s after the restart began", time.Since(restarted))
	eventually(t, 60*time.Second, "Available at generation 2 after the restart", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Generation == 2 && conditionAt(got.Status.Conditions, workv1.WorkAvailable, 2), describe(got, nil)
	})
	t.Logf("status at generation 2 seen %s after the restart began", time.Since(restarted))

	if err := works.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	eventually(t, 30*time.Second, "the work to be gone", func() (bool, string) {
		got, err = works.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, describe(got, err)
	})
}
