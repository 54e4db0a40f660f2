// Package embedded is the in-process delivery backend, the local default
// (--delivery embedded): a Store that behaves like Maestro as a source
// sees it through the OCM source client, and a simulated Agent that applies
// works and reports their status. New wires both under a
// maestro.SourceDelivery, the same apply logic the real Maestro backend
// uses.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	cloudeventserrors "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/errors"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	// SourceID is the Maestro source the works belong to; it is part of
	// every work's UID. Required.
	SourceID string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// AcceptManifestSetChange makes patches that add, remove, reorder or
	// rename manifests succeed, as Maestro servers from mid-2026 do. By
	// default they are refused like the Maestro version this project pins
	// refuses them.
	AcceptManifestSetChange bool
}

// Validate reports what is missing.
func (o StoreOptions) Validate() error {
	if strings.TrimSpace(o.SourceID) == "" {
		return fmt.Errorf("embedded store options: SourceID is required")
	}
	return nil
}

type workKey struct{ namespace, name string }

// Store implements the OCM WorkV1Interface the way Maestro's gRPC source
// client (grpcsource) and server together behave, quirks included, so that
// the SourceDelivery on top of it meets the same answers as against a real
// Maestro:
//
//   - Create sets the UID to the UUIDv5 of (source, group/resource,
//     consumer, name) and stores version (Generation) 1; it answers with the
//     request as sent (version 0). A duplicate answers AlreadyExists.
//   - Patch (merge or JSON patch) carries a version: the patched work's
//     cloudevents resourceversion annotation, else its metadata.generation,
//     which is the stored one unless the patch sets it. A version that is
//     not the stored one is refused with a 500 PublishError ("the resource
//     version is not the latest"); version 0 means "whatever is current"
//     (last writer wins). Every accepted patch bumps the version, even one
//     changing nothing, because Maestro compares payloads that include the
//     CloudEvent id. A patch that changes the manifest set is refused
//     unless AcceptManifestSetChange. The answer echoes the version sent.
//   - Update, UpdateStatus and DeleteCollection answer MethodNotSupported.
//   - Delete of a missing work is nil; otherwise the work is marked deleting
//     (DeletionTimestamp) and stays, unpatchable, until the agent confirms.
//   - Watch sends Modified and Deleted only, never Added. A new watcher first
//     receives every current work as Modified (grpcsource lists them), all
//     watchers of one namespace share one watcher object (its label selector
//     is the first caller's), events are handed to each watcher in turn on an
//     unbuffered channel so one slow reader holds up all, a stopped
//     watcher's channel is closed only by a second Stop, and status events
//     carry the status sequence-id annotation.
//
// Unlike grpcsource, ManifestWorks(namespace) returns a client of its own
// for each namespace rather than setting the namespace on one shared
// object: SourceDelivery serializes its calls anyway, and Store's own users
// (the agent, tests) need not.
type Store struct {
	sourceID                string
	log                     *slog.Logger
	acceptManifestSetChange bool

	mu        sync.Mutex
	works     map[workKey]*workv1.ManifestWork
	listeners []func(workKey)

	wmu      sync.Mutex
	watchers map[string]*watcher

	queue    eventQueue
	seq      atomic.Int64
	closed   chan struct{}
	closing  sync.Once
	dispatch sync.WaitGroup
}

var _ workv1client.WorkV1Interface = (*Store)(nil)

// NewStore returns an empty Store. Close it to stop its event dispatcher.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		sourceID:                opts.SourceID,
		log:                     opts.Logger,
		acceptManifestSetChange: opts.AcceptManifestSetChange,
		works:                   map[workKey]*workv1.ManifestWork{},
		watchers:                map[string]*watcher{},
		closed:                  make(chan struct{}),
	}
	s.queue.cond = sync.NewCond(&s.queue.mu)
	s.dispatch.Add(1)
	go s.dispatchEvents()
	return s, nil
}

// Close stops delivering watch events. Calls after Close still read and
// write the works.
func (s *Store) Close() {
	s.closing.Do(func() {
		close(s.closed)
		s.queue.close()
	})
	s.dispatch.Wait()
}

// SourceID is the source the works belong to.
func (s *Store) SourceID() string { return s.sourceID }

// ManifestWorks returns the works of one consumer (namespace);
// metav1.NamespaceAll lists and watches every consumer's.
func (s *Store) ManifestWorks(namespace string) workv1client.ManifestWorkInterface {
	return &manifestWorks{s: s, namespace: namespace}
}

// AppliedManifestWorks is nil, as grpcsource's: a source has none.
func (s *Store) AppliedManifestWorks() workv1client.AppliedManifestWorkInterface { return nil }

// RESTClient is nil, as grpcsource's.
func (s *Store) RESTClient() rest.Interface { return nil }

// onChange registers f to be told about every spec change and deletion
// request: what the agent receives over the broker.
func (s *Store) onChange(f func(workKey)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, f)
}

func (s *Store) notify(key workKey) {
	s.mu.Lock()
	ls := slices.Clone(s.listeners)
	s.mu.Unlock()
	for _, f := range ls {
		f(key)
	}
}

// snapshot returns a copy of the stored work.
func (s *Store) snapshot(key workKey) (*workv1.ManifestWork, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.works[key]
	if !ok {
		return nil, false
	}
	return w.DeepCopy(), true
}

func (s *Store) keys() []workKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]workKey, 0, len(s.works))
	for k := range s.works {
		out = append(out, k)
	}
	return out
}

// reportStatus stores status the agent observed at generation and sends it
// to the watchers. Like Maestro's UpdateStatus it disregards a status for a
// version that is no longer current, and sends nothing when nothing changed.
func (s *Store) reportStatus(key workKey, generation int64, status workv1.ManifestWorkStatus) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.works[key]
	if !ok || w.Generation != generation || w.DeletionTimestamp != nil {
		return false
	}
	if equality.Semantic.DeepEqual(w.Status, status) {
		return false
	}
	w.Status = status
	s.enqueue(watch.Modified, w)
	return true
}

// confirmDeleted removes a work being deleted, as Maestro does once the
// agent reports it Deleted, and sends the watchers the Deleted event.
func (s *Store) confirmDeleted(key workKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.works[key]
	if !ok || w.DeletionTimestamp == nil {
		return false
	}
	delete(s.works, key)
	apimeta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{
		Type:               common.ResourceDeleted,
		Status:             metav1.ConditionTrue,
		Reason:             "ManifestsDeleted",
		Message:            fmt.Sprintf("The manifests are deleted from the cluster %s", w.Namespace),
		ObservedGeneration: w.Generation,
	})
	s.enqueue(watch.Deleted, w)
	return true
}

// enqueue queues a watch event carrying a copy of w. Called with mu held,
// so events leave in the order the changes happened.
func (s *Store) enqueue(t watch.EventType, w *workv1.ManifestWork) {
	ev := w.DeepCopy()
	if ev.Annotations == nil {
		ev.Annotations = map[string]string{}
	}
	// The OCM codec puts the agent's status sequence id on every work it
	// decodes from a status event.
	ev.Annotations[common.CloudEventsSequenceIDAnnotationKey] = strconv.FormatInt(s.seq.Add(1), 10)
	s.queue.push(watch.Event{Type: t, Object: ev})
}

// dispatchEvents hands each event to every watcher in turn, waiting for
// each to take it, like grpcsource's sendWatchEvent.
func (s *Store) dispatchEvents() {
	defer s.dispatch.Done()
	for {
		ev, ok := s.queue.pop()
		if !ok {
			return
		}
		s.wmu.Lock()
		ws := make([]*watcher, 0, len(s.watchers))
		for _, w := range s.watchers {
			ws = append(ws, w)
		}
		s.wmu.Unlock()
		for _, w := range ws {
			w.receive(ev, s.closed)
		}
	}
}

func (s *Store) registerWatcher(namespace string, sel labels.Selector) *watcher {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if w, ok := s.watchers[namespace]; ok && !w.isStopped() {
		return w
	}
	w := &watcher{namespace: namespace, selector: sel, result: make(chan watch.Event), done: make(chan struct{})}
	s.watchers[namespace] = w
	return w
}

// manifestWorks is the client for one namespace.
type manifestWorks struct {
	s         *Store
	namespace string
}

var _ workv1client.ManifestWorkInterface = (*manifestWorks)(nil)

var gr = common.ManifestWorkGR

// publishError is what the OCM source client makes of a refusal by the
// Maestro server: the server returns a plain error over gRPC (code
// Unknown), which the client wraps as a 500 PublishError.
func publishError(name, action string, serverMsg string) error {
	return cloudeventserrors.ToStatusError(gr, name,
		grpcstatus.Error(codes.Unknown, fmt.Sprintf("failed to %s resource: %s", action, serverMsg)))
}

// version is the SDK's getWorkResourceVersion: the resource version
// annotation, else metadata.generation.
func version(w *workv1.ManifestWork) (string, int64, error) {
	var gen int64
	rv, ok := w.Annotations[common.CloudEventsResourceVersionAnnotationKey]
	if ok {
		var err error
		if gen, err = strconv.ParseInt(rv, 10, 64); err != nil {
			return "", 0, apierrors.NewInternalError(err)
		}
	}
	if gen == 0 {
		gen = w.Generation
	}
	if rv == "" {
		rv = w.ResourceVersion
		if rv == "" {
			rv = "0"
		}
	}
	return rv, gen, nil
}

func (c *manifestWorks) Create(ctx context.Context, mw *workv1.ManifestWork, _ metav1.CreateOptions) (*workv1.ManifestWork, error) {
	if mw.Namespace != "" && mw.Namespace != c.namespace {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, mw.Name, field.ErrorList{
			field.Invalid(field.NewPath("metadata").Child("namespace"), mw.Namespace,
				fmt.Sprintf("does not match the namespace %s", c.namespace)),
		})
	}
	s := c.s
	key := workKey{c.namespace, mw.Name}
	s.mu.Lock()
	_, exists := s.works[key]
	s.mu.Unlock()
	if exists {
		return nil, apierrors.NewAlreadyExists(gr, mw.Name)
	}

	sent := mw.DeepCopy()
	sent.UID = types.UID(utils.UID(s.sourceID, gr.String(), c.namespace, sent.Name))
	sent.Namespace = c.namespace
	rv, gen, err := version(mw)
	if err != nil {
		return nil, err
	}
	sent.Generation, sent.ResourceVersion = gen, rv
	if err := utils.EncodeManifests(sent); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if errs := utils.ValidateWork(sent); len(errs) != 0 {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, mw.Name, errs)
	}
	if err := ctx.Err(); err != nil {
		return nil, cloudeventserrors.NewPublishError(gr, mw.Name, err)
	}

	// The server's side.
	stored := sent.DeepCopy()
	if stored.Generation == 0 {
		stored.Generation = 1
	}
	stored.ResourceVersion = strconv.FormatInt(stored.Generation, 10)
	stored.CreationTimestamp = metav1.Now()
	stored.DeletionTimestamp = nil
	stored.Status = workv1.ManifestWorkStatus{}
	s.mu.Lock()
	if _, exists := s.works[key]; exists {
		s.mu.Unlock()
		// Maestro's unique index on the resource id.
		return nil, publishError(mw.Name, "create", "maestro-6: An entity with the specified unique values already exists")
	}
	s.works[key] = stored
	s.mu.Unlock()
	s.notify(key)
	return sent.DeepCopy(), nil
}

func (c *manifestWorks) Update(context.Context, *workv1.ManifestWork, metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return nil, apierrors.NewMethodNotSupported(gr, "update")
}

func (c *manifestWorks) UpdateStatus(context.Context, *workv1.ManifestWork, metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return nil, apierrors.NewMethodNotSupported(gr, "updatestatus")
}

func (c *manifestWorks) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return apierrors.NewMethodNotSupported(gr, "deletecollection")
}

// Delete ignores opts like Maestro: spec.deleteOption decides what happens
// to the resources.
func (c *manifestWorks) Delete(ctx context.Context, name string, _ metav1.DeleteOptions) error {
	s := c.s
	key := workKey{c.namespace, name}
	if err := ctx.Err(); err != nil {
		return apierrors.NewInternalError(err)
	}
	s.mu.Lock()
	w, ok := s.works[key]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	if w.DeletionTimestamp == nil {
		now := metav1.Now()
		w.DeletionTimestamp = &now
	}
	s.mu.Unlock()
	s.notify(key)
	return nil
}

func (c *manifestWorks) Get(ctx context.Context, name string, _ metav1.GetOptions) (*workv1.ManifestWork, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	w, ok := c.s.snapshot(workKey{c.namespace, name})
	if !ok {
		return nil, apierrors.NewNotFound(gr, name)
	}
	return w, nil
}

func (c *manifestWorks) List(ctx context.Context, opts metav1.ListOptions) (*workv1.ManifestWorkList, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("invalid labels selector %q: %w", opts.LabelSelector, err))
	}
	return &workv1.ManifestWorkList{Items: c.s.list(c.namespace, sel)}, nil
}

func (s *Store) list(namespace string, sel labels.Selector) []workv1.ManifestWork {
	s.mu.Lock()
	items := []workv1.ManifestWork{}
	for k, w := range s.works {
		if (namespace == metav1.NamespaceAll || k.namespace == namespace) && sel.Matches(labels.Set(w.Labels)) {
			items = append(items, *w.DeepCopy())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b workv1.ManifestWork) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return items
}

// Watch ignores ctx for the watcher's lifetime, like grpcsource: only Stop
// ends it.
func (c *manifestWorks) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("invalid labels selector %q: %w", opts.LabelSelector, err))
	}
	s := c.s
	w := s.registerWatcher(c.namespace, sel)
	// grpcsource lists the works and queues each as Modified.
	s.mu.Lock()
	for k, work := range s.works {
		if (c.namespace == metav1.NamespaceAll || k.namespace == c.namespace) && sel.Matches(labels.Set(work.Labels)) {
			s.queue.push(watch.Event{Type: watch.Modified, Object: work.DeepCopy()})
		}
	}
	s.mu.Unlock()
	return w, nil
}

func (c *manifestWorks) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, _ metav1.PatchOptions, subresources ...string) (*workv1.ManifestWork, error) {
	if len(subresources) != 0 {
		return nil, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "patch", gr, name,
			fmt.Sprintf("unsupported to update subresources %v", subresources), 0, false)
	}
	s := c.s
	key := workKey{c.namespace, name}
	last, ok := s.snapshot(key)
	if !ok {
		return nil, apierrors.NewNotFound(gr, name)
	}
	patched, err := utils.Patch(pt, last, data)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sent := patched.DeepCopy()
	rv, gen, err := version(patched)
	if err != nil {
		return nil, err
	}
	sent.Generation, sent.ResourceVersion = gen, rv
	if errs := utils.ValidateWork(sent); len(errs) != 0 {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, name, errs)
	}
	if err := ctx.Err(); err != nil {
		return nil, cloudeventserrors.NewPublishError(gr, name, err)
	}

	// The server's side (maestro services/resource.go Update), under the
	// lock standing in for its advisory lock.
	s.mu.Lock()
	stored, ok := s.works[key]
	switch {
	case !ok:
		s.mu.Unlock()
		return nil, publishError(name, "get", "maestro-7: Resource with id='"+string(last.UID)+"' not found")
	case stored.DeletionTimestamp != nil:
		s.mu.Unlock()
		return nil, publishError(name, "update", "maestro-6: the resource is under deletion, id: "+string(stored.UID))
	}
	if gen == 0 {
		gen = stored.Generation
	}
	if gen != stored.Generation {
		s.mu.Unlock()
		return nil, publishError(name, "update",
			fmt.Sprintf("maestro-6: the resource version is not the latest, the latest version: %d", stored.Generation))
	}
	if !s.acceptManifestSetChange {
		if err := validateBundleUpdate(sent, stored); err != nil {
			s.mu.Unlock()
			return nil, publishError(name, "update",
				"maestro-8: the new manifest bundle in the resource is invalid, "+err.Error())
		}
	}
	next := sent.DeepCopy()
	stored.Generation++
	stored.ResourceVersion = strconv.FormatInt(stored.Generation, 10)
	stored.Labels = next.Labels
	stored.Annotations = next.Annotations
	stored.Spec = next.Spec
	s.mu.Unlock()
	s.notify(key)
	return sent, nil
}

// validateBundleUpdate is Maestro's ValidateManifestBundleUpdate: the same
// number of manifests, each keeping apiVersion, kind, name and namespace.
func validateBundleUpdate(next, prev *workv1.ManifestWork) error {
	nm, pm := next.Spec.Workload.Manifests, prev.Spec.Workload.Manifests
	if len(nm) != len(pm) {
		return fmt.Errorf("new and old manifest have different number of objects")
	}
	for i := range nm {
		var n, p unstructured.Unstructured
		if err := n.UnmarshalJSON(nm[i].Raw); err != nil {
			return err
		}
		if err := p.UnmarshalJSON(pm[i].Raw); err != nil {
			return err
		}
		for _, f := range []struct{ path, next, prev string }{
			{"apiVersion", n.GetAPIVersion(), p.GetAPIVersion()},
			{"kind", n.GetKind(), p.GetKind()},
			{"metadata.name", n.GetName(), p.GetName()},
			{"metadata.namespace", n.GetNamespace(), p.GetNamespace()},
		} {
			if f.next != f.prev {
				return fmt.Errorf("%s: Invalid value: %q: field is immutable", f.path, f.next)
			}
		}
	}
	return nil
}

// watcher is grpcsource's workWatcher.
type watcher struct {
	namespace string
	selector  labels.Selector
	result    chan watch.Event

	mu      sync.Mutex
	stopped bool
	done    chan struct{}
}

var _ watch.Interface = (*watcher)(nil)

func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

// Stop marks the watcher stopped; like grpcsource's, only a second Stop
// closes the result channel.
func (w *watcher) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		close(w.result)
	default:
		w.stopped = true
		close(w.done)
	}
}

func (w *watcher) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// receive blocks until the event is read, however long that takes, unless
// the store closes: grpcsource's Receive does the same (without the
// closing).
func (w *watcher) receive(ev watch.Event, closed <-chan struct{}) {
	if w.isStopped() {
		return
	}
	work := ev.Object.(*workv1.ManifestWork)
	if w.namespace != metav1.NamespaceAll && w.namespace != work.Namespace {
		return
	}
	if !w.selector.Matches(labels.Set(work.Labels)) {
		return
	}
	select {
	case w.result <- ev:
	case <-closed:
	}
}

// eventQueue is an unbounded FIFO: writers never wait for readers.
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []watch.Event
	closed bool
}

func (q *eventQueue) push(ev watch.Event) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *eventQueue) pop() (watch.Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return watch.Event{}, false
	}
	ev := q.items[0]
	q.items[0] = watch.Event{}
	q.items = q.items[1:]
	return ev, true
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
