package maestro

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	workv1 "open-cluster-management.io/api/work/v1"
	clientutils "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
)

// BenchmarkPatchBuild compares what a patch of one work costs this process
// before the publish (which both paths share): merge-patch is the JSON
// merge patch built here and applied by the OCM source client's Patch onto
// the stored work (with the two copies it makes), direct is patchedWork,
// which UpdateVersioned publishes as it is. The work is the size of the bench's
// template works: five manifests, a status with conditions and feedback.
//
//	go test -run '^$' -bench PatchBuild -benchmem -count 6 ./maestro
func BenchmarkPatchBuild(b *testing.B) {
	stored, desired := benchWorks(5)
	b.Run("merge-patch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := mergePatch(stored, desired)
			if err != nil {
				b.Fatal(err)
			}
			w, err := clientutils.Patch(types.MergePatchType, stored.DeepCopy(), data)
			if err != nil {
				b.Fatal(err)
			}
			_ = w.DeepCopy().DeepCopy()
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = patchedWork(stored, desired)
		}
	})
}

func benchWorks(n int) (stored, desired *workv1.ManifestWork) {
	manifests := func(gen int) []workv1.Manifest {
		var out []workv1.Manifest
		for i := range n {
			out = append(out, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(fmt.Sprintf(
				`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d","namespace":"hyperfleet-cluster","labels":{"hyperfleet.io/cluster-id":"019466a0-8f8e-7abc-9def-0123456789ab","hyperfleet.io/generation":"%d"}},"data":{"region":"us-east-1","version":"4.17.%d","replicas":"3","description":"a value of a few dozen bytes, as templates render them"}}`, i, gen, gen))}})
		}
		return out
	}
	meta := func(gen int) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "hyperfleet-cl-019466a0-8f8e-7abc-9def-0123456789ab-template", Namespace: "consumer-1",
			Labels:      map[string]string{"hyperfleet.io/adapter": "template", "hyperfleet.io/cluster-id": "019466a0-8f8e-7abc-9def-0123456789ab", "hyperfleet.io/resource-kind": "Cluster"},
			Annotations: map[string]string{"hyperfleet.io/generation": fmt.Sprint(gen), "hyperfleet.io/resource-href": "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab"}}
	}
	stored = &workv1.ManifestWork{ObjectMeta: meta(4), Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: manifests(4)}}}
	stored.UID, stored.Generation, stored.ResourceVersion = "2b701eaf-24b1-5267-a9f6-3e3c1eceb181", 4, "4"
	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		stored.Status.Conditions = append(stored.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue,
			ObservedGeneration: 4, Reason: "AppliedManifestWorkComplete", Message: "Apply manifest work complete"})
	}
	for i := range n {
		v := "4.17.4"
		stored.Status.ResourceStatus.Manifests = append(stored.Status.ResourceStatus.Manifests, workv1.ManifestCondition{
			ResourceMeta:    workv1.ManifestResourceMeta{Ordinal: int32(i), Version: "v1", Kind: "ConfigMap", Resource: "configmaps", Name: fmt.Sprintf("cm-%d", i), Namespace: "hyperfleet-cluster"},
			StatusFeedbacks: workv1.StatusFeedbackResult{Values: []workv1.FeedbackValue{{Name: "version", Value: workv1.FieldValue{Type: workv1.String, String: &v}}}},
			Conditions: []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "AppliedManifestComplete", Message: "Apply manifest complete"},
				{Type: "Available", Status: metav1.ConditionTrue, Reason: "ResourceAvailable", Message: "Resource is available"}},
		})
	}
	desired = &workv1.ManifestWork{ObjectMeta: meta(5), Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: manifests(5)}}}
	return stored, desired
}
