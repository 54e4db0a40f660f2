// For the deliveries that follow a Kubernetes API with informers (kubeapply,
// jobs): what their informers share besides WorkEventFanout.

package maestro

import "k8s.io/apimachinery/pkg/api/meta"

// StripManagedFields is an informer transform (cache.TransformFunc) that
// drops an object's managedFields before it is cached: no delivery reads
// them, and every cached object would carry them.
func StripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
