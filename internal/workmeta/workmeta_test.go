package workmeta

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"
)

func TestResourceGeneration(t *testing.T) {
	work := func(ann map[string]string) *workv1.ManifestWork {
		return &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Annotations: ann}}
	}
	for _, tc := range []struct {
		name string
		w    *workv1.ManifestWork
		gen  int64
		ok   bool
	}{
		{"no work", nil, 0, false},
		{"no annotation", work(nil), 0, false},
		{"not a number", work(map[string]string{AnnotationGeneration: "x"}), 0, false},
		{"a generation", work(map[string]string{AnnotationGeneration: "7"}), 7, true},
	} {
		if gen, ok := ResourceGeneration(tc.w); gen != tc.gen || ok != tc.ok {
			t.Errorf("%s: ResourceGeneration = %d, %v; want %d, %v", tc.name, gen, ok, tc.gen, tc.ok)
		}
	}
}
