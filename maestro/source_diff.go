// How Apply compares a stored work with the desired one and builds the
// merge patch between them: owned versus foreign labels and annotations,
// manifests compared decoded, and the manifest identities Maestro holds
// immutable.

package maestro

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"
)

// upToDate reports whether stored already carries desired's labels,
// annotations and spec. Manifests are compared decoded: Maestro stores them
// as JSON objects and hands back its own encoding.
func upToDate(stored, desired *workv1.ManifestWork) bool {
	if !ownedEqual(desired.Labels, stored.Labels) || !ownedEqual(desired.Annotations, stored.Annotations) {
		return false
	}
	return SameSpec(stored.Spec, desired.Spec)
}

// ownedEqual compares the keys Apply owns: all of desired's, and any of
// stored's that the SDK or Maestro did not add.
func ownedEqual(desired, stored map[string]string) bool {
	for k, v := range desired {
		if sv, ok := stored[k]; !ok || sv != v {
			return false
		}
	}
	for k := range stored {
		if _, ok := desired[k]; !ok && !strings.Contains(k, foreignKeyMarker) {
			return false
		}
	}
	return true
}

// withForeign returns desired plus stored's foreign keys, so that a merge
// patch keeps them, except the resource version annotation.
func withForeign(desired, stored map[string]string) map[string]string {
	out := maps.Clone(desired)
	for k, v := range stored {
		if _, ok := desired[k]; ok || !strings.Contains(k, foreignKeyMarker) || k == annotationCloudEventsResourceVersion {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// mergePatch builds the JSON merge patch taking stored to desired, the way
// Maestro's grpcsource.ToWorkPatch does: it sets metadata.generation (and
// the deprecated resourceVersion) to the stored values, which is what makes
// the OCM source client publish it with that version (getWorkResourceVersion
// falls back to metadata.generation), so Maestro refuses it if the work has
// changed since. Without them the client would carry whatever version it
// reads itself just before publishing: last writer wins.
func mergePatch(stored, desired *workv1.ManifestWork) ([]byte, error) {
	oldData, err := json.Marshal(&workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Labels: stored.Labels, Annotations: stored.Annotations},
		Spec:       stored.Spec,
	})
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(&workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			UID:             stored.UID,
			ResourceVersion: stored.ResourceVersion,
			Generation:      stored.Generation,
			Labels:          withForeign(desired.Labels, stored.Labels),
			Annotations:     withForeign(desired.Annotations, stored.Annotations),
		},
		Spec: desired.Spec,
	})
	if err != nil {
		return nil, err
	}
	return jsonpatch.CreateMergePatch(oldData, newData)
}

// VersionedUpdater is a work client that publishes a whole work as an
// update at the version the work carries (maestro/remote's writer does, on
// the OCM source client's CloudEvents client and codec). Apply hands it the
// patched work (patchedWork) instead of a JSON merge patch: the OCM source
// client's Patch would only apply that patch back onto the same stored work
// (a JSON round trip of the whole work with its status, and a json-patch
// merge), about 15% of the adapter's CPU per event in the benchmark's
// profile. Maestro refuses the update as it would the patch when the
// version is stale. UpdateVersioned takes the work over: the caller does
// not use it afterwards.
type VersionedUpdater interface {
	UpdateVersioned(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error)
}

// patchedWork is stored with mergePatch(stored, desired) applied, built
// directly: stored's metadata (name, uid, version) and status, desired's
// spec, and the labels and annotations mergePatch sets. The merge patch
// nulls what stored has and desired lacks, so the patched spec is desired's
// and the maps are exactly withForeign's (TestPatchedWorkIsTheMergePatchApplied
// holds the two paths equal).
func patchedWork(stored, desired *workv1.ManifestWork) *workv1.ManifestWork {
	w := &workv1.ManifestWork{TypeMeta: stored.TypeMeta, ObjectMeta: *stored.ObjectMeta.DeepCopy()}
	w.Labels = withForeign(desired.Labels, stored.Labels)
	w.Annotations = withForeign(desired.Annotations, stored.Annotations)
	desired.Spec.DeepCopyInto(&w.Spec)
	stored.Status.DeepCopyInto(&w.Status)
	return w
}

// OCMWorkVersion is the version the OCM source client publishes a work
// update at (sdk-go clients/work/source/client getWorkResourceVersion): the
// resource version annotation, else the work's own resourceVersion and
// generation; "0" (no version check) when it has none. The writers that
// publish without that client's Patch (maestro/remote's UpdateVersioned)
// and the embedded store that plays Maestro use it so as to agree with it.
func OCMWorkVersion(w *workv1.ManifestWork) (rv string, gen int64, err error) {
	rv, ok := w.Annotations[annotationCloudEventsResourceVersion]
	if ok {
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

// manifestIdentity is what Maestro's ValidateManifestBundleUpdate holds
// immutable per manifest position.
type manifestIdentity struct{ apiVersion, kind, namespace, name string }

func identities(w *workv1.ManifestWork) []manifestIdentity {
	out := make([]manifestIdentity, 0, len(w.Spec.Workload.Manifests))
	for _, m := range w.Spec.Workload.Manifests {
		var u unstructured.Unstructured
		_ = u.UnmarshalJSON(m.Raw) // validated by desired; a broken stored one compares unequal
		out = append(out, manifestIdentity{u.GetAPIVersion(), u.GetKind(), u.GetNamespace(), u.GetName()})
	}
	return out
}

func manifestSetChanged(stored, desired *workv1.ManifestWork) bool {
	return !reflect.DeepEqual(identities(stored), identities(desired))
}
