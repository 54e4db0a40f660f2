package maestro

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// workCache holds the works this process wrote or read, kept current by
// the work watch, so that Apply decides between create, patch and
// "unchanged" without reading the work over REST first.
//
// It is only consulted while the watch is open (live): then every change of
// a cached work reaches it (Maestro sends each work's status, with the spec
// and metadata the agent applied, to every client of the source; Deleted
// when it goes), and the "unchanged" answer carries the latest status, as a
// REST read would. Without the watch an entry would hold only what this
// process wrote, whose status is stale, so the cache is then bypassed.
//
// What makes using it safe for writes is Maestro's version check: a patch
// built on a stale entry carries a stale version and is refused; Apply then
// forgets the entry and reads over REST (see forget). What makes it safe
// for the generation guard is that generations only move forward: an entry
// older than Maestro's work has an older workmeta.AnnotationGeneration, so the guard
// can only let through a patch Maestro then refuses.
//
// An entry is created only by Apply (from a REST read or an own write), and
// a watched change the cache cannot fold in completely drops the entry:
// a miss costs one REST read, a wrong entry costs a refused patch at worst.
// At most max entries are kept (any one is evicted beyond that), so memory
// stays bounded with many clusters.
type workCache struct {
	max int

	mu    sync.Mutex
	live  bool
	works map[workKey]*cachedWork
}

type cachedWork struct {
	work *workv1.ManifestWork
	// statusGen is the Maestro version of the watched event the status
	// came from: an older event's status never replaces a newer one's.
	statusGen int64
}

// defaultCacheSize bounds the cache. An entry is a whole work with its
// status: the bench's template works took about 6 KiB of heap each, so
// 10,000 of them doubled the adapter's peak RSS (59 → 197 MiB). A delivery
// profits from the cache when the same work changes again soon (a create
// followed by its first patches, a burst of generations), which a few
// thousand recent works cover; beyond them a work costs one REST read.
const defaultCacheSize = 2048

func newWorkCache(max int) *workCache {
	return &workCache{max: max, works: map[workKey]*cachedWork{}}
}

// setLive says whether the watch is open. Closing it empties the cache:
// changes while it is closed are not seen (the reopened watch replays
// every work, which refills it).
func (c *workCache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	if !live {
		clear(c.works)
	}
}

// get returns a copy of the cached work, if the cache is live and has it.
func (c *workCache) get(consumer, name string) (*workv1.ManifestWork, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil, false
	}
	e, ok := c.works[workKey{consumer, name}]
	if !ok {
		return nil, false
	}
	return e.work.DeepCopy(), true
}

// read records w as just read from Maestro: the whole work, unless the
// cache already holds a newer version.
func (c *workCache) read(w *workv1.ManifestWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || w == nil {
		return
	}
	key := workKey{w.Namespace, w.Name}
	if e, ok := c.works[key]; ok && e.work.Generation >= w.Generation {
		// Apply reads only on a miss: an entry that appeared meanwhile
		// came from the watch and is at least as new.
		return
	}
	c.store(key, &cachedWork{work: w.DeepCopy(), statusGen: w.Generation})
}

// wrote records w as just written by this process at Maestro version
// w.Generation: its metadata and spec; the status stays the cached one
// (the write did not change it, the watch will).
func (c *workCache) wrote(w *workv1.ManifestWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || w == nil {
		return
	}
	key := workKey{w.Namespace, w.Name}
	n := &cachedWork{work: w.DeepCopy()}
	if e, ok := c.works[key]; ok {
		if e.work.Generation > w.Generation {
			return
		}
		n.work.Status = e.work.Status
		n.statusGen = e.statusGen
	}
	c.store(key, n)
}

// forget drops the entry: the next Apply reads the work over REST. For a
// write Maestro refused as stale, and a work being deleted or recreated.
func (c *workCache) forget(consumer, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.works, workKey{consumer, name})
}

// observe folds one watched change in.
func (c *workCache) observe(ev WorkEvent) {
	w := ev.Work
	if w == nil {
		return
	}
	key := workKey{w.Namespace, w.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return
	}
	if ev.Type != watch.Modified || w.DeletionTimestamp != nil {
		delete(c.works, key)
		return
	}
	e, ok := c.works[key]
	switch {
	case !ok:
		// Only works Apply touched are kept: a replica does not hold
		// copies of its peers' works, and the listing replayed when the
		// watch opens does not fill memory with works nobody applies.
	case w.Generation > e.work.Generation && !complete(w):
		// Another writer's version, without what it says: unknown.
		delete(c.works, key)
	case w.Generation > e.work.Generation:
		c.works[key] = &cachedWork{work: w.DeepCopy(), statusGen: w.Generation}
	case w.Generation >= e.statusGen:
		// Status of the cached version, or of an older one the agent
		// reports after this process wrote a newer one: the latest known.
		e.work.Status = *w.Status.DeepCopy()
		e.statusGen = w.Generation
	}
}

// complete reports whether a watched work carries what Apply decides on:
// its name, its manifests and the generation it was built from.
func complete(w *workv1.ManifestWork) bool {
	_, guarded := w.Annotations[workmeta.AnnotationGeneration]
	return w.Namespace != "" && w.Name != "" && len(w.Spec.Workload.Manifests) > 0 && guarded
}

func (c *workCache) store(key workKey, e *cachedWork) {
	if _, ok := c.works[key]; !ok && len(c.works) >= c.max {
		for k := range c.works {
			delete(c.works, k)
			break
		}
	}
	c.works[key] = e
}

// knownStoredKey carries, for one client call, the state of the work the
// call is about as Apply knows it (see WithKnownStored).
type knownStoredKey struct{}

type knownStored struct {
	consumer, name string
	work           *workv1.ManifestWork // nil: known not to exist
}

// withKnownStored tells the client's Create or Patch what Apply knows of
// the work it is writing, so that a client that reads the work before
// writing it (the OCM source client does, over REST) can use that instead.
// work nil says the work does not exist as far as Apply knows.
func withKnownStored(ctx context.Context, consumer, name string, work *workv1.ManifestWork) context.Context {
	return context.WithValue(ctx, knownStoredKey{}, knownStored{consumer, name, work})
}

// KnownStored returns what Apply knows of the work consumer/name it is
// writing in this call (a copy; nil when known not to exist), and whether
// it knows. A client's store answers its own existence check (Create) and
// the base of a patch (Patch) with it. Knowing wrong is safe: Maestro
// refuses a duplicate create and a patch carrying a stale version, and
// Apply then reads the work afresh.
func KnownStored(ctx context.Context, consumer, name string) (*workv1.ManifestWork, bool) {
	k, ok := ctx.Value(knownStoredKey{}).(knownStored)
	if !ok || k.consumer != consumer || k.name != name {
		return nil, false
	}
	if k.work == nil {
		return nil, true
	}
	return k.work.DeepCopy(), true
}
