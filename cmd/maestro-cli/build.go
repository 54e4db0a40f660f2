package main

import (
	"fmt"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"
)

// mergeWork is build's merge: stored (may be nil) with the file's work on
// top. Manifests are matched by group, kind, namespace and name; a match is
// replaced in place, the rest of the file's are appended, stored ones the
// file does not mention stay. The result carries the stored generation and
// creation time, which apply checks (see checkBasis).
func mergeWork(stored, file *workv1.ManifestWork) *workv1.ManifestWork {
	out := &workv1.ManifestWork{
		TypeMeta:   metav1.TypeMeta{APIVersion: workGVK.GroupVersion().String(), Kind: workGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: file.Name, Namespace: file.Namespace},
	}
	if stored == nil {
		out.Labels, out.Annotations = file.Labels, file.Annotations
		out.Spec = *file.Spec.DeepCopy()
		return out
	}
	out.Generation = stored.Generation
	out.CreationTimestamp = stored.CreationTimestamp
	out.Labels = mergeMaps(stored.Labels, file.Labels)
	out.Annotations = mergeMaps(stored.Annotations, file.Annotations)

	spec := stored.Spec.DeepCopy()
	pos := map[identity]int{}
	for i, m := range spec.Workload.Manifests {
		if obj, ok := decodeObject(m.Raw); ok {
			pos[identityOf(obj)] = i
		}
	}
	for _, m := range file.Spec.Workload.Manifests {
		obj, ok := decodeObject(m.Raw)
		if !ok {
			continue // checked when the file was read
		}
		id := identityOf(obj)
		if i, found := pos[id]; found {
			spec.Workload.Manifests[i] = *m.DeepCopy()
			continue
		}
		pos[id] = len(spec.Workload.Manifests)
		spec.Workload.Manifests = append(spec.Workload.Manifests, *m.DeepCopy())
	}
	if file.Spec.DeleteOption != nil {
		spec.DeleteOption = file.Spec.DeleteOption.DeepCopy()
	}
	for _, c := range file.Spec.ManifestConfigs {
		replaced := false
		for i := range spec.ManifestConfigs {
			if reflect.DeepEqual(spec.ManifestConfigs[i].ResourceIdentifier, c.ResourceIdentifier) {
				spec.ManifestConfigs[i] = *c.DeepCopy()
				replaced = true
			}
		}
		if !replaced {
			spec.ManifestConfigs = append(spec.ManifestConfigs, *c.DeepCopy())
		}
	}
	if file.Spec.Executor != nil {
		spec.Executor = file.Spec.Executor.DeepCopy()
	}
	out.Spec = *spec
	return out
}

// mergeMaps is stored's own keys (not the SDK's) with file's on top.
func mergeMaps(stored, file map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range stored {
		if !strings.Contains(k, foreignKeyMarker) {
			out[k] = v
		}
	}
	for k, v := range file {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func decodeObject(raw []byte) (*unstructured.Unstructured, bool) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, false
	}
	return obj, true
}

// cmdBuild prints the stored work with the file's manifests merged in: the
// complete work to apply (pattern A's fetch-and-merge).
func cmdBuild(inv *invocation) (*outcome, error) {
	o := inv.o
	file, _, stored, err := fileAndStored(inv)
	if err != nil {
		return nil, err
	}
	merged := mergeWork(stored, file)
	msg := fmt.Sprintf("ManifestWork %s/%s: work does not exist; built from %s alone (%d manifests)", o.Consumer, file.Name, o.ManifestFile, len(merged.Spec.Workload.Manifests))
	if stored == nil {
		inv.log.Info("work does not exist; the result holds the file's manifests only", "work", o.Consumer+"/"+file.Name)
	} else {
		msg = fmt.Sprintf("ManifestWork %s/%s: generation %d (%d manifests) merged with %s (%d manifests): %d manifests",
			o.Consumer, file.Name, stored.Generation, len(stored.Spec.Workload.Manifests), o.ManifestFile, len(file.Spec.Workload.Manifests), len(merged.Spec.Workload.Manifests))
	}
	// A table makes no sense for a whole work: build prints YAML unless
	// JSON is asked for.
	saved := inv.g.Output
	if saved == "table" {
		inv.g.Output = "yaml"
	}
	err = inv.printObject(merged)
	inv.g.Output = saved
	if err != nil {
		return nil, err
	}
	return &outcome{status: stateSucceeded, message: msg}, nil
}
