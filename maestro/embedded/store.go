// The Store: its options and state, the WorkV1Interface it serves, and the
// agent's side (status reports, confirmed deletions, change notices). The
// source side's calls are in store_client.go, the watches in store_watch.go.

// Package embedded is the in-process delivery backend, the local default
// (--delivery embedded): a Store that behaves like Maestro as a source
// sees it through the OCM source client, and a simulated Agent that applies
// works and reports their status. New wires both under a
// maestro.SourceDelivery, the same apply logic the real Maestro backend
// uses.
package embedded

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
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
