package remote_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// landingZone is a work like the namespace adapter's: a Namespace and
// ConfigMaps in it, named by names.
func landingZone(t *testing.T, consumer, name, namespace string, gen int64, configMaps ...string) *workv1.ManifestWork {
	t.Helper()
	objs := []map[string]any{{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}}}
	for _, cm := range configMaps {
		objs = append(objs, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": cm, "namespace": namespace}, "data": map[string]any{"generation": itoa(gen)}})
	}
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer,
		Labels:      map[string]string{workmeta.LabelAdapter: "remote-test"},
		Annotations: map[string]string{workmeta.AnnotationGeneration: itoa(gen)}}}
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w
}

// The pinned Maestro refuses to change a work's manifest set in place, so
// Apply deletes the work and creates it anew. The delete must not take the
// target's objects with it: before it, the work's delete option orphans
// every object the new set keeps, and the agent applies that, so only the
// objects the new set drops are deleted, and the recreated work adopts the
// survivors (same UIDs). The stand-in agent keeps ownership as the OCM
// agent does (decided when a generation is applied; see maestrotest's
// cluster), so a delete sent before the agent applied the orphaning
// generation deletes the Namespace here too.
func TestManifestSetChangeKeepsTheObjectsTheNewSetKeeps(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	consumer := "remote-recreate-" + suffix
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	// The stand-in: it records each deletion's delete option and the objects it
	// kept (Deletions), which the real agent does not expose;
	// TestRealAgentManifestSetChangeKeepsTheObjects is the real-agent proof.
	agent, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, consumer,
		// The agent takes a while to apply what it receives, as a real one
		// does: a delete sent before it applied the orphaning generation
		// would still find every object owned.
		maestrotest.AgentOptions{Delay: 300 * time.Millisecond, Logf: maestrotest.TestLogf(t, "agent: ")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)
	sourceID := "recreate-" + suffix
	b := newBackend(t, env, sourceID, nil)
	const name, namespace = "lz", "landing-zone"
	t.Cleanup(func() { _ = b.Delete(context.Background(), consumer, name) })
	onAgent := maestrotest.WorkID(sourceID, consumer, name)
	ns := maestrotest.ObjectKey{Resource: "namespaces", Name: namespace}
	cm := func(n string) maestrotest.ObjectKey {
		return maestrotest.ObjectKey{Resource: "configmaps", Namespace: namespace, Name: n}
	}
	uid := func(key maestrotest.ObjectKey) string {
		u, _ := agent.Object(key)
		return u
	}

	apply := func(gen int64, configMaps ...string) {
		t.Helper()
		if _, err := b.Apply(ctx, landingZone(t, consumer, name, namespace, gen, configMaps...)); err != nil {
			t.Fatalf("apply generation %d: %v", gen, err)
		}
		waitFor(t, 30*time.Second, "the agent's status at generation "+itoa(gen), func() (bool, string) {
			w, err := b.Get(ctx, consumer, name)
			if err != nil {
				return false, err.Error()
			}
			return w.Annotations[workmeta.AnnotationGeneration] == itoa(gen) && maestro.StatusSettled(w) &&
				w.Spec.DeleteOption != nil && w.Spec.DeleteOption.PropagationPolicy == workv1.DeletePropagationPolicyTypeForeground &&
				agent.Owned(ns, onAgent), describeWork(w)
		})
	}

	apply(1, "a", "b")
	nsUID, aUID := uid(ns), uid(cm("a"))
	if nsUID == "" || aUID == "" || uid(cm("b")) == "" {
		t.Fatal("the agent did not create the work's objects")
	}

	// Add c, drop b: refused in place, so deleted and recreated.
	apply(2, "a", "c")
	dels := agent.Deletions()
	if len(dels) != 1 || dels[0].Work != onAgent {
		t.Fatalf("deletions %+v, want the one of %s", dels, onAgent)
	}
	d := dels[0]
	if opt := d.DeleteOption; opt == nil || opt.PropagationPolicy != workv1.DeletePropagationPolicyTypeSelectivelyOrphan ||
		opt.SelectivelyOrphan == nil || len(opt.SelectivelyOrphan.OrphaningRules) != 2 {
		t.Fatalf("the delete came with delete option %+v, want SelectivelyOrphan of the Namespace and ConfigMap a", opt)
	}
	if !slices.Equal(d.Deleted, []maestrotest.ObjectKey{cm("b")}) ||
		!slices.Equal(d.Orphaned, []maestrotest.ObjectKey{ns, cm("a")}) {
		t.Fatalf("the delete deleted %v and left %v, want only ConfigMap b deleted", d.Deleted, d.Orphaned)
	}
	if uid(ns) != nsUID || uid(cm("a")) != aUID {
		t.Fatalf("the Namespace or ConfigMap a was created anew (UIDs %s→%s, %s→%s)", nsUID, uid(ns), aUID, uid(cm("a")))
	}
	if _, exists := agent.Object(cm("b")); exists {
		t.Error("ConfigMap b, which the new set drops, is still there")
	}
	if !agent.Owned(cm("a"), onAgent) || !agent.Owned(cm("c"), onAgent) {
		t.Error("the recreated work does not own its objects")
	}

	// Only add d: every object is kept, so the delete orphans all.
	apply(3, "a", "c", "d")
	dels = agent.Deletions()
	if len(dels) != 2 {
		t.Fatalf("deletions %+v, want a second one", dels)
	}
	if opt := dels[1].DeleteOption; opt == nil || opt.PropagationPolicy != workv1.DeletePropagationPolicyTypeOrphan {
		t.Fatalf("the delete came with delete option %+v, want Orphan", opt)
	}
	if len(dels[1].Deleted) != 0 || uid(ns) != nsUID || uid(cm("a")) != aUID {
		t.Fatalf("objects deleted %v; Namespace UID %s→%s", dels[1].Deleted, nsUID, uid(ns))
	}
}

func describeWork(w *workv1.ManifestWork) string {
	b, _ := json.Marshal(map[string]any{"annotations": w.Annotations, "deleteOption": w.Spec.DeleteOption,
		"generation": w.Generation, "conditions": w.Status.Conditions})
	return string(b)
}
