// The objects on the cluster: resolving each manifest to its API resource
// and update strategy, the guarded server-side apply of one object, and
// deleting objects (dropped from a work, or of a deleted work) unless the
// work's delete option orphans them.

package kubeapply

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/csaupgrade"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

// manifest is one manifest of a work, ready to apply.
type manifest struct {
	ref objectRef
	obj *unstructured.Unstructured
	// manager and force are the server-side apply field manager and force
	// flag: the work's ServerSideApply update strategy for the manifest, if
	// it has one, else Options.FieldManager, forced.
	manager string
	force   bool
}

func (d *Delivery) resource(ref objectRef) dynamic.ResourceInterface {
	r := d.dyn.Resource(ref.gvr())
	if ref.Namespace != "" {
		return r.Namespace(ref.Namespace)
	}
	return r
}

// applyObject writes one manifest, guarded by the object's generation and
// resourceVersion (see the package documentation).
func (d *Delivery) applyObject(ctx context.Context, m manifest, work string, gen int64, guarded bool) error {
	obj := m.obj.DeepCopy()
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelDeliveredBy] = d.opts.FieldManager
	obj.SetLabels(labels)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationWork] = work
	if guarded {
		ann[workmeta.AnnotationGeneration] = strconv.FormatInt(gen, 10)
	}
	obj.SetAnnotations(ann)
	obj.SetResourceVersion("")
	ri := d.resource(m.ref)

	live, err := ri.Get(ctx, m.ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: m.manager})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%w: %w", errLostRace, err)
		}
		if err != nil {
			return classify(err)
		}
		// Create records its fields under an Update entry of the field
		// manager, which a later apply does not release: hand them to the
		// Apply entry (the patch tests the resourceVersion).
		patch, err := csaupgrade.UpgradeManagedFieldsPatch(created, sets.New(m.manager), m.manager)
		if err == nil && patch != nil {
			_, err = ri.Patch(ctx, m.ref.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
		}
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsInvalid(err) {
			return classify(fmt.Errorf("taking over the fields of the created object: %w", err))
		}
		return nil
	}
	if err != nil {
		return classify(err)
	}
	if live.GetDeletionTimestamp() != nil {
		return failure.Transient(fmt.Errorf("%s is being deleted; it is applied again once it is gone", m.ref))
	}
	if have, ok := objectGeneration(live); guarded && ok && have > gen && live.GetAnnotations()[AnnotationWork] == work {
		return fmt.Errorf("%s is at generation %d, not applying generation %d: %w", m.ref, have, gen, workmeta.ErrStaleGeneration)
	}
	obj.SetResourceVersion(live.GetResourceVersion())
	_, err = ri.Apply(ctx, m.ref.Name, obj, metav1.ApplyOptions{FieldManager: m.manager, Force: m.force})
	if fieldConflict(err) {
		return failure.Permanent(fmt.Errorf("server-side apply as %s (not forced) conflicts with other field managers: %w", m.manager, err))
	}
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errLostRace, err)
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// prune deletes the objects dropped from a work, except those its delete
// option orphans, those another work has taken over, and those a newer
// generation of the work wrote again. Each delete carries the
// resourceVersion it checked as precondition.
func (d *Delivery) prune(ctx context.Context, refs []objectRef, work string, gen int64, guarded bool, opt *workv1.DeleteOption) error {
	for _, ref := range refs {
		if orphaned(opt, ref) {
			continue
		}
		ri := d.resource(ref)
		live, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return classify(err)
		}
		if live.GetAnnotations()[AnnotationWork] != work || live.GetDeletionTimestamp() != nil {
			continue
		}
		if have, ok := objectGeneration(live); guarded && ok && have > gen {
			continue
		}
		if err := d.deleteObject(ctx, ri, live, true); err != nil {
			return err
		}
	}
	return nil
}

// deleteObject deletes live, on condition that it is still that object
// (its UID) and, when checkVersion, unchanged since it was read.
func (d *Delivery) deleteObject(ctx context.Context, ri dynamic.ResourceInterface, live *unstructured.Unstructured, checkVersion bool) error {
	uid, rv := live.GetUID(), live.GetResourceVersion()
	pre := &metav1.Preconditions{UID: &uid}
	if checkVersion {
		pre.ResourceVersion = &rv
	}
	propagation := d.opts.DeletePropagation
	if propagation == metav1.DeletePropagationOrphan {
		// A work that says Foreground itself, under an adapter that orphans
		// by default: its objects go, their dependents are collected.
		propagation = metav1.DeletePropagationBackground
	}
	err := ri.Delete(ctx, live.GetName(), metav1.DeleteOptions{
		Preconditions:     pre,
		PropagationPolicy: &propagation,
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return failure.Transient(fmt.Errorf("deleting %s %s: %w: %w", live.GetKind(), live.GetName(), errLostRace, err))
	}
	return classify(fmt.Errorf("deleting %s %s: %w", live.GetKind(), live.GetName(), err))
}

// orphaned reports whether the work's delete option keeps ref, as the real
// agent and maestrotest's stand-in decide it (feedback.OwnedByTheWork).
func orphaned(opt *workv1.DeleteOption, ref objectRef) bool {
	return !feedback.OwnedByTheWork(opt, ref.resource())
}

// anyMissing reports whether an object of refs is absent from the caches.
func (d *Delivery) anyMissing(refs []objectRef) bool {
	for _, r := range refs {
		if d.cached(r) == nil {
			return true
		}
	}
	return false
}

// resolve maps each manifest to the API resource serving its kind. An
// unknown kind (its CRD not installed) is asked about once more after
// forgetting what discovery said, then refused Permanent.
func (d *Delivery) resolve(w *workv1.ManifestWork) ([]manifest, error) {
	out := make([]manifest, 0, len(w.Spec.Workload.Manifests))
	for i, m := range w.Spec.Workload.Manifests {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(m.Raw); err != nil {
			return nil, failure.Permanentf("applying work %s/%s: manifest %d: %w", w.Namespace, w.Name, i, err)
		}
		gvk := obj.GroupVersionKind()
		mapping, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			d.mapper.Reset()
			mapping, err = d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if meta.IsNoMatchError(err) {
			return nil, failure.Permanentf("applying work %s/%s: manifest %d: the API server serves no %s (is its CRD installed?)",
				w.Namespace, w.Name, i, gvk)
		}
		if err != nil {
			return nil, failure.Transient(fmt.Errorf("applying work %s/%s: manifest %d: looking up %s: %w", w.Namespace, w.Name, i, gvk, err))
		}
		ns := obj.GetNamespace()
		namespaced := mapping.Scope.Name() == meta.RESTScopeNameNamespace
		switch {
		case namespaced && ns == "":
			return nil, failure.Permanentf("applying work %s/%s: manifest %d: %s %s is namespaced but has no metadata.namespace",
				w.Namespace, w.Name, i, gvk.Kind, obj.GetName())
		case !namespaced && ns != "":
			return nil, failure.Permanentf("applying work %s/%s: manifest %d: %s %s is cluster-scoped but has metadata.namespace %q",
				w.Namespace, w.Name, i, gvk.Kind, obj.GetName(), ns)
		}
		ref := objectRef{
			Group: mapping.Resource.Group, Version: mapping.Resource.Version, Resource: mapping.Resource.Resource,
			Kind: gvk.Kind, Namespace: ns, Name: obj.GetName(),
		}
		for _, prev := range out {
			if prev.ref.key() == ref.key() {
				return nil, failure.Permanentf("applying work %s/%s: manifest %d: %s appears twice", w.Namespace, w.Name, i, ref)
			}
		}
		m := manifest{ref: ref, obj: obj, manager: d.opts.FieldManager, force: true}
		if st := updateStrategy(w.Spec.ManifestConfigs, ref); st != nil {
			switch st.Type {
			case "", workv1.UpdateStrategyTypeUpdate:
			case workv1.UpdateStrategyTypeServerSideApply:
				m.force = false
				if st.ServerSideApply != nil {
					m.force = st.ServerSideApply.Force
					if st.ServerSideApply.FieldManager != "" {
						m.manager = st.ServerSideApply.FieldManager
					}
				}
			default:
				// The informers only see objects this delivery labelled, so
				// it cannot report on objects it must not write.
				return nil, failure.Permanentf("applying work %s/%s: manifest %d (%s): update strategy %s is not supported by the kubernetes delivery",
					w.Namespace, w.Name, i, ref, st.Type)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// updateStrategy is the update strategy the work's manifestConfigs give
// ref, or nil, resolved as the real agent resolves it (feedback.Config:
// the first matching config that sets one, "*" patterns included).
func updateStrategy(configs []workv1.ManifestConfigOption, ref objectRef) *workv1.UpdateStrategy {
	c, _ := feedback.Config(configs, ref.resource())
	return c.UpdateStrategy
}

// fieldConflict reports a server-side apply refused because other field
// managers own fields the manifest sets (not forced): retrying cannot help.
func fieldConflict(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict {
			return true
		}
	}
	return false
}

func objectGeneration(obj *unstructured.Unstructured) (int64, bool) {
	gen, err := strconv.ParseInt(obj.GetAnnotations()[workmeta.AnnotationGeneration], 10, 64)
	return gen, err == nil
}
