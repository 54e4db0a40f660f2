package kubeapply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/csaupgrade"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/retry"
)

// errLostRace is a write refused because another writer changed what was
// read: read again and decide again.
var errLostRace = errors.New("changed concurrently")

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

// Apply implements maestro.Delivery; see the package documentation.
func (d *Delivery) Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	desired, err := d.desired(work)
	if err != nil {
		return nil, err
	}
	consumer, name := desired.Namespace, desired.Name
	gen, guarded, err := generationOf(desired)
	if err != nil {
		return nil, err
	}
	manifests, err := d.resolve(desired)
	if err != nil {
		return nil, err
	}
	refs := make([]objectRef, len(manifests))
	for i, m := range manifests {
		refs[i] = m.ref
	}
	if err := d.waitInformers(ctx, refs); err != nil {
		return nil, err
	}
	log := d.log.With("consumer", consumer, "work", name, "generation", gen)
	secrets := d.cs.CoreV1().Secrets(d.opts.Namespace)
	recName := recordName(consumer, name)

	attempts := 0
	again := func(why string, cause error) error {
		attempts++
		if attempts > d.opts.ConflictRetries {
			return events.Transient(fmt.Errorf("applying work %s/%s: %s, still after %d attempts: %w", consumer, name, why, attempts, cause))
		}
		log.DebugContext(ctx, "applying work: retrying", "reason", why, "attempt", attempts, "error", cause)
		return events.Transient(retry.Sleep(ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, attempts)))
	}
outer:
	for {
		s, err := secrets.Get(ctx, recName, metav1.GetOptions{})
		var rec *record
		switch {
		case apierrors.IsNotFound(err):
			rec = &record{Work: *desired, Version: 1, Manifests: refs, Objects: refs}
			var created *corev1.Secret
			if created, err = d.secretOf(nil, rec); err == nil {
				s, err = secrets.Create(ctx, created, metav1.CreateOptions{FieldManager: d.opts.FieldManager})
			}
			if apierrors.IsAlreadyExists(err) {
				if err := again("created concurrently", err); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, classify(fmt.Errorf("creating the record of work %s/%s: %w", consumer, name, err))
			}
			log.DebugContext(ctx, "work record created")
		case err != nil:
			return nil, classify(fmt.Errorf("reading the record of work %s/%s: %w", consumer, name, err))
		default:
			if rec, err = decodeRecord(s); err != nil {
				return nil, events.Permanent(err)
			}
			if have, ok := maestro.ResourceGeneration(&rec.Work); guarded && ok && have > gen {
				return d.withStatus(s, rec), fmt.Errorf("work %s/%s is at generation %d, not applying generation %d: %w",
					consumer, name, have, gen, maestro.ErrStaleGeneration)
			}
			if s.DeletionTimestamp != nil {
				log.InfoContext(ctx, "work is being deleted; waiting to create it anew")
				if err := d.waitGone(ctx, recName); err != nil {
					return nil, err
				}
				continue
			}
			same := upToDate(&rec.Work, desired)
			if same && rec.AppliedVersion == rec.Version && rec.Failure == nil && !d.anyMissing(rec.Manifests) {
				log.DebugContext(ctx, "work unchanged", "version", rec.Version)
				return d.withStatus(s, rec), nil
			}
			if !same {
				rec.Work = *desired
				rec.Version++
				rec.Failure = nil
				rec.Manifests = refs
				rec.Objects = union(rec.Objects, refs)
				if s, err = d.updateRecord(ctx, s, rec); err != nil {
					if errors.Is(err, errLostRace) {
						if err := again("record changed concurrently", err); err != nil {
							return nil, err
						}
						continue
					}
					return nil, err
				}
			}
		}

		// The record says what the cluster should hold; make it so.
		for i, m := range manifests {
			err := d.applyObject(ctx, m, workID(consumer, name), gen, guarded)
			switch {
			case err == nil:
				continue
			case errors.Is(err, maestro.ErrStaleGeneration):
				return d.latest(ctx, recName, s, rec), fmt.Errorf("work %s/%s: %w", consumer, name, err)
			case errors.Is(err, errLostRace):
				// Read the record again: a newer generation may have won.
				if err := again(m.ref.String()+" changed concurrently", err); err != nil {
					return nil, err
				}
				continue outer
			case events.IsPermanent(err):
				d.recordFailure(ctx, s, rec, i, err)
				return nil, fmt.Errorf("applying work %s/%s: manifest %d (%s): %w", consumer, name, i, m.ref, err)
			default:
				return nil, fmt.Errorf("applying work %s/%s: manifest %d (%s): %w", consumer, name, i, m.ref, err)
			}
		}
		dropped := minus(rec.Objects, refs)
		if err := d.prune(ctx, dropped, workID(consumer, name), gen, guarded, rec.Work.Spec.DeleteOption); err != nil {
			return nil, fmt.Errorf("applying work %s/%s: deleting the objects dropped from it: %w", consumer, name, err)
		}
		rec.AppliedVersion = rec.Version
		rec.Failure = nil
		rec.Objects = refs
		updated, err := d.updateRecord(ctx, s, rec)
		if errors.Is(err, errLostRace) {
			if err := again("record changed concurrently", err); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		log.DebugContext(ctx, "work applied", "version", rec.Version)
		return d.withStatus(updated, rec), nil
	}
}

// latest reads the record again for a refused Apply's answer.
func (d *Delivery) latest(ctx context.Context, recName string, s *corev1.Secret, rec *record) *workv1.ManifestWork {
	if fresh, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Get(ctx, recName, metav1.GetOptions{}); err == nil {
		if r, err := decodeRecord(fresh); err == nil {
			return d.withStatus(fresh, r)
		}
	}
	return d.withStatus(s, rec)
}

func (d *Delivery) updateRecord(ctx context.Context, s *corev1.Secret, rec *record) (*corev1.Secret, error) {
	next, err := d.secretOf(s, rec)
	if err != nil {
		return nil, events.Permanent(err)
	}
	updated, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: d.opts.FieldManager})
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: %w", errLostRace, err)
	case err != nil:
		return nil, classify(fmt.Errorf("writing the record of work %s/%s: %w", rec.Work.Namespace, rec.Work.Name, err))
	}
	return updated, nil
}

// recordFailure notes on the record why applying its version failed, so
// that Get and Watch report Applied=False and Degraded=True. A record that
// changed meanwhile belongs to another writer: left alone.
func (d *Delivery) recordFailure(ctx context.Context, s *corev1.Secret, rec *record, ordinal int, cause error) {
	rec.Failure = &failure{Version: rec.Version, Ordinal: ordinal, Reason: "AppliedManifestFailed", Message: cause.Error()}
	if _, err := d.updateRecord(ctx, s, rec); err != nil {
		d.log.DebugContext(ctx, "work record: failure not recorded", "error", err)
	}
}

// waitGone waits, up to DeleteWait, for a deleted work's record to go.
func (d *Delivery) waitGone(ctx context.Context, recName string) error {
	deadline := time.Now().Add(d.opts.DeleteWait)
	for n := 1; ; n++ {
		_, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Get(ctx, recName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return classify(fmt.Errorf("waiting for work record %s to go: %w", recName, err))
		}
		if time.Now().After(deadline) {
			return events.Transient(fmt.Errorf("work record %s is still being deleted after %s", recName, d.opts.DeleteWait))
		}
		if err := retry.Sleep(ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, n)); err != nil {
			return events.Transient(err)
		}
	}
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
		ann[maestro.AnnotationGeneration] = strconv.FormatInt(gen, 10)
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
		return events.Transient(fmt.Errorf("%s is being deleted; it is applied again once it is gone", m.ref))
	}
	if have, ok := objectGeneration(live); guarded && ok && have > gen && live.GetAnnotations()[AnnotationWork] == work {
		return fmt.Errorf("%s is at generation %d, not applying generation %d: %w", m.ref, have, gen, maestro.ErrStaleGeneration)
	}
	obj.SetResourceVersion(live.GetResourceVersion())
	_, err = ri.Apply(ctx, m.ref.Name, obj, metav1.ApplyOptions{FieldManager: m.manager, Force: m.force})
	if fieldConflict(err) {
		return events.Permanent(fmt.Errorf("server-side apply as %s (not forced) conflicts with other field managers: %w", m.manager, err))
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
		return events.Transient(fmt.Errorf("deleting %s %s: %w: %w", live.GetKind(), live.GetName(), errLostRace, err))
	}
	return classify(fmt.Errorf("deleting %s %s: %w", live.GetKind(), live.GetName(), err))
}

// orphaned reports whether the work's delete option keeps ref.
func orphaned(opt *workv1.DeleteOption, ref objectRef) bool {
	if opt == nil {
		return false
	}
	switch opt.PropagationPolicy {
	case workv1.DeletePropagationPolicyTypeOrphan:
		return true
	case workv1.DeletePropagationPolicyTypeSelectivelyOrphan:
		if opt.SelectivelyOrphan == nil {
			return false
		}
		for _, r := range opt.SelectivelyOrphan.OrphaningRules {
			if r.Group == ref.Group && r.Resource == ref.Resource && r.Namespace == ref.Namespace && r.Name == ref.Name {
				return true
			}
		}
	}
	return false
}

// Delete implements maestro.Delivery: the record is deleted, and stays,
// marked deleting, until the worker has deleted its objects.
func (d *Delivery) Delete(ctx context.Context, consumer, name string) error {
	recName := recordName(consumer, name)
	secrets := d.cs.CoreV1().Secrets(d.opts.Namespace)
	s, err := secrets.Get(ctx, recName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("deleting work %s/%s: %w", consumer, name, err))
	}
	if s.DeletionTimestamp != nil {
		return nil
	}
	uid := s.UID
	err = secrets.Delete(ctx, recName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return classify(fmt.Errorf("deleting work %s/%s: %w", consumer, name, err))
	}
	d.queue.Add(recName)
	return nil
}

// finalize deletes a deleted work's objects (but those orphaned) and,
// once the caches show none left, releases the record.
func (d *Delivery) finalize(ctx context.Context, s *corev1.Secret, rec *record) error {
	work := workID(rec.Work.Namespace, rec.Work.Name)
	left := 0
	for _, ref := range rec.Objects {
		if orphaned(rec.Work.Spec.DeleteOption, ref) {
			continue
		}
		live := d.cached(ref)
		if live == nil || live.GetAnnotations()[AnnotationWork] != work {
			continue
		}
		left++
		if live.GetDeletionTimestamp() != nil {
			continue
		}
		// Read from the cache, which may lag: only the UID is checked. No
		// newer generation of a deleted work writes its objects (Apply
		// waits for the record to go).
		if err := d.deleteObject(ctx, d.resource(ref), live, false); err != nil {
			return err
		}
	}
	if left > 0 {
		return nil // the objects' informers bring the work back here
	}
	next := s.DeepCopy()
	var kept []string
	for _, f := range next.Finalizers {
		if f != FinalizerObjects {
			kept = append(kept, f)
		}
	}
	next.Finalizers = kept
	_, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: d.opts.FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("releasing the record of deleted work %s: %w", work, err))
	}
	return nil
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

// desired validates work and returns the copy to keep: server-owned fields
// cleared, manifests encoded, deleteOption defaulted.
func (d *Delivery) desired(work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	if work == nil {
		return nil, events.Permanentf("applying work: nil work")
	}
	if work.Name == "" {
		return nil, events.Permanentf("applying work: metadata.name is empty")
	}
	if work.Namespace == "" {
		return nil, events.Permanentf("applying work %s: metadata.namespace (the consumer name) is empty", work.Name)
	}
	out := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: work.Name, Namespace: work.Namespace, Labels: copyMap(work.Labels), Annotations: copyMap(work.Annotations)},
		Spec:       *work.Spec.DeepCopy(),
	}
	if len(out.Spec.Workload.Manifests) == 0 {
		return nil, events.Permanentf("applying work %s/%s: spec.workload.manifests is empty", work.Namespace, work.Name)
	}
	for i := range out.Spec.Workload.Manifests {
		m := &out.Spec.Workload.Manifests[i]
		if m.Raw == nil && m.Object != nil {
			raw, err := json.Marshal(m.Object)
			if err != nil {
				return nil, events.Permanentf("applying work %s/%s: encoding manifest %d: %w", work.Namespace, work.Name, i, err)
			}
			m.Raw, m.Object = raw, nil
		}
		if err := maestro.CheckManifest(m.Raw); err != nil {
			return nil, events.Permanentf("applying work %s/%s: manifest %d: %w", work.Namespace, work.Name, i, err)
		}
		// Keep one encoding, so that an unchanged work compares equal.
		var v any
		if err := json.Unmarshal(m.Raw, &v); err == nil {
			m.Raw, _ = json.Marshal(v)
		}
	}
	if out.Spec.DeleteOption == nil {
		out.Spec.DeleteOption = d.opts.workDeleteOption()
	}
	return out, nil
}

// resolve maps each manifest to the API resource serving its kind. An
// unknown kind (its CRD not installed) is asked about once more after
// forgetting what discovery said, then refused Permanent.
func (d *Delivery) resolve(w *workv1.ManifestWork) ([]manifest, error) {
	out := make([]manifest, 0, len(w.Spec.Workload.Manifests))
	for i, m := range w.Spec.Workload.Manifests {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(m.Raw); err != nil {
			return nil, events.Permanentf("applying work %s/%s: manifest %d: %w", w.Namespace, w.Name, i, err)
		}
		gvk := obj.GroupVersionKind()
		mapping, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			d.mapper.Reset()
			mapping, err = d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if meta.IsNoMatchError(err) {
			return nil, events.Permanentf("applying work %s/%s: manifest %d: the API server serves no %s (is its CRD installed?)",
				w.Namespace, w.Name, i, gvk)
		}
		if err != nil {
			return nil, events.Transient(fmt.Errorf("applying work %s/%s: manifest %d: looking up %s: %w", w.Namespace, w.Name, i, gvk, err))
		}
		ns := obj.GetNamespace()
		namespaced := mapping.Scope.Name() == meta.RESTScopeNameNamespace
		switch {
		case namespaced && ns == "":
			return nil, events.Permanentf("applying work %s/%s: manifest %d: %s %s is namespaced but has no metadata.namespace",
				w.Namespace, w.Name, i, gvk.Kind, obj.GetName())
		case !namespaced && ns != "":
			return nil, events.Permanentf("applying work %s/%s: manifest %d: %s %s is cluster-scoped but has metadata.namespace %q",
				w.Namespace, w.Name, i, gvk.Kind, obj.GetName(), ns)
		}
		ref := objectRef{
			Group: mapping.Resource.Group, Version: mapping.Resource.Version, Resource: mapping.Resource.Resource,
			Kind: gvk.Kind, Namespace: ns, Name: obj.GetName(),
		}
		for _, prev := range out {
			if prev.ref.key() == ref.key() {
				return nil, events.Permanentf("applying work %s/%s: manifest %d: %s appears twice", w.Namespace, w.Name, i, ref)
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
				return nil, events.Permanentf("applying work %s/%s: manifest %d (%s): update strategy %s is not supported by the kubernetes delivery",
					w.Namespace, w.Name, i, ref, st.Type)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// updateStrategy is the update strategy the work's manifestConfigs give
// ref, or nil.
func updateStrategy(configs []workv1.ManifestConfigOption, ref objectRef) *workv1.UpdateStrategy {
	for _, c := range configs {
		id := c.ResourceIdentifier
		if id.Group == ref.Group && id.Resource == ref.Resource && id.Namespace == ref.Namespace && id.Name == ref.Name && c.UpdateStrategy != nil {
			return c.UpdateStrategy
		}
	}
	return nil
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

// generationOf reads AnnotationGeneration of the work being applied.
func generationOf(w *workv1.ManifestWork) (gen int64, ok bool, err error) {
	v, ok := w.Annotations[maestro.AnnotationGeneration]
	if !ok {
		return 0, false, nil
	}
	gen, err = strconv.ParseInt(v, 10, 64)
	if err != nil || gen < 0 {
		return 0, false, events.Permanentf("applying work %s/%s: annotation %s=%q is not a generation",
			w.Namespace, w.Name, maestro.AnnotationGeneration, v)
	}
	return gen, true, nil
}

func objectGeneration(obj *unstructured.Unstructured) (int64, bool) {
	gen, err := strconv.ParseInt(obj.GetAnnotations()[maestro.AnnotationGeneration], 10, 64)
	return gen, err == nil
}

// upToDate reports whether stored carries desired's labels, annotations
// and spec (manifests compared decoded).
func upToDate(stored, desired *workv1.ManifestWork) bool {
	if !reflect.DeepEqual(nonNil(stored.Labels), nonNil(desired.Labels)) || !reflect.DeepEqual(nonNil(stored.Annotations), nonNil(desired.Annotations)) {
		return false
	}
	a, errA := decoded(stored.Spec)
	b, errB := decoded(desired.Spec)
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

func decoded(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(raw, &out)
	return out, err
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// classify marks err Permanent when retrying the same request cannot help
// until someone changes the manifests, the RBAC or the cluster's APIs.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsMethodNotSupported(err):
		return events.Permanent(err)
	}
	// NotFound (the object's namespace does not exist yet), timeouts, 5xx,
	// network errors, cancelled contexts: another try may succeed.
	return events.Transient(err)
}
