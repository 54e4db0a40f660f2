package maestrotest

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
)

// agentStore is the simulated agent's cache of works, in place of the SDK's
// AgentInformerWatcherStore. That store has two traits that break a test agent:
//
//   - it hands every received work to a watcher on an unbuffered channel
//     before storing it, so a reader always sees events the store does not
//     reflect yet, and nothing is received at all while nobody reads;
//   - the agent client's Patch is a read-modify-write over the store that the
//     client's receive path does not serialise with: a status patch in flight
//     when a new generation or a deletion arrives writes the old object back
//     over it, and the new generation or deletion is lost for good.
//
// This store does everything under one lock, tells the agent about changes
// through a non-blocking callback, and refuses writes (Update) that would move
// a work back to an older generation or undo a deletion; the agent then
// retries from the current state.
type agentStore struct {
	mu     sync.Mutex
	works  map[string]*workv1.ManifestWork // by name; all in the consumer's namespace
	notify func(name string)               // must not block
}

var _ store.ClientWatcherStore[*workv1.ManifestWork] = &agentStore{}

func newAgentStore(notify func(name string)) *agentStore {
	return &agentStore{works: map[string]*workv1.ManifestWork{}, notify: notify}
}

func toWork(obj runtime.Object) (*workv1.ManifestWork, error) {
	w, ok := obj.(*workv1.ManifestWork)
	if !ok {
		return nil, fmt.Errorf("maestrotest: unexpected object type %T", obj)
	}
	return w, nil
}

// HandleReceivedResource is called by the SDK for every work (spec or
// deletion) the server sends.
func (s *agentStore) HandleReceivedResource(_ context.Context, w *workv1.ManifestWork) error {
	s.mu.Lock()
	name, changed := s.receive(w)
	s.mu.Unlock()
	if changed {
		s.notify(name)
	}
	return nil
}

func (s *agentStore) receive(w *workv1.ManifestWork) (string, bool) {
	if !w.DeletionTimestamp.IsZero() {
		cached := s.byUID(w)
		if cached == nil {
			// A deletion of a work the agent does not hold (its create was
			// lost, or the agent restarted): the SDK's own agent store adds
			// it as it comes, deleting and with the cleanup finalizer the
			// codec puts on every deletion, so the agent confirms it. Were
			// it dropped, Maestro would keep the work "being deleted" for
			// ever and every later apply of it would wait in vain.
			incoming := w.DeepCopy()
			s.works[incoming.Name] = incoming
			return incoming.Name, true
		}
		// Keep spec and status, mark deleting: the agent removes the
		// finalizer, then the SDK's deletion loop publishes Deleted.
		updated := cached.DeepCopy()
		updated.DeletionTimestamp = w.DeletionTimestamp.DeepCopy()
		updated.Finalizers = append([]string(nil), w.Finalizers...)
		updated.Generation = w.Generation
		s.works[cached.Name] = updated
		return cached.Name, true
	}
	incoming := w.DeepCopy()
	if cached := s.works[w.Name]; cached != nil && cached.Generation == incoming.Generation && cached.DeletionTimestamp.IsZero() {
		// A resend of the same generation (e.g. after a resync): keep the
		// status already reported.
		incoming.Status = *cached.Status.DeepCopy()
	}
	s.works[w.Name] = incoming
	return w.Name, true
}

func (s *agentStore) byUID(w *workv1.ManifestWork) *workv1.ManifestWork {
	if cached := s.works[w.Name]; cached != nil && cached.UID == w.UID {
		return cached
	}
	for _, cached := range s.works {
		if cached.UID == w.UID {
			return cached
		}
	}
	return nil
}

// Add is not used by the agent client; it stores the work.
func (s *agentStore) Add(obj runtime.Object) error {
	w, err := toWork(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.works[w.Name] = w.DeepCopy()
	s.mu.Unlock()
	s.notify(w.Name)
	return nil
}

// Update is called by the agent client's Patch with the patched work.
func (s *agentStore) Update(obj runtime.Object) error {
	w, err := toWork(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cached := s.works[w.Name]
	switch {
	case cached == nil:
		return fmt.Errorf("maestrotest: work %s is gone", w.Name)
	case w.Generation < cached.Generation:
		return fmt.Errorf("maestrotest: stale update of work %s: generation %d, stored %d", w.Name, w.Generation, cached.Generation)
	case w.DeletionTimestamp.IsZero() && !cached.DeletionTimestamp.IsZero():
		return fmt.Errorf("maestrotest: stale update of work %s: it is being deleted", w.Name)
	case !w.DeletionTimestamp.IsZero() && cached.DeletionTimestamp.IsZero():
		// Only the server marks a work deleting, so this write (a finalizer
		// removal) was about an incarnation the source has since replaced.
		return fmt.Errorf("maestrotest: stale update of work %s: it was created anew", w.Name)
	}
	s.works[w.Name] = w.DeepCopy()
	return nil
}

// Delete is called by the agent client's deletion loop once it has
// published Deleted for a work it listed earlier.
//
// Unlike the SDK's store, which deletes by name whatever is stored, this one
// keeps a work that is no longer being deleted: in the window between the
// loop's list and this call the source may have created the work anew (same
// name, same resource ID) and the server sent it. The SDK's store drops the
// new incarnation then, and the agent never reports on it until a resync; a
// test agent that did so would fail tests at random for a reason outside
// the code under test.
func (s *agentStore) Delete(obj runtime.Object) error {
	w, err := toWork(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if cached := s.works[w.Name]; cached != nil && !cached.DeletionTimestamp.IsZero() {
		delete(s.works, w.Name)
	}
	s.mu.Unlock()
	s.notify(w.Name)
	return nil
}

func (s *agentStore) List(_ context.Context, namespace string, _ metav1.ListOptions) (*store.ResourceList[*workv1.ManifestWork], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := &store.ResourceList[*workv1.ManifestWork]{}
	for _, w := range s.works {
		if namespace == metav1.NamespaceAll || w.Namespace == namespace {
			list.Items = append(list.Items, w.DeepCopy())
		}
	}
	return list, nil
}

func (s *agentStore) ListAll(ctx context.Context) ([]*workv1.ManifestWork, error) {
	list, err := s.List(ctx, metav1.NamespaceAll, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (s *agentStore) Get(_ context.Context, _, name string) (*workv1.ManifestWork, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.works[name]
	if !ok {
		return nil, false, nil
	}
	return w.DeepCopy(), true, nil
}

// GetWatcher: the agent is told about changes by the notify callback, so
// watching through the client is not offered.
func (s *agentStore) GetWatcher(context.Context, string, metav1.ListOptions) (watch.Interface, error) {
	return nil, fmt.Errorf("maestrotest: the simulated agent's store does not support watch")
}

// HasInitiated: the store starts empty and complete; the SDK may resync at once.
func (s *agentStore) HasInitiated() bool { return true }
