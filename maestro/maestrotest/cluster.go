package maestrotest

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/google/uuid"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

// ObjectKey names an object on the agent's (simulated) cluster the way the
// OCM work agent's delete options do: API group, plural resource, namespace
// and name.
type ObjectKey struct{ Group, Resource, Namespace, Name string }

// Deletion is what the agent did when a work was deleted.
type Deletion struct {
	// Work is the work's name on the agent side (see WorkID).
	Work string
	// DeleteOption is the work's spec.deleteOption as the agent held it
	// when the deletion came: the one it last applied.
	DeleteOption *workv1.DeleteOption
	// Deleted are the objects the work owned, deleted with it.
	Deleted []ObjectKey
	// Orphaned are the work's objects it did not own (its delete option
	// orphaned them when it was applied): they stay on the cluster.
	Orphaned []ObjectKey
}

// cluster is the target cluster as far as deletion is concerned: which
// objects exist, each with a UID of its own (so a test can tell an object
// that survived a work's deletion from one created anew), and which applied
// works own them.
//
// It follows the OCM work agent (open-cluster-management.io/ocm
// pkg/work/spoke): each work the agent applies gets an AppliedManifestWork
// with a UID of its own; applying a generation, the agent adds that owner
// to each object the work's delete option leaves owned and removes it from
// each object it orphans (manifestcontroller manageOwnerRef,
// helper.OwnedByTheWork: Foreground owns all, Orphan none, SelectivelyOrphan
// all but those its rules name). Deleting the work deletes the
// AppliedManifestWork, whose finalizer deletes the objects it still owns
// alone, only drops it from those other works own too, and leaves the rest
// (helper.DeleteAppliedResources). Ownership is thus decided when a
// generation is applied, not when the deletion comes.
type cluster struct {
	mu        sync.Mutex
	objects   map[ObjectKey]*clusterObject
	applied   map[string]string // work name → its AppliedManifestWork's UID
	deletions []Deletion
}

type clusterObject struct {
	uid    string
	owners map[string]bool // AppliedManifestWork UIDs
}

func newCluster() *cluster {
	return &cluster{objects: map[ObjectKey]*clusterObject{}, applied: map[string]string{}}
}

// apply records that the agent applied w's current generation.
func (c *cluster) apply(w *workv1.ManifestWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owner, ok := c.applied[w.Name]
	if !ok {
		owner = uuid.NewString()
		c.applied[w.Name] = owner
	}
	for _, key := range objectKeys(w) {
		obj := c.objects[key]
		if obj == nil {
			obj = &clusterObject{uid: uuid.NewString(), owners: map[string]bool{}}
			c.objects[key] = obj
		}
		if feedback.OwnedByTheWork(w.Spec.DeleteOption, feedback.Resource{Group: key.Group, Resource: key.Resource, Namespace: key.Namespace, Name: key.Name}) {
			obj.owners[owner] = true
		} else {
			delete(obj.owners, owner)
		}
	}
}

// remove plays the deletion of w on the cluster. A work the agent never
// applied, or removed already, changes nothing.
func (c *cluster) remove(w *workv1.ManifestWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owner, ok := c.applied[w.Name]
	if !ok {
		return
	}
	delete(c.applied, w.Name)
	d := Deletion{Work: w.Name, DeleteOption: w.Spec.DeleteOption.DeepCopy()}
	for _, key := range objectKeys(w) {
		obj := c.objects[key]
		switch {
		case obj == nil:
		case !obj.owners[owner]:
			d.Orphaned = append(d.Orphaned, key)
		default:
			delete(obj.owners, owner)
			if len(obj.owners) == 0 {
				delete(c.objects, key)
				d.Deleted = append(d.Deleted, key)
			}
		}
	}
	c.deletions = append(c.deletions, d)
}

// objectKeys names the objects of w's manifests (those that are objects).
func objectKeys(w *workv1.ManifestWork) []ObjectKey {
	var out []ObjectKey
	for _, m := range w.Spec.Workload.Manifests {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if json.Unmarshal(m.Raw, &obj) != nil || obj.Kind == "" {
			continue
		}
		group, _, found := strings.Cut(obj.APIVersion, "/")
		if !found {
			group = ""
		}
		out = append(out, ObjectKey{Group: group, Resource: guessResource(obj.Kind),
			Namespace: obj.Metadata.Namespace, Name: obj.Metadata.Name})
	}
	return out
}

// Object returns the UID of the object key on the agent's simulated
// cluster, and whether it exists there. A UID that stays the same across a
// work's deletion and re-creation is an object that survived.
func (a *Agent) Object(key ObjectKey) (uid string, exists bool) {
	a.cluster.mu.Lock()
	defer a.cluster.mu.Unlock()
	obj := a.cluster.objects[key]
	if obj == nil {
		return "", false
	}
	return obj.uid, true
}

// Owned reports whether the object key is owned by the work named (on the
// agent side, see WorkID) as the agent applied it last.
func (a *Agent) Owned(key ObjectKey, work string) bool {
	a.cluster.mu.Lock()
	defer a.cluster.mu.Unlock()
	obj, owner := a.cluster.objects[key], a.cluster.applied[work]
	return obj != nil && owner != "" && obj.owners[owner]
}

// Deletions returns, in order, what the agent did for each work it deleted.
func (a *Agent) Deletions() []Deletion {
	a.cluster.mu.Lock()
	defer a.cluster.mu.Unlock()
	out := make([]Deletion, len(a.cluster.deletions))
	copy(out, a.cluster.deletions)
	return out
}
