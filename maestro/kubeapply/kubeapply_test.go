package kubeapply_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func configMap(ns, name string, data map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"data":     data,
	}
}

func namespace(name string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}
}

func newWork(t testing.TB, consumer, name string, gen int64, manifests ...map[string]any) *workv1.ManifestWork {
	t.Helper()
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: consumer,
		Labels:      map[string]string{workmeta.LabelAdapter: "kubeapply-test"},
		Annotations: map[string]string{workmeta.AnnotationGeneration: strconv.FormatInt(gen, 10)},
	}}
	for _, m := range manifests {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w
}

// waitFor polls f until it returns nil, failing the test with f's last
// error after waitTimeout.
func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, waitTimeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval of a deadline-bounded wait, not synchronisation
	}
}

// waitCondition waits until Get shows the work at resource generation gen
// with condition cond at status, observed at the work's current version.
func (e *env) waitCondition(t testing.TB, consumer, name string, gen int64, cond string, status metav1.ConditionStatus) *workv1.ManifestWork {
	t.Helper()
	var got *workv1.ManifestWork
	waitFor(t, fmt.Sprintf("work %s/%s %s=%s at generation %d", consumer, name, cond, status, gen), func() error {
		w, err := e.d.Get(context.Background(), consumer, name)
		if err != nil {
			return err
		}
		if w.Annotations[workmeta.AnnotationGeneration] != strconv.FormatInt(gen, 10) {
			return fmt.Errorf("at generation %s", w.Annotations[workmeta.AnnotationGeneration])
		}
		c := apimeta.FindStatusCondition(w.Status.Conditions, cond)
		if c == nil || c.Status != status || c.ObservedGeneration != w.Generation {
			return fmt.Errorf("conditions %+v", w.Status.Conditions)
		}
		got = w
		return nil
	})
	return got
}

func (e *env) apply(t testing.TB, w *workv1.ManifestWork) *workv1.ManifestWork {
	t.Helper()
	got, err := e.d.Apply(testContext(t), w)
	if err != nil {
		t.Fatalf("Apply %s/%s: %v", w.Namespace, w.Name, err)
	}
	return got
}

func (e *env) configMapData(t testing.TB, ns, name string) (map[string]string, error) {
	t.Helper()
	cm, err := e.cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

// The objects are really on the cluster, owned by the field manager's
// Apply entry alone (also when it created them), labelled and annotated.
func TestObjectsAreServerSideAppliedAndLabelled(t *testing.T) {
	e := newEnv(t, nil)
	ns := randomName("kubeapply-")
	work := randomName("w-")
	e.apply(t, newWork(t, "c", work, 1, namespace(ns), configMap(ns, "cm", map[string]any{"a": "1", "b": "2"})))
	e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionTrue)
	t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })

	cm, err := e.cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the ConfigMap is not on the cluster: %v", err)
	}
	if cm.Labels[kubeapply.LabelDeliveredBy] != "kubeapply-test" || cm.Annotations[kubeapply.AnnotationWork] != "c/"+work ||
		cm.Annotations[workmeta.AnnotationGeneration] != "1" {
		t.Errorf("ConfigMap labels %v, annotations %v: want the delivery's label, the work and generation 1", cm.Labels, cm.Annotations)
	}
	if len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "kubeapply-test" || cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managedFields %+v, want one Apply entry of kubeapply-test", cm.ManagedFields)
	}

	// A field dropped from the manifest is removed: the field manager owned
	// it through apply.
	e.apply(t, newWork(t, "c", work, 2, namespace(ns), configMap(ns, "cm", map[string]any{"a": "1"})))
	data, err := e.configMapData(t, ns, "cm")
	if err != nil || len(data) != 1 || data["a"] != "1" {
		t.Fatalf("after dropping data.b: data %v (%v), want only a=1", data, err)
	}
}

// Another field manager's change to a field the work sets is taken back
// (ownership forced); its own fields stay.
func TestForcesOwnershipOfTheWorksFields(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	work := randomName("w-")
	cmName := randomName("cm-")
	e.apply(t, newWork(t, "c", work, 1, configMap("conformance", cmName, map[string]any{"a": "1"})))
	t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })
	cm, err := e.cs.CoreV1().ConfigMaps("conformance").Get(context.Background(), cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["a"] = "changed by someone"
	cm.Data["theirs"] = "x"
	if _, err := e.cs.CoreV1().ConfigMaps("conformance").Update(context.Background(), cm, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, newWork(t, "c", work, 2, configMap("conformance", cmName, map[string]any{"a": "2"})))
	data, err := e.configMapData(t, "conformance", cmName)
	if err != nil || data["a"] != "2" || data["theirs"] != "x" {
		t.Fatalf("data %v (%v), want a=2 (forced) and theirs=x (kept)", data, err)
	}
}

// Concurrent appliers of two generations never leave the object at the
// older one, whichever order their writes land in: the object's own
// generation and resourceVersion guard it, not only the record.
func TestConcurrentAppliersLeaveTheObjectAtTheNewerGeneration(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	for round := range 8 {
		work := randomName("w-")
		cmName := randomName("cm-")
		t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })
		if round%2 == 1 {
			e.apply(t, newWork(t, "c", work, 1, configMap("conformance", cmName, map[string]any{"value": "v1"})))
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, gen := range []int64{2, 3} {
			w := newWork(t, "c", work, gen, configMap("conformance", cmName, map[string]any{"value": "v" + strconv.FormatInt(gen, 10)}))
			wg.Go(func() {
				<-start
				_, errs[i] = e.d.Apply(testContext(t), w)
			})
		}
		close(start)
		wg.Wait()
		if errs[1] != nil {
			t.Fatalf("round %d: the newer generation failed: %v", round, errs[1])
		}
		if errs[0] != nil && !errors.Is(errs[0], workmeta.ErrStaleGeneration) {
			t.Fatalf("round %d: the older generation: %v, want nil or ErrStaleGeneration", round, errs[0])
		}
		data, err := e.configMapData(t, "conformance", cmName)
		if err != nil || data["value"] != "v3" {
			t.Fatalf("round %d: object data %v (%v), want value v3", round, data, err)
		}
	}
}

// An object the same work already wrote at a newer generation is not
// moved back even when the record does not know (here: the record lost).
func TestStaleObjectIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	work := randomName("w-")
	cmName := randomName("cm-")
	e.apply(t, newWork(t, "c", work, 3, configMap("conformance", cmName, map[string]any{"value": "v3"})))
	// Lose the record (finalizer and all), as if someone deleted it.
	secrets := e.cs.CoreV1().Secrets(e.namespace)
	list, err := secrets.List(context.Background(), metav1.ListOptions{LabelSelector: kubeapply.LabelDeliveredBy})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("records: %v (%v), want one", list, err)
	}
	s := list.Items[0]
	s.Finalizers = nil
	if _, err := secrets.Update(context.Background(), &s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := secrets.Delete(context.Background(), s.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "record gone from the cache", func() error {
		if _, err := e.d.Get(context.Background(), "c", work); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Get: %v", err)
		}
		return nil
	})
	t.Cleanup(func() {
		_ = e.cs.CoreV1().ConfigMaps("conformance").Delete(context.Background(), cmName, metav1.DeleteOptions{})
	})

	_, err = e.d.Apply(testContext(t), newWork(t, "c", work, 2, configMap("conformance", cmName, map[string]any{"value": "v2"})))
	if !errors.Is(err, workmeta.ErrStaleGeneration) {
		t.Fatalf("applying generation 2 over an object at 3: %v, want ErrStaleGeneration", err)
	}
	data, err := e.configMapData(t, "conformance", cmName)
	if err != nil || data["value"] != "v3" {
		t.Fatalf("object data %v (%v), want v3 kept", data, err)
	}
	_ = e.d.Delete(context.Background(), "c", work)
}

// A manifest dropped from the set is deleted from the cluster; with
// Orphan, deleting the work leaves its objects.
func TestDroppedManifestIsDeletedAndOrphanKeeps(t *testing.T) {
	e := newEnv(t, func(o *kubeapply.Options) { o.DeletePropagation = metav1.DeletePropagationOrphan })
	ensureNamespace(t, e.cs, "conformance")
	work := randomName("w-")
	a, b := randomName("a-"), randomName("b-")
	t.Cleanup(func() {
		for _, n := range []string{a, b} {
			_ = e.cs.CoreV1().ConfigMaps("conformance").Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})
	// Orphan is the work's default here; this work asks for Foreground
	// itself, so dropping b deletes it.
	w := newWork(t, "c", work, 1, configMap("conformance", a, map[string]any{"v": "1"}), configMap("conformance", b, map[string]any{"v": "1"}))
	w.Spec.DeleteOption = &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}
	e.apply(t, w)
	w2 := newWork(t, "c", work, 2, configMap("conformance", a, map[string]any{"v": "2"}))
	w2.Spec.DeleteOption = w.Spec.DeleteOption
	e.apply(t, w2)
	if _, err := e.configMapData(t, "conformance", b); !apierrors.IsNotFound(err) {
		t.Fatalf("dropped ConfigMap %s: %v, want NotFound", b, err)
	}

	// Generation 3 carries no deleteOption: the delivery's Orphan.
	got := e.apply(t, newWork(t, "c", work, 3, configMap("conformance", a, map[string]any{"v": "3"})))
	if got.Spec.DeleteOption == nil || got.Spec.DeleteOption.PropagationPolicy != workv1.DeletePropagationPolicyTypeOrphan {
		t.Fatalf("stored deleteOption %+v, want Orphan", got.Spec.DeleteOption)
	}
	if err := e.d.Delete(context.Background(), "c", work); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "work gone", func() error {
		if _, err := e.d.Get(context.Background(), "c", work); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Get: %v", err)
		}
		return nil
	})
	if data, err := e.configMapData(t, "conformance", a); err != nil || data["v"] != "3" {
		t.Fatalf("orphaned ConfigMap %s: %v (%v), want it kept at v=3", a, data, err)
	}
}

// A Namespace is Available once Active, its phase is fed back like the
// agent does, and deleting the work takes the namespace's deletion to its
// end (the namespace controller runs) before Watch says Deleted.
func TestNamespaceReadinessFeedbackAndDeletion(t *testing.T) {
	e := newEnv(t, nil)
	ns := randomName("kubeapply-")
	work := randomName("w-")
	ctx := testContext(t)
	evs, err := e.d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newWork(t, "c", work, 1, namespace(ns), configMap(ns, "info", map[string]any{"k": "v"}))
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{{
		ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: ns},
		FeedbackRules: []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{
			{Name: "phase", Path: ".status.phase"},
			{Name: "name", Path: ".metadata.name"},
		}}},
	}}
	e.apply(t, w)
	got := e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionTrue)
	values := map[string]string{}
	for _, v := range got.Status.ResourceStatus.Manifests[0].StatusFeedbacks.Values {
		if v.Value.String != nil {
			values[v.Name] = *v.Value.String
		}
	}
	if values["phase"] != "Active" || values["name"] != ns {
		t.Fatalf("namespace feedback %v, want phase Active and name %s", values, ns)
	}
	if m := got.Status.ResourceStatus.Manifests[0].ResourceMeta; m.Resource != "namespaces" || m.Version != "v1" || m.Kind != "Namespace" {
		t.Errorf("manifest 0 resource meta %+v", m)
	}

	start := time.Now()
	if err := e.d.Delete(ctx, "c", work); err != nil {
		t.Fatal(err)
	}
	deleted := false
	for !deleted {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Work.Name != work {
				continue
			}
			if ev.Type == watch.Deleted {
				deleted = true
				break
			}
			if ev.Work.DeletionTimestamp == nil {
				continue
			}
			// While deleting, the namespace reports being deleted.
			c := apimeta.FindStatusCondition(ev.Work.Status.Conditions, workv1.WorkAvailable)
			if c != nil && c.Status == metav1.ConditionTrue {
				if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					t.Fatal("the work still says Available with its namespace gone")
				}
			}
		case <-ctx.Done():
			t.Fatalf("no Deleted event for the work: %v", ctx.Err())
		}
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the work was reported Deleted but namespace %s is still there (%v)", ns, err)
	}
	t.Logf("namespace work deleted, namespace included, in %s", time.Since(start).Round(time.Millisecond))
}

// A manifest the API server refuses is a Permanent error naming it, and
// the work says Applied=False, Degraded=True; an unknown kind is refused
// before anything is written.
func TestRefusedManifests(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	work := randomName("w-")
	bad := configMap("conformance", randomName("cm-"), map[string]any{"not a valid key!": "x"})
	_, err := e.d.Apply(testContext(t), newWork(t, "c", work, 1, bad))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "manifest 0") {
		t.Fatalf("applying an invalid ConfigMap: %v, want a Permanent error naming manifest 0", err)
	}
	t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })
	got := e.waitCondition(t, "c", work, 1, workv1.WorkDegraded, metav1.ConditionTrue)
	if c := apimeta.FindStatusCondition(got.Status.Conditions, workv1.WorkApplied); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "not a valid key") {
		t.Fatalf("Applied condition %+v, want False with the server's reason", c)
	}
	if !maestro.StatusSettled(got) {
		t.Error("a failed work is not settled: the pipeline would wait for it until STATUS_TIMEOUT")
	}

	other := randomName("w-")
	unknown := map[string]any{"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": map[string]any{"name": "g"}}
	_, err = e.d.Apply(testContext(t), newWork(t, "c", other, 1, unknown))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "Gadget") {
		t.Fatalf("applying an unknown kind: %v, want a Permanent error naming it", err)
	}
	if _, err := e.d.Get(context.Background(), "c", other); !apierrors.IsNotFound(err) {
		t.Fatalf("Get after the refused kind: %v, want NotFound", err)
	}
}

// An object deleted behind the delivery's back makes the work unavailable;
// the next apply of the same, unchanged work puts it back.
func TestDriftIsReportedAndHealedByTheNextApply(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	work := randomName("w-")
	cmName := randomName("cm-")
	w := newWork(t, "c", work, 1, configMap("conformance", cmName, map[string]any{"v": "1"}))
	e.apply(t, w)
	t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })
	before := e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionTrue)
	if err := e.cs.CoreV1().ConfigMaps("conformance").Delete(context.Background(), cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionFalse)
	after := e.apply(t, w)
	if after.Generation != before.Generation {
		t.Errorf("healing moved the work's version from %d to %d", before.Generation, after.Generation)
	}
	if _, err := e.configMapData(t, "conformance", cmName); err != nil {
		t.Fatalf("ConfigMap not re-created: %v", err)
	}
	e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionTrue)
}

// A delivery started later (a restart, another replica) knows the works
// and finishes a deletion the first one left half done.
func TestRestartFindsWorksAndFinishesDeletions(t *testing.T) {
	cfg := kubetest.Require(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ensureNamespace(t, cs, "conformance")
	ns := kubetest.Namespace(t, cs)
	opts := kubeapply.Options{Namespace: ns, FieldManager: "kubeapply-restart", Logger: maestrotest.SlogLogger(t)}
	first, err := kubeapply.New(testContext(t), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	work := randomName("w-")
	cmName := randomName("cm-")
	if _, err := first.Apply(testContext(t), newWork(t, "c", work, 1, configMap("conformance", cmName, map[string]any{"v": "1"}))); err != nil {
		t.Fatal(err)
	}
	first.Close()
	// The record is marked deleting while no delivery runs.
	if err := cs.CoreV1().Secrets(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: kubeapply.LabelDeliveredBy}); err != nil {
		t.Fatal(err)
	}
	second, err := kubeapply.New(testContext(t), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFor(t, "the deletion finished by the second delivery", func() error {
		if _, err := second.Get(context.Background(), "c", work); !apierrors.IsNotFound(err) {
			return fmt.Errorf("work: Get %v", err)
		}
		if _, err := cs.CoreV1().ConfigMaps("conformance").Get(context.Background(), cmName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap: %v", err)
		}
		return nil
	})
}

// Without the right to keep its records the delivery does not start, and
// says what is missing.
func TestMissingPermissionsArePermanent(t *testing.T) {
	cfg := kubetest.Require(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := kubetest.Namespace(t, cs)
	nobody := rest.CopyConfig(cfg)
	nobody.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":nobody"}
	_, err := kubeapply.New(testContext(t), nobody, kubeapply.Options{Namespace: ns, FieldManager: "kubeapply-test"})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "secrets") || !strings.Contains(err.Error(), ns) {
		t.Fatalf("New without RBAC: %v, want a Permanent error naming secrets in %s", err, ns)
	}
}

// The RBAC the README documents for the namespace adapter is enough: the
// delivery runs as a service account bound to exactly that, applies the
// namespace adapter's work and deletes it.
func TestDocumentedRBACSuffices(t *testing.T) {
	cfg := kubetest.Require(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := kubetest.Namespace(t, cs)
	ctx := testContext(t)
	sa := "adapter"
	name := randomName("kubeapply-rbac-")
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}
	verbs := []string{"get", "list", "watch", "create", "patch", "delete"}
	for _, err := range []error{
		create(ctx, cs.RbacV1().Roles(ns).Create, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}}}}),
		create(ctx, cs.RbacV1().RoleBindings(ns).Create, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}, Subjects: subject}),
		create(ctx, cs.RbacV1().ClusterRoles().Create, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces", "configmaps"}, Verbs: verbs}}}),
		create(ctx, cs.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}, Subjects: subject}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	d, err := kubeapply.New(ctx, as, kubeapply.Options{Namespace: ns, FieldManager: "kubeapply-rbac", Logger: maestrotest.SlogLogger(t)})
	if err != nil {
		t.Fatalf("New as the service account: %v", err)
	}
	t.Cleanup(func() { deleteAllAndClose(t, cs, ns, d) })
	e := &env{cfg: as, cs: cs, namespace: ns, d: d}
	target := randomName("kubeapply-")
	work := randomName("w-")
	e.apply(t, newWork(t, "c", work, 1, namespace(target), configMap(target, "info", map[string]any{"k": "v"})))
	e.waitCondition(t, "c", work, 1, workv1.WorkAvailable, metav1.ConditionTrue)
	e.apply(t, newWork(t, "c", work, 2, namespace(target)))
	if err := d.Delete(ctx, "c", work); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "work and namespace gone", func() error {
		if _, err := d.Get(ctx, "c", work); !apierrors.IsNotFound(err) {
			return fmt.Errorf("work: Get %v", err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, target, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace: %v", err)
		}
		return nil
	})
}

func create[T any](ctx context.Context, f func(context.Context, T, metav1.CreateOptions) (T, error), obj T) error {
	_, err := f(ctx, obj, metav1.CreateOptions{})
	return err
}

// A manifest's ServerSideApply update strategy (what the handlers write)
// is honoured: its field manager, and its force flag (a conflict with
// another manager, not forced, is a Permanent failure and the work
// Degraded); the strategies the delivery cannot honour are refused.
func TestUpdateStrategy(t *testing.T) {
	e := newEnv(t, nil)
	ensureNamespace(t, e.cs, "conformance")
	strategy := func(w *workv1.ManifestWork, name string, st workv1.UpdateStrategy) {
		w.Spec.ManifestConfigs = append(w.Spec.ManifestConfigs, workv1.ManifestConfigOption{
			ResourceIdentifier: workv1.ResourceIdentifier{Resource: "configmaps", Namespace: "conformance", Name: name},
			UpdateStrategy:     &st,
		})
	}
	work := randomName("w-")
	cmName := randomName("cm-")
	t.Cleanup(func() { _ = e.d.Delete(context.Background(), "c", work) })
	w := newWork(t, "c", work, 1, configMap("conformance", cmName, map[string]any{"a": "1"}))
	strategy(w, cmName, workv1.UpdateStrategy{Type: workv1.UpdateStrategyTypeServerSideApply,
		ServerSideApply: &workv1.ServerSideApplyConfig{FieldManager: "hyperfleet-namespace"}})
	e.apply(t, w)
	cm, err := e.cs.CoreV1().ConfigMaps("conformance").Get(context.Background(), cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "hyperfleet-namespace" {
		t.Fatalf("managedFields %+v, want the work's field manager hyperfleet-namespace alone", cm.ManagedFields)
	}

	// Someone else takes data.a over; the work, not forcing, may not.
	cm.Data["a"] = "theirs"
	if _, err := e.cs.CoreV1().ConfigMaps("conformance").Update(context.Background(), cm, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	w2 := newWork(t, "c", work, 2, configMap("conformance", cmName, map[string]any{"a": "2"}))
	w2.Spec.ManifestConfigs = w.Spec.ManifestConfigs
	_, err = e.d.Apply(testContext(t), w2)
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "conflicts with other field managers") {
		t.Fatalf("a non-forced apply over another manager's field: %v, want a Permanent conflict", err)
	}
	e.waitCondition(t, "c", work, 2, workv1.WorkDegraded, metav1.ConditionTrue)
	if data, _ := e.configMapData(t, "conformance", cmName); data["a"] != "theirs" {
		t.Fatalf("data %v: the refused apply changed the object", data)
	}

	other := randomName("w-")
	w3 := newWork(t, "c", other, 1, configMap("conformance", cmName, map[string]any{"a": "1"}))
	strategy(w3, cmName, workv1.UpdateStrategy{Type: workv1.UpdateStrategyTypeReadOnly})
	if _, err := e.d.Apply(testContext(t), w3); err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "ReadOnly") {
		t.Fatalf("a ReadOnly manifest: %v, want a Permanent error naming the strategy", err)
	}
}
