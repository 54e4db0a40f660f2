package remote_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
)

// TestRealAgentManifestSetChangeKeepsTheObjects is
// TestManifestSetChangeKeepsTheObjectsTheNewSetKeeps on Maestro's real
// agent and a real kube-apiserver: a work holding a Namespace and ConfigMap
// a gets ConfigMap c added, which the pinned Maestro refuses in place, so
// Apply orphans what the new set keeps, deletes the work and recreates it.
// The Namespace and ConfigMap a must be the same objects afterwards (same
// UIDs), adopted by the recreated work, which is Available again; deleting
// that work then removes them all.
func TestRealAgentManifestSetChangeKeepsTheObjects(t *testing.T) {
	suffix := randomSuffix(t)
	consumer := "remote-real-recreate-" + suffix
	agents := agenttest.Start(t, consumer)
	kube, err := kubernetes.NewForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBackend(t, agents.Maestro, "real-recreate-"+suffix, nil)
	const name = "lz"
	namespace := "real-recreate-" + suffix
	const wait = 60 * time.Second

	settledAt := func(gen int64) *workv1.ManifestWork {
		t.Helper()
		var w *workv1.ManifestWork
		waitFor(t, wait, "the real agent's Applied and Available at generation "+itoa(gen), func() (bool, string) {
			var err error
			w, err = b.Get(ctx, consumer, name)
			if err != nil {
				return false, err.Error()
			}
			return w.Annotations[workmeta.AnnotationGeneration] == itoa(gen) && maestro.StatusSettled(w) &&
				conditionTrue(w, workv1.WorkApplied) && conditionTrue(w, workv1.WorkAvailable), describeWork(w)
		})
		return w
	}
	get := func(kind, n string) metav1.Object {
		t.Helper()
		var obj metav1.Object
		var err error
		if kind == "Namespace" {
			obj, err = kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		} else {
			obj, err = kube.CoreV1().ConfigMaps(namespace).Get(ctx, n, metav1.GetOptions{})
		}
		if err != nil {
			t.Fatalf("%s %s: %v", kind, n, err)
		}
		return obj
	}
	uid := func(kind, n string) string { t.Helper(); return string(get(kind, n).GetUID()) }
	// owner is the UID of the one AppliedManifestWork owning the object:
	// the agent's record of the work that applied it.
	owner := func(kind, n string) string {
		t.Helper()
		var uids []string
		for _, o := range get(kind, n).GetOwnerReferences() {
			if o.Kind == "AppliedManifestWork" {
				uids = append(uids, string(o.UID))
			}
		}
		if len(uids) != 1 {
			t.Fatalf("%s %s is owned by AppliedManifestWorks %v, want one", kind, n, uids)
		}
		return uids[0]
	}

	if _, err := b.Apply(ctx, landingZone(t, consumer, name, namespace, 1, "a")); err != nil {
		t.Fatalf("apply generation 1: %v", err)
	}
	settledAt(1)
	nsUID, aUID := uid("Namespace", namespace), uid("ConfigMap", "a")
	firstOwner := owner("Namespace", namespace)

	started := time.Now()
	if _, err := b.Apply(ctx, landingZone(t, consumer, name, namespace, 2, "a", "c")); err != nil {
		t.Fatalf("apply generation 2 (ConfigMap c added): %v", err)
	}
	settledAt(2)
	t.Logf("manifest-set change (orphan, delete, recreate) -> Available again through the real agent: %s",
		time.Since(started).Round(time.Millisecond))
	if got := uid("Namespace", namespace); got != nsUID {
		t.Errorf("the Namespace was deleted and created anew by the recreate (UID %s -> %s)", nsUID, got)
	}
	if got := uid("ConfigMap", "a"); got != aUID {
		t.Errorf("ConfigMap a was deleted and created anew by the recreate (UID %s -> %s)", aUID, got)
	}
	// Adopted: the work's id is derived from source, consumer and name, so
	// the recreated work's AppliedManifestWork has the old one's name but
	// is a new object; the kept objects are owned by it alone. An unchanged
	// owner would mean the work was changed in place, not recreated.
	if got := owner("Namespace", namespace); got == firstOwner {
		t.Fatalf("the Namespace is still owned by AppliedManifestWork %s: the work was not recreated", got)
	}
	if a, ns := owner("ConfigMap", "a"), owner("Namespace", namespace); a != ns || owner("ConfigMap", "c") != ns {
		t.Errorf("ConfigMaps a and c and the Namespace are owned by different AppliedManifestWorks")
	}

	// The recreated work owns them: deleting it removes the Namespace.
	if err := b.Delete(ctx, consumer, name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wait, "the Namespace gone after deleting the recreated work", func() (bool, string) {
		got, err := kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, "phase " + string(got.Status.Phase)
	})
}

func conditionTrue(w *workv1.ManifestWork, typ string) bool {
	for _, c := range w.Status.Conditions {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue && c.ObservedGeneration >= w.Generation
		}
	}
	return false
}
