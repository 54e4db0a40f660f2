package maestro_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

func newStore(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.NewStore(embedded.StoreOptions{SourceID: "source-test", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func runAgent(t *testing.T, s *embedded.Store, opts embedded.AgentOptions) {
	t.Helper()
	opts.Logger = testLogger(t)
	a, err := embedded.NewAgent(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func newDelivery(t *testing.T, client workv1client.WorkV1Interface, opts maestro.SourceOptions) *maestro.SourceDelivery {
	t.Helper()
	opts.Logger = testLogger(t)
	if opts.RetryInitial == 0 {
		opts.RetryInitial = time.Millisecond
	}
	d := maestro.NewSourceDelivery(client, opts)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func newBackend(t testing.TB, opts embedded.Options) *embedded.Backend {
	t.Helper()
	opts.Logger = testLogger(t)
	b, err := embedded.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func configMap(name, value string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"data":     map[string]any{"value": value},
	}
}

func newWork(t testing.TB, consumer, name string, gen int64, objs ...map[string]any) *workv1.ManifestWork {
	t.Helper()
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: consumer,
		Labels:      map[string]string{workmeta.LabelAdapter: "test"},
		Annotations: map[string]string{workmeta.AnnotationGeneration: strconv.FormatInt(gen, 10)},
	}}
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{})
		w.Spec.Workload.Manifests[len(w.Spec.Workload.Manifests)-1].Raw = raw
	}
	return w
}

func value(w *workv1.ManifestWork) string {
	var obj struct{ Data map[string]string }
	_ = json.Unmarshal(w.Spec.Workload.Manifests[0].Raw, &obj)
	return obj.Data["value"]
}

// hooked wraps a client to count writes and let a test act just before a
// patch goes through.
type hooked struct {
	workv1client.WorkV1Interface
	beforePatch func(namespace, name string)

	creates, patches atomic.Int32
	mu               sync.Mutex
	patchErrs        []error
}

func (h *hooked) ManifestWorks(ns string) workv1client.ManifestWorkInterface {
	return &hookedWorks{ManifestWorkInterface: h.WorkV1Interface.ManifestWorks(ns), h: h, ns: ns}
}

type hookedWorks struct {
	workv1client.ManifestWorkInterface
	h  *hooked
	ns string
}

func (w *hookedWorks) Create(ctx context.Context, mw *workv1.ManifestWork, o metav1.CreateOptions) (*workv1.ManifestWork, error) {
	w.h.creates.Add(1)
	return w.ManifestWorkInterface.Create(ctx, mw, o)
}

func (w *hookedWorks) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, sub ...string) (*workv1.ManifestWork, error) {
	w.h.patches.Add(1)
	if w.h.beforePatch != nil {
		w.h.beforePatch(w.ns, name)
	}
	res, err := w.ManifestWorkInterface.Patch(ctx, name, pt, data, o, sub...)
	w.h.mu.Lock()
	w.h.patchErrs = append(w.h.patchErrs, err)
	w.h.mu.Unlock()
	return res, err
}

// interlope changes the work directly in the store, as another writer
// would between our read and our patch.
func interlope(t *testing.T, s *embedded.Store, ns, name string) {
	_, err := s.ManifestWorks(ns).Patch(context.Background(), name, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"interloper":"yes"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Errorf("interloping patch: %v", err)
	}
}

func TestApplyRetriesAfterMaestroVersionConflict(t *testing.T) {
	s := newStore(t)
	h := &hooked{WorkV1Interface: s}
	d := newDelivery(t, h, maestro.SourceOptions{})
	ctx := context.Background()
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	h.beforePatch = func(ns, name string) { once.Do(func() { interlope(t, s, ns, name) }) }

	got, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 2, configMap("a", "v2")))
	if err != nil {
		t.Fatalf("Apply after losing one race: %v", err)
	}
	if n := h.patches.Load(); n != 2 {
		t.Fatalf("%d patches, want 2 (refused, then retried)", n)
	}
	first := h.patchErrs[0]
	if apierrors.ReasonForError(first) != "PublishError" || !strings.Contains(first.Error(), "the resource version is not the latest") || apierrors.IsConflict(first) {
		t.Fatalf("first patch error %v: the interleaving did not produce Maestro's conflict", first)
	}
	stored, err := d.Get(ctx, "cluster-a", "w")
	if err != nil {
		t.Fatal(err)
	}
	if value(stored) != "v2" || stored.Annotations[workmeta.AnnotationGeneration] != "2" {
		t.Fatalf("stored %q at generation %s, want v2 at 2", value(stored), stored.Annotations[workmeta.AnnotationGeneration])
	}
	if _, ok := stored.Labels["interloper"]; ok {
		t.Fatal("the interloper's label survived: Apply must leave exactly the desired labels")
	}
	if got.Generation != stored.Generation {
		t.Fatalf("Apply returned version %d, stored is %d", got.Generation, stored.Generation)
	}
}

func TestApplyGivesUpAfterConflictRetries(t *testing.T) {
	s := newStore(t)
	h := &hooked{WorkV1Interface: s}
	d := newDelivery(t, h, maestro.SourceOptions{ConflictRetries: 3})
	ctx := context.Background()
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	h.beforePatch = func(ns, name string) { interlope(t, s, ns, name) }
	_, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 2, configMap("a", "v2")))
	if err == nil {
		t.Fatal("Apply succeeded although every patch lost its race")
	}
	if failure.IsPermanent(err) {
		t.Fatalf("lost races are worth retrying later, got Permanent: %v", err)
	}
	if apierrors.ReasonForError(err) != "PublishError" {
		t.Fatalf("error %v does not carry Maestro's refusal", err)
	}
	if n := h.patches.Load(); n != 4 {
		t.Fatalf("%d patches, want 4 (1 + 3 retries)", n)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	s := newStore(t)
	h := &hooked{WorkV1Interface: s}
	d := newDelivery(t, h, maestro.SourceOptions{})
	ctx := context.Background()
	first, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1")))
	if err != nil {
		t.Fatal(err)
	}
	if first.Generation != 1 {
		t.Fatalf("created at version %d, want 1", first.Generation)
	}
	for range 3 {
		got, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1")))
		if err != nil {
			t.Fatal(err)
		}
		if got.Generation != 1 {
			t.Fatalf("re-apply moved the version to %d", got.Generation)
		}
	}
	if c, p := h.creates.Load(), h.patches.Load(); c != 1 || p != 0 {
		t.Fatalf("%d creates and %d patches for one work applied 4 times unchanged, want 1 and 0", c, p)
	}

	// A stale generation writes nothing either.
	_, err = d.Apply(ctx, newWork(t, "cluster-a", "w", 0, configMap("a", "v0")))
	if !errors.Is(err, workmeta.ErrStaleGeneration) {
		t.Fatalf("stale apply: %v", err)
	}
	if p := h.patches.Load(); p != 0 {
		t.Fatalf("stale apply patched %d times", p)
	}
}

func TestApplyLeavesForeignAnnotationsAlone(t *testing.T) {
	s := newStore(t)
	h := &hooked{WorkV1Interface: s}
	d := newDelivery(t, h, maestro.SourceOptions{})
	ctx := context.Background()
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	// The SDK adds log tracing annotations, and a writer may leave the
	// resource version annotation, which would pin every later patch to a
	// stale version if kept.
	_, err := s.ManifestWorks("cluster-a").Patch(ctx, "w", types.MergePatchType, []byte(`{"metadata":{"annotations":{
		"logging.open-cluster-management.io/trace-id":"abc",
		"cloudevents.open-cluster-management.io/resourceversion":"1"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	if p := h.patches.Load(); p != 0 {
		t.Fatalf("foreign annotations alone caused %d patches", p)
	}
	if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 2, configMap("a", "v2"))); err != nil {
		t.Fatalf("apply over a stale resource version annotation: %v", err)
	}
	got, err := d.Get(ctx, "cluster-a", "w")
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["logging.open-cluster-management.io/trace-id"] != "abc" {
		t.Errorf("log tracing annotation lost: %v", got.Annotations)
	}
	if _, ok := got.Annotations["cloudevents.open-cluster-management.io/resourceversion"]; ok {
		t.Errorf("stale resource version annotation kept: %v", got.Annotations)
	}
	if value(got) != "v2" {
		t.Errorf("value %q, want v2", value(got))
	}
}

func TestApplySetsDeleteOption(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		opts  maestro.SourceOptions
		given *workv1.DeleteOption
		want  workv1.DeletePropagationPolicyType
	}{
		{"DefaultForeground", maestro.SourceOptions{}, nil, workv1.DeletePropagationPolicyTypeForeground},
		{"ConfiguredOrphan", maestro.SourceOptions{DeletePropagation: workv1.DeletePropagationPolicyTypeOrphan}, nil, workv1.DeletePropagationPolicyTypeOrphan},
		{"WorkSaysSo", maestro.SourceOptions{}, &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}, workv1.DeletePropagationPolicyTypeOrphan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDelivery(t, newStore(t), tc.opts)
			w := newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))
			w.Spec.DeleteOption = tc.given
			if _, err := d.Apply(ctx, w); err != nil {
				t.Fatal(err)
			}
			got, err := d.Get(ctx, "cluster-a", "w")
			if err != nil {
				t.Fatal(err)
			}
			if got.Spec.DeleteOption == nil || got.Spec.DeleteOption.PropagationPolicy != tc.want {
				t.Fatalf("deleteOption %+v, want %s", got.Spec.DeleteOption, tc.want)
			}
		})
	}
}

func TestApplyRejectsBadWorks(t *testing.T) {
	d := newDelivery(t, newStore(t), maestro.SourceOptions{})
	ctx := context.Background()
	ok := func() *workv1.ManifestWork { return newWork(t, "cluster-a", "w", 1, configMap("a", "v1")) }
	for _, tc := range []struct {
		name string
		work func() *workv1.ManifestWork
		says string
	}{
		{"Nil", func() *workv1.ManifestWork { return nil }, "nil work"},
		{"NoName", func() *workv1.ManifestWork { w := ok(); w.Name = ""; return w }, "metadata.name"},
		{"NoConsumer", func() *workv1.ManifestWork { w := ok(); w.Namespace = ""; return w }, "consumer"},
		{"NoManifests", func() *workv1.ManifestWork { w := ok(); w.Spec.Workload.Manifests = nil; return w }, "manifests is empty"},
		{"ManifestNotJSON", func() *workv1.ManifestWork { w := ok(); w.Spec.Workload.Manifests[0].Raw = []byte("{"); return w }, "manifest 0"},
		{"ManifestWithoutKind", func() *workv1.ManifestWork {
			return newWork(t, "cluster-a", "w", 1, map[string]any{"apiVersion": "v1", "metadata": map[string]any{"name": "x"}})
		}, "Kind' is missing"},
		{"ManifestWithoutName", func() *workv1.ManifestWork {
			return newWork(t, "cluster-a", "w", 1, map[string]any{"apiVersion": "v1", "kind": "ConfigMap"})
		}, "metadata.name"},
		{"GenerateName", func() *workv1.ManifestWork {
			return newWork(t, "cluster-a", "w", 1, map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "generateName": "x-"}})
		}, "generateName"},
		{"BadGeneration", func() *workv1.ManifestWork { w := ok(); w.Annotations[workmeta.AnnotationGeneration] = "two"; return w }, workmeta.AnnotationGeneration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Apply(ctx, tc.work())
			if err == nil {
				t.Fatal("accepted")
			}
			if !failure.IsPermanent(err) {
				t.Errorf("%v is not Permanent", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not mention %q", err, tc.says)
			}
		})
	}
	if _, err := d.Get(ctx, "cluster-a", "w"); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused work was stored: %v", err)
	}
}

func TestApplyWaitsForADeletionToFinish(t *testing.T) {
	ctx := context.Background()
	t.Run("RecreatesOnceGone", func(t *testing.T) {
		b := newBackend(t, embedded.Options{AgentDelay: 30 * time.Millisecond})
		if _, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, "cluster-a", "w"); err != nil {
			t.Fatal(err)
		}
		got, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 2, configMap("a", "v2")))
		if err != nil {
			t.Fatalf("apply during deletion: %v", err)
		}
		if got.DeletionTimestamp != nil || value(got) != "v2" || got.Generation != 1 {
			t.Fatalf("got %q at version %d deleting=%v, want a new work (version 1) holding v2", value(got), got.Generation, got.DeletionTimestamp != nil)
		}
	})
	t.Run("GivesUpWhenNoAgentConfirms", func(t *testing.T) {
		s := newStore(t) // no agent: the deletion is never confirmed
		d := newDelivery(t, s, maestro.SourceOptions{DeleteWait: 100 * time.Millisecond})
		if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
			t.Fatal(err)
		}
		if err := d.Delete(ctx, "cluster-a", "w"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 2, configMap("a", "v2")))
		if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "still being deleted") {
			t.Fatalf("apply over an unconfirmed deletion: %v, want a transient 'still being deleted' error", err)
		}
		if took := time.Since(start); took < 100*time.Millisecond {
			t.Fatalf("gave up after %s, before DeleteWait", took)
		}
	})
	t.Run("StaleGenerationDoesNotWait", func(t *testing.T) {
		s := newStore(t)
		d := newDelivery(t, s, maestro.SourceOptions{DeleteWait: time.Minute})
		if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 5, configMap("a", "v5"))); err != nil {
			t.Fatal(err)
		}
		if err := d.Delete(ctx, "cluster-a", "w"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Apply(ctx, newWork(t, "cluster-a", "w", 4, configMap("a", "v4"))); !errors.Is(err, workmeta.ErrStaleGeneration) {
			t.Fatalf("older apply over a deleting newer work: %v, want ErrStaleGeneration at once", err)
		}
	})
}

// sharedNamespace reproduces grpcsource's WorkV1ClientWrapper, which no
// in-process server can give us: ManifestWorks(namespace) sets the
// namespace on one shared object and returns it, and each call reads the
// namespace when it runs. (The field is guarded here so the race detector
// reports our mistakes, not this stand-in's.)
type sharedNamespace struct {
	store *embedded.Store
	mu    sync.Mutex
	ns    string
}

func (c *sharedNamespace) ManifestWorks(ns string) workv1client.ManifestWorkInterface {
	c.mu.Lock()
	c.ns = ns
	c.mu.Unlock()
	return sharedWorks{c}
}
func (c *sharedNamespace) AppliedManifestWorks() workv1client.AppliedManifestWorkInterface {
	return nil
}
func (c *sharedNamespace) RESTClient() rest.Interface { return nil }

func (c *sharedNamespace) current() workv1client.ManifestWorkInterface {
	runtime.Gosched() // widen the window between setting and using the namespace
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.ManifestWorks(c.ns)
}

type sharedWorks struct{ c *sharedNamespace }

func (w sharedWorks) Create(ctx context.Context, mw *workv1.ManifestWork, o metav1.CreateOptions) (*workv1.ManifestWork, error) {
	return w.c.current().Create(ctx, mw, o)
}
func (w sharedWorks) Update(ctx context.Context, mw *workv1.ManifestWork, o metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return w.c.current().Update(ctx, mw, o)
}
func (w sharedWorks) UpdateStatus(ctx context.Context, mw *workv1.ManifestWork, o metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return w.c.current().UpdateStatus(ctx, mw, o)
}
func (w sharedWorks) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	return w.c.current().Delete(ctx, name, o)
}
func (w sharedWorks) DeleteCollection(ctx context.Context, o metav1.DeleteOptions, l metav1.ListOptions) error {
	return w.c.current().DeleteCollection(ctx, o, l)
}
func (w sharedWorks) Get(ctx context.Context, name string, o metav1.GetOptions) (*workv1.ManifestWork, error) {
	return w.c.current().Get(ctx, name, o)
}
func (w sharedWorks) List(ctx context.Context, o metav1.ListOptions) (*workv1.ManifestWorkList, error) {
	return w.c.current().List(ctx, o)
}
func (w sharedWorks) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return w.c.current().Watch(ctx, o)
}
func (w sharedWorks) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, sub ...string) (*workv1.ManifestWork, error) {
	return w.c.current().Patch(ctx, name, pt, data, o, sub...)
}

func TestConcurrentConsumersOnASharedNamespaceClient(t *testing.T) {
	s := newStore(t)
	d := newDelivery(t, &sharedNamespace{store: s}, maestro.SourceOptions{})
	ctx := context.Background()
	consumers := []string{"cluster-a", "cluster-b", "cluster-c"}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 30 {
		consumer := consumers[i%len(consumers)]
		gen := int64(i/len(consumers) + 1)
		w := newWork(t, consumer, "w"+strconv.Itoa(i%6), gen, configMap("a", consumer))
		wg.Go(func() {
			if _, err := d.Apply(ctx, w); err != nil && !errors.Is(err, workmeta.ErrStaleGeneration) {
				errs <- err
			}
			if i%5 == 0 {
				if _, err := d.Get(ctx, consumer, "w0"); err != nil && !apierrors.IsNotFound(err) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, err := s.ManifestWorks(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range l.Items {
		if value(&w) != w.Namespace {
			t.Errorf("work %s/%s holds %s's manifest", w.Namespace, w.Name, value(&w))
		}
	}
	if len(l.Items) != 6 {
		t.Errorf("%d works, want 6 (2 names in each of 3 consumers)", len(l.Items))
	}
}

func TestWatchIsSharedByAllCallers(t *testing.T) {
	b := newBackend(t, embedded.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The store hands both the same watcher, as grpcsource does: without
	// the delivery's fan-out the two would split the events.
	chans := make([]<-chan maestro.WorkEvent, 3)
	for i := range chans {
		var err error
		if chans[i], err = b.Watch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Apply(ctx, newWork(t, "cluster-a", "w", 1, configMap("a", "v1"))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Go(func() {
			deadline := time.After(5 * time.Second)
			for {
				select {
				case ev := <-ch:
					if ev.Work.Name == "w" && apimeta.IsStatusConditionTrue(ev.Work.Status.Conditions, workv1.WorkApplied) {
						return
					}
				case <-deadline:
					t.Errorf("watcher %d never saw the work applied", i)
					return
				}
			}
		})
	}
	wg.Wait()

	// Close ends every Watch channel and refuses new ones.
	if err := b.SourceDelivery.Close(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		deadline := time.After(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatalf("watch %d still open after Close", i)
			}
		}
	}
	if _, err := b.Watch(ctx); err == nil {
		t.Fatal("Watch after Close succeeded")
	}
}

func TestSourceOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts maestro.SourceOptions
		says string
	}{
		{maestro.SourceOptions{ConflictRetries: -1}, "ConflictRetries"},
		{maestro.SourceOptions{RetryInitial: -time.Second}, "RetryInitial"},
		{maestro.SourceOptions{RetryInitial: time.Second, RetryMax: time.Millisecond}, "RetryMax"},
		{maestro.SourceOptions{DeleteWait: -1}, "DeleteWait"},
		{maestro.SourceOptions{DeletePropagation: workv1.DeletePropagationPolicyTypeSelectivelyOrphan}, "DeletePropagation"},
	} {
		err := tc.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.opts, err, tc.says)
		}
	}
	if err := (maestro.SourceOptions{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewSourceDelivery accepted invalid options")
		}
	}()
	maestro.NewSourceDelivery(newStore(t), maestro.SourceOptions{ConflictRetries: -1})
}

func TestGetAndDeleteErrors(t *testing.T) {
	d := newDelivery(t, newStore(t), maestro.SourceOptions{})
	_, err := d.Get(context.Background(), "cluster-a", "missing")
	if !apierrors.IsNotFound(err) || !failure.IsPermanent(err) {
		t.Fatalf("Get of a missing work: %v, want NotFound, Permanent", err)
	}
	if !strings.Contains(err.Error(), "cluster-a/missing") {
		t.Errorf("error %q does not name the work", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Get(ctx, "cluster-a", "missing"); err == nil || failure.IsPermanent(err) {
		t.Fatalf("Get with a cancelled context: %v, want a transient error", err)
	}
}
