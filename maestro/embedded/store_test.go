package embedded_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

const source = "store-test"

func newStore(t *testing.T, opts embedded.StoreOptions) *embedded.Store {
	t.Helper()
	if opts.SourceID == "" {
		opts.SourceID = source
	}
	opts.Logger = testLogger(t)
	s, err := embedded.NewStore(opts)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// runAgent runs an agent on s until the test ends.
func runAgent(t *testing.T, s *embedded.Store, opts embedded.AgentOptions) {
	t.Helper()
	opts.Logger = testLogger(t)
	a, err := embedded.NewAgent(s, opts)
	if err != nil {
		t.Fatalf("NewAgent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func manifest(t *testing.T, obj map[string]any) workv1.Manifest {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
}

func cm(name string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": "ns"}}
}

func work(t *testing.T, ns, name string, objs ...map[string]any) *workv1.ManifestWork {
	t.Helper()
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, o := range objs {
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, manifest(t, o))
	}
	return w
}

func mustCreate(t *testing.T, c workv1client.ManifestWorkInterface, w *workv1.ManifestWork) *workv1.ManifestWork {
	t.Helper()
	got, err := c.Create(context.Background(), w, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return got
}

func mustGet(t *testing.T, c workv1client.ManifestWorkInterface, name string) *workv1.ManifestWork {
	t.Helper()
	got, err := c.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return got
}

// statusCode is the HTTP code a StatusError carries.
func statusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}

func TestStoreCreate(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	echo := mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))

	// Maestro's work id: UUIDv5 (SHA-1, OID namespace) of
	// "<source>-<group/resource>-<consumer>-<name>".
	wantUID := uuid.NewSHA1(uuid.NameSpaceOID, []byte(source+"-manifestworks.work.open-cluster-management.io-cluster-a-w1")).String()
	if string(echo.UID) != wantUID {
		t.Errorf("UID %s, want %s", echo.UID, wantUID)
	}
	if echo.Generation != 0 {
		t.Errorf("Create answered generation %d; the OCM source client echoes the request (0)", echo.Generation)
	}
	got := mustGet(t, c, "w1")
	if got.Generation != 1 || got.ResourceVersion != "1" || string(got.UID) != wantUID {
		t.Errorf("stored generation %d, resourceVersion %q, uid %s; want 1, \"1\", %s", got.Generation, got.ResourceVersion, got.UID, wantUID)
	}
	if got.CreationTimestamp.IsZero() {
		t.Error("no creationTimestamp")
	}

	// Same inputs, same id: a second store with the same source agrees.
	s2 := newStore(t, embedded.StoreOptions{})
	if again := mustCreate(t, s2.ManifestWorks("cluster-a"), work(t, "cluster-a", "w1", cm("a"))); again.UID != echo.UID {
		t.Errorf("UID not deterministic: %s then %s", echo.UID, again.UID)
	}

	if _, err := c.Create(context.Background(), work(t, "cluster-a", "w1", cm("a")), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("duplicate Create: %v, want AlreadyExists", err)
	}
	if _, err := c.Create(context.Background(), work(t, "cluster-b", "w2", cm("a")), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("Create with another consumer's namespace: %v, want Invalid", err)
	}
	if _, err := c.Create(context.Background(), work(t, "cluster-a", "w3", map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("Create with a nameless manifest: %v, want Invalid", err)
	}
	if _, err := c.Create(context.Background(), work(t, "cluster-a", "w4"), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("Create without manifests: %v, want Invalid", err)
	}
}

func TestStoreUnsupportedMethods(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	w := mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))
	ctx := context.Background()
	if _, err := c.Update(ctx, w, metav1.UpdateOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("Update: %v, want MethodNotSupported", err)
	}
	if _, err := c.UpdateStatus(ctx, w, metav1.UpdateOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("UpdateStatus: %v, want MethodNotSupported", err)
	}
	if err := c.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("DeleteCollection: %v, want MethodNotSupported", err)
	}
	if _, err := c.Patch(ctx, "w1", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}, "status"); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("Patch of the status subresource: %v, want MethodNotSupported", err)
	}
	if _, err := c.Patch(ctx, "missing", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Patch of a missing work: %v, want NotFound", err)
	}
}

func TestStorePatchVersioning(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	ctx := context.Background()
	mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))

	// No generation in the patch: the client carries the current one.
	echo, err := c.Patch(ctx, "w1", types.MergePatchType, []byte(`{"metadata":{"labels":{"k":"v1"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch without a generation: %v", err)
	}
	if echo.Generation != 1 {
		t.Errorf("Patch answered generation %d; the client echoes the version it sent (1)", echo.Generation)
	}
	if got := mustGet(t, c, "w1"); got.Generation != 2 || got.Labels["k"] != "v1" {
		t.Fatalf("after patch: generation %d labels %v, want 2 and k=v1", got.Generation, got.Labels)
	}

	// A patch carrying the current generation is accepted.
	if _, err := c.Patch(ctx, "w1", types.MergePatchType, []byte(`{"metadata":{"generation":2,"labels":{"k":"v2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch with the current generation: %v", err)
	}

	// One carrying a stale generation is refused the way Maestro does.
	_, err = c.Patch(ctx, "w1", types.MergePatchType, []byte(`{"metadata":{"generation":2,"labels":{"k":"stale"}}}`), metav1.PatchOptions{})
	switch {
	case err == nil:
		t.Fatal("patch with a stale generation was accepted")
	case apierrors.ReasonForError(err) != "PublishError" || statusCode(err) != http.StatusInternalServerError:
		t.Fatalf("stale patch: reason %q code %d, want PublishError 500 (%v)", apierrors.ReasonForError(err), statusCode(err), err)
	case apierrors.IsConflict(err):
		t.Fatal("stale patch is IsConflict; Maestro's is not")
	case !strings.Contains(err.Error(), "the resource version is not the latest"):
		t.Fatalf("stale patch message %q lacks Maestro's words", err)
	}
	if got := mustGet(t, c, "w1"); got.Generation != 3 || got.Labels["k"] != "v2" {
		t.Fatalf("refused patch changed the work: generation %d labels %v", got.Generation, got.Labels)
	}

	// The resource version annotation wins over metadata.generation.
	_, err = c.Patch(ctx, "w1", types.MergePatchType,
		[]byte(`{"metadata":{"generation":3,"annotations":{"cloudevents.open-cluster-management.io/resourceversion":"1"}}}`), metav1.PatchOptions{})
	if apierrors.ReasonForError(err) != "PublishError" {
		t.Fatalf("patch whose resourceversion annotation is stale: %v, want PublishError", err)
	}

	// A patch changing nothing still makes a new version: Maestro compares
	// payloads that include the CloudEvent id.
	if _, err := c.Patch(ctx, "w1", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("empty patch: %v", err)
	}
	if got := mustGet(t, c, "w1"); got.Generation != 4 {
		t.Fatalf("empty patch left generation %d, want 4", got.Generation)
	}

	// JSON patch works too.
	jp := `[{"op":"add","path":"/spec/workload/manifests/0/data","value":{"x":"y"}}]`
	if _, err := c.Patch(ctx, "w1", types.JSONPatchType, []byte(jp), metav1.PatchOptions{}); err != nil {
		t.Fatalf("JSON patch: %v", err)
	}
	got := mustGet(t, c, "w1")
	var obj struct{ Data map[string]string }
	_ = json.Unmarshal(got.Spec.Workload.Manifests[0].Raw, &obj)
	if got.Generation != 5 || obj.Data["x"] != "y" {
		t.Fatalf("after JSON patch: generation %d data %v", got.Generation, obj.Data)
	}
	if _, err := c.Patch(ctx, "w1", types.JSONPatchType, []byte(`not json`), metav1.PatchOptions{}); err == nil {
		t.Fatal("malformed patch accepted")
	}
}

func TestStoreManifestSetChange(t *testing.T) {
	ctx := context.Background()
	twoManifests := []byte(`{"spec":{"workload":{"manifests":[` +
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns"}},` +
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"ns"}}]}}}`)
	renamed := []byte(`{"spec":{"workload":{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z","namespace":"ns"}}]}}}`)

	t.Run("RefusedLikeThePinnedMaestro", func(t *testing.T) {
		c := newStore(t, embedded.StoreOptions{}).ManifestWorks("cluster-a")
		mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))
		for _, p := range [][]byte{twoManifests, renamed} {
			_, err := c.Patch(ctx, "w1", types.MergePatchType, p, metav1.PatchOptions{})
			if apierrors.ReasonForError(err) != "PublishError" || !strings.Contains(err.Error(), "the new manifest bundle in the resource is invalid") {
				t.Fatalf("manifest set change: %v, want Maestro's refusal", err)
			}
		}
		if got := mustGet(t, c, "w1"); got.Generation != 1 {
			t.Fatalf("refused patches moved the generation to %d", got.Generation)
		}
	})
	t.Run("AcceptedLikeNewerMaestro", func(t *testing.T) {
		c := newStore(t, embedded.StoreOptions{AcceptManifestSetChange: true}).ManifestWorks("cluster-a")
		mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))
		if _, err := c.Patch(ctx, "w1", types.MergePatchType, twoManifests, metav1.PatchOptions{}); err != nil {
			t.Fatalf("manifest set change: %v", err)
		}
		if n := len(mustGet(t, c, "w1").Spec.Workload.Manifests); n != 2 {
			t.Fatalf("%d manifests, want 2", n)
		}
	})
}

func TestStoreSoftDelete(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	ctx := context.Background()
	if err := c.Delete(ctx, "missing", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting a missing work: %v, want nil", err)
	}
	mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))
	w, err := c.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	nextEvent(t, w) // the resync of w1

	if err := c.Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// No agent yet: the work lingers, marked.
	got := mustGet(t, c, "w1")
	if got.DeletionTimestamp == nil {
		t.Fatal("deleted work not marked deleting")
	}
	if _, err := c.Patch(ctx, "w1", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{}); apierrors.ReasonForError(err) != "PublishError" || !strings.Contains(err.Error(), "under deletion") {
		t.Fatalf("patching a work being deleted: %v, want Maestro's under-deletion refusal", err)
	}
	if _, err := c.Create(ctx, work(t, "cluster-a", "w1", cm("a")), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating a work being deleted: %v, want AlreadyExists", err)
	}

	runAgent(t, s, embedded.AgentOptions{})
	ev := nextEvent(t, w)
	if ev.Type != watch.Deleted {
		t.Fatalf("after the agent confirmed: %s event, want Deleted", ev.Type)
	}
	if !apimeta.IsStatusConditionTrue(ev.Object.(*workv1.ManifestWork).Status.Conditions, "Deleted") {
		t.Fatal("Deleted event's work lacks the Deleted condition")
	}
	if _, err := c.Get(ctx, "w1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Get after deletion: %v, want NotFound", err)
	}
}

// waitStored polls Get until ok accepts the work, failing after 5s.
func waitStored(t *testing.T, c workv1client.ManifestWorkInterface, name string, ok func(*workv1.ManifestWork) bool) *workv1.ManifestWork {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		w, err := c.Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(w) {
			return w
		}
		select {
		case <-deadline:
			t.Fatalf("work %s: condition not met within 5s (last error %v)", name, err)
		case <-tick.C:
		}
	}
}

// waitGone polls Get until the work is not found, failing after 5s.
func waitGone(t *testing.T, c workv1client.ManifestWorkInterface, name string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("work %s still there after 5s (last error %v)", name, err)
		case <-tick.C:
		}
	}
}

// nextEvent reads one event, failing after 5s.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev := <-w.ResultChan():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event within 5s")
		return watch.Event{}
	}
}

func TestStoreWatch(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	ctx := context.Background()
	a, b := s.ManifestWorks("cluster-a"), s.ManifestWorks("cluster-b")
	mustCreate(t, a, work(t, "cluster-a", "old", cm("a")))

	all, err := s.ManifestWorks(metav1.NamespaceAll).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A new watcher first gets every existing work as Modified.
	if ev := nextEvent(t, all); ev.Type != watch.Modified || ev.Object.(*workv1.ManifestWork).Name != "old" {
		t.Fatalf("first event %s %s, want the resync of old as Modified", ev.Type, ev.Object.(*workv1.ManifestWork).Name)
	}
	// Watchers of one namespace share one watcher.
	again, err := s.ManifestWorks(metav1.NamespaceAll).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again != all {
		t.Fatal("a second watch of the same namespace got its own watcher; grpcsource shares one")
	}
	nextEvent(t, all) // the second resync of old

	onlyA, err := a.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The resync of old goes to both watchers, in either order.
	for gotAll, gotA := false, false; !gotAll || !gotA; {
		select {
		case <-all.ResultChan():
			gotAll = true
		case <-onlyA.ResultChan():
			gotA = true
		case <-time.After(5 * time.Second):
			t.Fatal("resync of old did not reach both watchers")
		}
	}

	mustCreate(t, a, work(t, "cluster-a", "wa", cm("a")))
	runAgent(t, s, embedded.AgentOptions{})
	// Once wa's status is stored, its event is queued: wb's comes after.
	waitStored(t, a, "wa", func(w *workv1.ManifestWork) bool {
		return apimeta.IsStatusConditionTrue(w.Status.Conditions, workv1.WorkApplied)
	})
	mustCreate(t, b, work(t, "cluster-b", "wb", cm("b")))

	// Nobody reads onlyA: the status of a work in cluster-a blocks there,
	// and the watcher of everything waits with it, even for cluster-b.
	heldUp := time.After(200 * time.Millisecond)
wait:
	for {
		select {
		case ev := <-all.ResultChan():
			w := ev.Object.(*workv1.ManifestWork)
			if w.Name == "wb" {
				t.Fatal("cluster-b's status arrived although cluster-a's watcher was not read")
			}
		case <-heldUp:
			break wait
		}
	}
	// Reading onlyA releases everything.
	var seenA, seenB bool
	deadline := time.After(5 * time.Second)
	for !seenA || !seenB {
		select {
		case ev := <-onlyA.ResultChan():
			w := ev.Object.(*workv1.ManifestWork)
			if w.Namespace != "cluster-a" {
				t.Fatalf("watcher of cluster-a got a work of %s", w.Namespace)
			}
			seenA = seenA || w.Name == "wa"
		case ev := <-all.ResultChan():
			w := ev.Object.(*workv1.ManifestWork)
			if ev.Type != watch.Modified {
				t.Fatalf("%s event for %s; want Modified (Maestro sends no Added)", ev.Type, w.Name)
			}
			if w.Name == "wb" {
				seenB = true
				if !apimeta.IsStatusConditionTrue(w.Status.Conditions, workv1.WorkApplied) {
					t.Fatal("wb's event does not show it applied")
				}
				if w.Annotations["cloudevents.open-cluster-management.io/sequenceid"] == "" {
					t.Fatal("status event without the sequence id annotation")
				}
			}
		case <-deadline:
			t.Fatalf("after reading cluster-a's watcher: saw wa %v, wb %v", seenA, seenB)
		}
	}

	// One Stop does not close the channel (grpcsource closes it on the
	// second); the next Watch gets a new watcher.
	onlyA.Stop()
	select {
	case _, ok := <-onlyA.ResultChan():
		if !ok {
			t.Fatal("first Stop closed the channel")
		}
	default:
	}
	fresh, err := a.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fresh == onlyA {
		t.Fatal("Watch after Stop returned the stopped watcher")
	}
	fresh.Stop()
	all.Stop()
	onlyA.Stop()
	if _, ok := <-onlyA.ResultChan(); ok {
		t.Fatal("second Stop did not close the channel")
	}
}

func TestStoreList(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	ctx := context.Background()
	for _, ns := range []string{"cluster-b", "cluster-a"} {
		w := work(t, ns, "w-"+ns, cm("a"))
		w.Labels = map[string]string{"cluster": ns}
		mustCreate(t, s.ManifestWorks(ns), w)
	}
	l, err := s.ManifestWorks(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 || l.Items[0].Namespace != "cluster-a" {
		t.Fatalf("List all: %v %+v", err, l)
	}
	l, err = s.ManifestWorks(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: "cluster=cluster-b"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "w-cluster-b" {
		t.Fatalf("List by label: %v %+v", err, l)
	}
	l, err = s.ManifestWorks("cluster-a").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "w-cluster-a" {
		t.Fatalf("List one consumer: %v %+v", err, l)
	}
	if _, err := s.ManifestWorks("").List(ctx, metav1.ListOptions{LabelSelector: "=="}); err == nil {
		t.Fatal("List with a broken selector succeeded")
	}
}

func TestStoreOptionsValidate(t *testing.T) {
	if _, err := embedded.NewStore(embedded.StoreOptions{}); err == nil || !strings.Contains(err.Error(), "SourceID") {
		t.Fatalf("NewStore without a source: %v, want an error naming SourceID", err)
	}
	s := newStore(t, embedded.StoreOptions{})
	if _, err := embedded.NewAgent(s, embedded.AgentOptions{Delay: -time.Second}); err == nil || !strings.Contains(err.Error(), "Delay") {
		t.Fatalf("NewAgent with a negative delay: %v, want an error naming Delay", err)
	}
}
