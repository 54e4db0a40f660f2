// Orphan-before-recreate: before Apply deletes a work to recreate it with a
// new manifest set, the resources the new set keeps are orphaned, and the
// delete waits until the agent has applied that.

package maestro

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// errLostRace marks an orphaning step that another writer overtook (the
// work changed, or went, meanwhile): Apply reads it again and decides again.
var errLostRace = errors.New("the work changed meanwhile")

// orphanKept prepares stored for a delete that must not take with it the
// resources desired keeps: it patches spec.deleteOption (guarded by
// stored's version, like every write) so that those resources are orphaned,
// and waits until the agent has applied that generation.
//
// The OCM work agent decides ownership when it applies, not when it
// deletes: applying a generation it removes the work's owner reference
// (its AppliedManifestWork's) from each resource the delete option orphans
// (helper.OwnedByTheWork: Orphan orphans all, SelectivelyOrphan those its
// rules name by group, resource, namespace and name). Deleting the work
// then deletes only the resources that still carry the owner reference
// (helper.DeleteAppliedResources); the others stay and the recreated work
// adopts them (the agent's apply merges its owner reference back in). So
// the delete may only come after the agent's Applied condition has
// observed the orphaning generation; until then, deleting would delete
// everything.
//
// Resources that desired no longer has are not orphaned: they are deleted,
// as an in-place change of the manifest set would delete them. Orphaning
// only some needs each resource's plural name, which the agent reports per
// manifest (status.resourceStatus); when one is unknown, everything is
// orphaned instead (a removed manifest's resource then stays on the cluster).
func (d *SourceDelivery) orphanKept(ctx context.Context, stored, desired *workv1.ManifestWork) error {
	ns, name := stored.Namespace, stored.Name
	want := orphanOption(stored, desired)
	if want == nil {
		return nil // nothing kept, or the work orphans all already
	}
	log := d.log.With("consumer", ns, "work", name)
	target := stored
	if !reflect.DeepEqual(stored.Spec.DeleteOption, want) {
		orphaning := &workv1.ManifestWork{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels: maps.Clone(stored.Labels), Annotations: maps.Clone(stored.Annotations)},
			Spec: *stored.Spec.DeepCopy(),
		}
		// As in every patch: the version it carries is stored's generation.
		delete(orphaning.Annotations, annotationCloudEventsResourceVersion)
		orphaning.Spec.DeleteOption = want
		patched, err := d.patch(ctx, stored, orphaning)
		switch {
		case isVersionConflict(err) || apierrors.IsNotFound(err) || isUnderDeletion(err):
			return fmt.Errorf("orphaning the resources of work %s/%s: %w: %w", ns, name, errLostRace, err)
		case err != nil:
			return classify(fmt.Errorf("orphaning the resources of work %s/%s: %w", ns, name, err))
		}
		target = patched
		log.InfoContext(ctx, "work's delete option set to orphan the resources the new manifest set keeps; waiting for the agent to apply it",
			"deleteOption", want.PropagationPolicy, "maestroGeneration", target.Generation)
	}
	return d.waitAgentApplied(ctx, ns, name, target.Generation)
}

// waitAgentApplied polls until the agent's Applied condition has observed
// generation gen of the work, up to DeleteWait.
func (d *SourceDelivery) waitAgentApplied(ctx context.Context, ns, name string, gen int64) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DeleteWait)
	defer cancel()
	for i := 1; ; i++ {
		w, err := d.get(ctx, ns, name)
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("work %s/%s: %w: deleted", ns, name, errLostRace)
		case err != nil && ctx.Err() == nil:
			return classify(fmt.Errorf("waiting for the agent to orphan the resources of work %s/%s: %w", ns, name, err))
		case err == nil && (w.DeletionTimestamp != nil || w.Generation > gen):
			return fmt.Errorf("work %s/%s: %w: now at Maestro generation %d, deleting %v", ns, name, errLostRace,
				w.Generation, w.DeletionTimestamp != nil)
		case err == nil && appliedAt(w, gen):
			return nil
		}
		if err := sleep(ctx, backoff.Delay(d.opts.RetryInitial, d.opts.RetryMax, i)); err != nil {
			return failure.Transient(fmt.Errorf("the agent has not applied the delete option orphaning the resources of work %s/%s "+
				"within %s (is its agent running?); not deleting the work, which would delete them: %w", ns, name, d.opts.DeleteWait, err))
		}
	}
}

// appliedAt reports whether the agent's Applied condition (True or False)
// has observed generation gen.
func appliedAt(w *workv1.ManifestWork, gen int64) bool {
	for _, c := range w.Status.Conditions {
		if c.Type == workv1.WorkApplied {
			return c.ObservedGeneration >= gen
		}
	}
	return false
}

// orphanOption is the delete option under which deleting stored leaves the
// resources desired keeps (see orphanKept), or nil when no change is needed:
// desired keeps none of them, or stored orphans all already.
func orphanOption(stored, desired *workv1.ManifestWork) *workv1.DeleteOption {
	if o := stored.Spec.DeleteOption; o != nil && o.PropagationPolicy == workv1.DeletePropagationPolicyTypeOrphan {
		return nil
	}
	keeps := map[objectIdentity]bool{}
	for _, id := range objects(desired) {
		keeps[id] = true
	}
	var rules []workv1.OrphaningRule
	all := true
	for _, id := range objects(stored) {
		if !keeps[id] {
			all = false
			continue
		}
		rule, ok := orphaningRule(stored, id)
		if !ok {
			return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
		}
		rules = append(rules, rule)
	}
	switch {
	case len(rules) == 0:
		return nil
	case all:
		return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
	}
	if o := stored.Spec.DeleteOption; o != nil && o.SelectivelyOrphan != nil {
		// The work's own rules still hold.
		rules = append(append([]workv1.OrphaningRule(nil), o.SelectivelyOrphan.OrphaningRules...), rules...)
	}
	return &workv1.DeleteOption{
		PropagationPolicy: workv1.DeletePropagationPolicyTypeSelectivelyOrphan,
		SelectivelyOrphan: &workv1.SelectivelyOrphan{OrphaningRules: rules},
	}
}

// objectIdentity names the object a manifest is about, whatever version of
// its API group the manifest is written in.
type objectIdentity struct{ group, kind, namespace, name string }

func objects(w *workv1.ManifestWork) []objectIdentity {
	ids := identities(w)
	out := make([]objectIdentity, len(ids))
	for i, id := range ids {
		group, _, found := strings.Cut(id.apiVersion, "/")
		if !found {
			group = "" // the core group: "v1"
		}
		out[i] = objectIdentity{group, id.kind, id.namespace, id.name}
	}
	return out
}

// orphaningRule names the resource of the object id as the agent reported
// it (its plural name comes from the agent's REST mapper).
func orphaningRule(w *workv1.ManifestWork, id objectIdentity) (workv1.OrphaningRule, bool) {
	for _, m := range w.Status.ResourceStatus.Manifests {
		r := m.ResourceMeta
		if r.Group == id.group && r.Kind == id.kind && r.Namespace == id.namespace && r.Name == id.name && r.Resource != "" {
			return workv1.OrphaningRule{Group: r.Group, Resource: r.Resource, Namespace: r.Namespace, Name: r.Name}, true
		}
	}
	return workv1.OrphaningRule{}, false
}
