// Package kubeapply is the Kubernetes delivery backend (DELIVERY=kubernetes):
// it applies a work's manifests itself, with server-side apply, to the
// Kubernetes API the adapter's client points at (KUBECONFIG or in-cluster),
// for adapters that act on the management cluster they run in. It plays both
// Maestro's part (keeping the works) and the work agent's (applying them and
// reporting their status).
//
// A work is kept as a record, a Secret of type hyperfleet.io/manifestwork in
// Options.Namespace named after a hash of consumer and work name: the work
// (labels, annotations, spec), its version (metadata.generation, bumped when
// the spec, labels or annotations change), the version last applied in full,
// the last failure, and every object the work may have on the cluster. That
// list is how a manifest dropped from the set is deleted, and how deleting the
// work finds everything. The consumer only names the work: every work lands
// on the one cluster the client points at.
//
// What the maestro.Delivery methods mean here:
//
//   - Apply writes the record (guarded by its resourceVersion), then applies
//     each manifest in order with server-side apply (field manager and force
//     flag from the manifest's ServerSideApply update strategy, which the
//     handlers set, else Options.FieldManager, forced; a conflict that is
//     not forced fails like a refused manifest; CreateOnly and ReadOnly are
//     refused, as the informers only see objects the delivery labelled),
//     each object labelled
//     LabelDeliveredBy and annotated with its work and resource generation
//     (workmeta.AnnotationGeneration). Every object write is guarded too: the
//     object is read, refused as stale when the same work already wrote a
//     newer generation to it (ErrStaleGeneration, as for the record), and
//     applied with that resourceVersion as precondition, so a racing writer
//     makes it read again rather than move the object backwards. A missing
//     object is created (Create fails if another writer got there first),
//     and its fields are then handed from that Update to the field manager's
//     Apply entry (client-go csaupgrade), so that a field later dropped from
//     the manifest is removed. Objects dropped from the set are then
//     deleted (unless the work's deleteOption orphans them), and the record
//     marked applied. A manifest the API server refuses (invalid, forbidden,
//     an unknown kind) is recorded as the work's failure (Applied=False,
//     Degraded=True) and returned Permanent; anything else (conflicts beyond
//     ConflictRetries, a missing namespace, a server error) Transient.
//   - Delete deletes the record; its finalizer keeps it, marked deleting,
//     while the delivery deletes the objects with the configured propagation;
//     once none is left the finalizer goes and Watch reports Deleted.
//   - Get and Watch compute the status from informers: the records', and one
//     dynamic informer per kind used (started when a work first uses it,
//     selecting on LabelDeliveredBy). Conditions as the OCM work agent sets
//     them: Applied when every manifest of the version was applied; Available
//     when every object exists and is ready (see ready); Degraded when
//     applying failed; per manifest Applied, Available and status feedback
//     (JSONPath rules evaluated against the whole live object, as the agent
//     does, and its well-known status rules).
package kubeapply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Delivery is the Kubernetes delivery backend. Build it with New; Close it.
type Delivery struct {
	opts   Options
	log    *slog.Logger
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper

	recordFactory informers.SharedInformerFactory
	records       cache.SharedIndexInformer
	objFactory    dynamicinformer.DynamicSharedInformerFactory

	imu       sync.Mutex
	objSynced map[schema.GroupVersionResource]cache.InformerSynced

	queue  workqueue.TypedRateLimitingInterface[string] // record names
	stop   chan struct{}
	worker sync.WaitGroup
	closed sync.Once

	mu      sync.Mutex
	emitted map[string]*workv1.ManifestWork // record name → the work last reported
	owners  map[objectKey]map[string]struct{}
	owned   map[string][]objectKey // record name → its keys in owners

	watches *maestro.WorkEventFanout
}

var _ maestro.Delivery = (*Delivery)(nil)

// errNotListed: an informer the work's status needs has not listed its
// objects yet.
var errNotListed = errors.New("informer has not listed its objects yet")

var manifestWorks = schema.GroupResource{Group: workv1.GroupName, Resource: "manifestworks"}

// New checks opts and the adapter's permissions on the work records (a
// missing one is a Permanent error naming it), starts the records' informer
// and waits, bounded by ctx and SyncTimeout, until it has listed them.
func New(ctx context.Context, cfg *rest.Config, opts Options) (*Delivery, error) {
	if err := opts.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	opts = opts.withDefaults()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, failure.Permanent(fmt.Errorf("kubernetes delivery: client: %w", err))
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, failure.Permanent(fmt.Errorf("kubernetes delivery: dynamic client: %w", err))
	}
	d := &Delivery{
		opts:      opts,
		log:       opts.Logger.With("component", "kubernetes-delivery"),
		cs:        cs,
		dyn:       dyn,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery())),
		objSynced: map[schema.GroupVersionResource]cache.InformerSynced{},
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.RetryInitial, 30*time.Second)),
		stop:    make(chan struct{}),
		emitted: map[string]*workv1.ManifestWork{},
		owners:  map[objectKey]map[string]struct{}{},
		owned:   map[string][]objectKey{},
	}
	d.watches = maestro.NewWorkEventFanout(d.stop, "kubernetes delivery")
	if err := d.checkAccess(ctx); err != nil {
		return nil, err
	}
	selector := labels.SelectorFromSet(labels.Set{LabelDeliveredBy: opts.FieldManager}).String()
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = selector }
	d.recordFactory = informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(opts.Namespace), informers.WithTweakListOptions(tweak), informers.WithTransform(maestro.StripManagedFields))
	d.records = d.recordFactory.Core().V1().Secrets().Informer()
	d.objFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, metav1.NamespaceAll, tweak)
	reg, err := d.records.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    d.onRecord,
		UpdateFunc: func(_, obj any) { d.onRecord(obj) },
		DeleteFunc: d.onRecord,
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes delivery: %w", err)
	}
	d.recordFactory.Start(d.stop)
	d.worker.Add(1)
	go d.work()
	syncCtx, cancel := context.WithTimeout(ctx, opts.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), d.records.HasSynced, reg.HasSynced) {
		d.Close()
		return nil, failure.Transient(fmt.Errorf("kubernetes delivery: the work records of namespace %s were not listed within %s",
			opts.Namespace, opts.SyncTimeout))
	}
	return d, nil
}

// recordPermissions is what the delivery does with its records; the
// objects' kinds are the handler's to know (README: RBAC).
var recordPermissions = []string{"get", "list", "watch", "create", "update", "delete"}

// checkAccess fails early, and permanently, when the adapter may not keep
// its records: otherwise it would show as informers that never learn
// anything. It asks the API server (SelfSubjectAccessReview).
func (d *Delivery) checkAccess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.SyncTimeout)
	defer cancel()
	var missing []string
	for _, verb := range recordPermissions {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: d.opts.Namespace, Resource: "secrets", Verb: verb},
		}}
		got, err := d.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return classify(fmt.Errorf("kubernetes delivery: checking what the adapter may do in namespace %s: %w", d.opts.Namespace, err))
		}
		if !got.Status.Allowed {
			missing = append(missing, verb)
		}
	}
	if len(missing) > 0 {
		return failure.Permanentf("kubernetes delivery: the adapter may not %s secrets in namespace %s (KUBE_WORK_NAMESPACE), where it keeps its work records",
			strings.Join(missing, ", "), d.opts.Namespace)
	}
	return nil
}

// Close stops the informers and the worker and ends every Watch. It is
// safe to call more than once.
func (d *Delivery) Close() {
	d.closed.Do(func() {
		close(d.stop)
		d.queue.ShutDown()
		d.worker.Wait()
		d.recordFactory.Shutdown()
		d.objFactory.Shutdown()
		d.watches.Close()
	})
}

// Ready reports whether the records' informer has listed them.
func (d *Delivery) Ready(context.Context) error {
	if !d.records.HasSynced() {
		return errors.New("kubernetes delivery: work records not listed yet")
	}
	return nil
}

func (d *Delivery) onRecord(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		d.queue.Add(strings.TrimPrefix(t.Key, d.opts.Namespace+"/"))
		return
	}
	if s, ok := obj.(*corev1.Secret); ok {
		d.queue.Add(s.Name)
	}
}

// onObject queues the works owning a changed object.
func (d *Delivery) onObject(gvr schema.GroupVersionResource) func(obj any) {
	return func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		key := objectKey{gvr.Group, gvr.Resource, m.GetNamespace(), m.GetName()}
		d.mu.Lock()
		names := make([]string, 0, len(d.owners[key]))
		for n := range d.owners[key] {
			names = append(names, n)
		}
		d.mu.Unlock()
		for _, n := range names {
			d.queue.Add(n)
		}
	}
}

// informer starts (once) the informer of gvr's objects labelled as this
// delivery's and returns whether its first list is done.
func (d *Delivery) informer(gvr schema.GroupVersionResource) cache.InformerSynced {
	d.imu.Lock()
	defer d.imu.Unlock()
	if synced, ok := d.objSynced[gvr]; ok {
		return synced
	}
	inf := d.objFactory.ForResource(gvr).Informer()
	_ = inf.SetTransform(maestro.StripManagedFields)
	h := d.onObject(gvr)
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: h, UpdateFunc: func(_, obj any) { h(obj) }, DeleteFunc: h,
	})
	synced := inf.HasSynced
	if err == nil {
		synced = func() bool { return inf.HasSynced() && reg.HasSynced() }
	}
	d.objSynced[gvr] = synced
	d.objFactory.Start(d.stop)
	return synced
}

// waitInformers starts the informers of refs' kinds and waits for their
// first lists, bounded by ctx and SyncTimeout.
func (d *Delivery) waitInformers(ctx context.Context, refs []objectRef) error {
	var synced []cache.InformerSynced
	for _, r := range refs {
		synced = append(synced, d.informer(r.gvr()))
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return failure.Transient(fmt.Errorf("kubernetes delivery: the objects' informers did not list them within %s", d.opts.SyncTimeout))
	}
	return nil
}

// cached is the live object ref names as the informer has it, nil when
// absent (or its informer not started).
func (d *Delivery) cached(ref objectRef) *unstructured.Unstructured {
	d.imu.Lock()
	_, started := d.objSynced[ref.gvr()]
	d.imu.Unlock()
	if !started {
		return nil
	}
	key := ref.Name
	if ref.Namespace != "" {
		key = ref.Namespace + "/" + ref.Name
	}
	obj, ok, err := d.objFactory.ForResource(ref.gvr()).Informer().GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

// cachedRecord is the work's record as the informer has it.
func (d *Delivery) cachedRecord(name string) (*corev1.Secret, *record, bool) {
	obj, ok, err := d.records.GetIndexer().GetByKey(d.opts.Namespace + "/" + name)
	if err != nil || !ok {
		return nil, nil, false
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, nil, false
	}
	rec, err := decodeRecord(s)
	if err != nil {
		d.log.Warn("ignoring an unreadable work record", "error", err)
		return nil, nil, false
	}
	return s, rec, true
}

// Get implements maestro.Delivery, from the informers' caches.
func (d *Delivery) Get(_ context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	s, rec, ok := d.cachedRecord(recordName(consumer, name))
	if !ok || rec.Work.Namespace != consumer || rec.Work.Name != name {
		return nil, apierrors.NewNotFound(manifestWorks, name)
	}
	return d.withStatus(s, rec), nil
}

// work processes queued records one at a time: their state is read from
// the caches when processed (level-triggered), so the order in which record
// and object events arrived does not matter.
func (d *Delivery) work() {
	defer d.worker.Done()
	for {
		name, shutdown := d.queue.Get()
		if shutdown {
			return
		}
		if err := d.sync(name); err != nil {
			level := slog.LevelWarn
			if errors.Is(err, errNotListed) {
				level = slog.LevelDebug // a kind's informer just started
			}
			d.log.Log(context.Background(), level, "work record: will try again", "record", name, "error", err)
			d.queue.AddRateLimited(name)
		} else {
			d.queue.Forget(name)
		}
		d.queue.Done(name)
	}
}

func (d *Delivery) sync(name string) error {
	s, rec, ok := d.cachedRecord(name)
	if !ok {
		d.mu.Lock()
		last := d.emitted[name]
		delete(d.emitted, name)
		d.forget(name)
		d.mu.Unlock()
		if last != nil {
			d.emit(maestro.WorkEvent{Type: watch.Deleted, Work: last})
		}
		return nil
	}
	d.mu.Lock()
	d.forget(name)
	for _, r := range union(rec.Objects, rec.Manifests) {
		if d.owners[r.key()] == nil {
			d.owners[r.key()] = map[string]struct{}{}
		}
		d.owners[r.key()][name] = struct{}{}
		d.owned[name] = append(d.owned[name], r.key())
	}
	d.mu.Unlock()
	// Never wait for an informer here: a kind the adapter may not list
	// would hold up every work's status. Come back when it has listed.
	for _, r := range union(rec.Objects, rec.Manifests) {
		if !d.informer(r.gvr())() {
			return fmt.Errorf("%w: %s", errNotListed, r.gvr().GroupResource())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.SyncTimeout)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var finalizeErr error
	if s.DeletionTimestamp != nil {
		finalizeErr = d.finalize(ctx, s, rec)
	}
	w := d.withStatus(s, rec)
	d.mu.Lock()
	last := d.emitted[name]
	changed := last == nil || fingerprint(last) != fingerprint(w)
	if changed {
		d.emitted[name] = w
	}
	d.mu.Unlock()
	if changed {
		d.emit(maestro.WorkEvent{Type: watch.Modified, Work: w})
	}
	return finalizeErr
}

// forget drops name from the owners index; d.mu held.
func (d *Delivery) forget(name string) {
	for _, k := range d.owned[name] {
		delete(d.owners[k], name)
		if len(d.owners[k]) == 0 {
			delete(d.owners, k)
		}
	}
	delete(d.owned, name)
}

// fingerprint is what a watcher should hear about when it changes: the
// work without its condition timestamps.
func fingerprint(w *workv1.ManifestWork) string {
	c := w.DeepCopy()
	c.ResourceVersion = ""
	for i := range c.Status.Conditions {
		c.Status.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	for i := range c.Status.ResourceStatus.Manifests {
		for j := range c.Status.ResourceStatus.Manifests[i].Conditions {
			c.Status.ResourceStatus.Manifests[i].Conditions[j].LastTransitionTime = metav1.Time{}
		}
	}
	raw, _ := json.Marshal(c)
	return string(raw)
}

// Watch implements maestro.Delivery: a Modified event whenever a work's
// computed status changes (every work of this field manager, from when the
// watch opens), Deleted when its record is gone.
func (d *Delivery) Watch(ctx context.Context) (<-chan maestro.WorkEvent, error) {
	return d.watches.Watch(ctx)
}

func (d *Delivery) emit(ev maestro.WorkEvent) { d.watches.Emit(ev) }
