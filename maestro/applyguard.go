// What every Delivery asks of a work it is to apply, whichever backend keeps
// the works (SourceDelivery, kubeapply, jobs): the checks the work must
// pass, the resource generation it carries, and how two specs compare.

package maestro

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// CheckWork checks what every Delivery needs of a work to apply (a name, a
// consumer as its namespace, manifests that are Kubernetes objects Maestro
// can track, see CheckManifest) and returns a deep copy whose manifests are
// all encoded in Raw. Its errors are Permanent and name the work and the
// manifest.
func CheckWork(work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	switch {
	case work == nil:
		return nil, failure.Permanentf("applying work: nil work")
	case work.Name == "":
		return nil, failure.Permanentf("applying work: metadata.name is empty")
	case work.Namespace == "":
		return nil, failure.Permanentf("applying work %s: metadata.namespace (the consumer name) is empty", work.Name)
	case len(work.Spec.Workload.Manifests) == 0:
		return nil, failure.Permanentf("applying work %s/%s: spec.workload.manifests is empty", work.Namespace, work.Name)
	}
	out := work.DeepCopy()
	for i := range out.Spec.Workload.Manifests {
		m := &out.Spec.Workload.Manifests[i]
		if m.Raw == nil && m.Object != nil {
			raw, err := json.Marshal(m.Object)
			if err != nil {
				return nil, failure.Permanentf("applying work %s/%s: encoding manifest %d: %w", work.Namespace, work.Name, i, err)
			}
			m.Raw, m.Object = raw, nil
		}
		if err := CheckManifest(m.Raw); err != nil {
			return nil, failure.Permanentf("applying work %s/%s: manifest %d: %w", work.Namespace, work.Name, i, err)
		}
	}
	return out, nil
}

// CheckManifest reports what makes raw unfit as a manifest of a
// ManifestWork: not a Kubernetes object, no apiVersion, kind or name, or a
// generateName (Maestro cannot track an object whose name it does not know).
func CheckManifest(raw []byte) error {
	if raw == nil {
		return errors.New("empty")
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	switch {
	case u.GetAPIVersion() == "":
		return errors.New("apiVersion is empty")
	case u.GetKind() == "":
		return errors.New("kind is empty")
	case u.GetName() == "":
		return fmt.Errorf("%s has no metadata.name", u.GetKind())
	case u.GetGenerateName() != "":
		return fmt.Errorf("%s %s: metadata.generateName is not allowed in a ManifestWork", u.GetKind(), u.GetName())
	}
	return nil
}

// DesiredGeneration reads workmeta.AnnotationGeneration of a work being applied: ok
// is false when it carries none (Apply then writes it unguarded, last
// writer wins); a value that is not a generation is a Permanent error.
func DesiredGeneration(w *workv1.ManifestWork) (gen int64, ok bool, err error) {
	v, ok := w.Annotations[workmeta.AnnotationGeneration]
	if !ok {
		return 0, false, nil
	}
	gen, err = strconv.ParseInt(v, 10, 64)
	if err != nil || gen < 0 {
		return 0, false, failure.Permanentf("applying work %s/%s: annotation %s=%q is not a generation",
			w.Namespace, w.Name, workmeta.AnnotationGeneration, v)
	}
	return gen, true, nil
}

// SameSpec reports whether two work specs say the same, compared decoded:
// Maestro and the API server hand manifests back in their own encoding.
func SameSpec(a, b workv1.ManifestWorkSpec) bool {
	da, errA := decoded(a)
	db, errB := decoded(b)
	return errA == nil && errB == nil && reflect.DeepEqual(da, db)
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
