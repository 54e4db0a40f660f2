package remote

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
	sourceclient "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/source/client"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
)

// capturingCE stands for the CloudEvents source client under the OCM
// source client: it keeps what is published and answers with err.
type capturingCE struct {
	eventType types.CloudEventsType
	work      *workv1.ManifestWork
	err       error
}

func (c *capturingCE) Publish(_ context.Context, et types.CloudEventsType, w *workv1.ManifestWork) error {
	c.eventType, c.work = et, w.DeepCopy()
	return c.err
}
func (c *capturingCE) Resync(context.Context, string) error                                        { return nil }
func (c *capturingCE) Subscribe(context.Context, ...generic.ResourceHandler[*workv1.ManifestWork]) {}
func (c *capturingCE) SubscribedChan() <-chan struct{}                                             { return nil }

// updateVersioned publishes what the OCM source client's Patch publishes
// for the same patched work: the same event type, version, generation,
// annotations and spec, and on a refused publish the same StatusError (a
// stale version must stay a Conflict for Apply to re-read). The patch
// content itself is maestro's TestPatchedWorkIsTheMergePatchApplied.
func TestUpdateVersionedPublishesWhatPatchDoes(t *testing.T) {
	manifest := workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"v":"1"}}`)}}
	base := func() *workv1.ManifestWork {
		w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c", UID: "u",
			Labels: map[string]string{"hyperfleet.io/adapter": "namespace"}}}
		w.Spec.Workload.Manifests = []workv1.Manifest{manifest}
		return w
	}
	for _, tc := range []struct {
		name   string
		mutate func(*workv1.ManifestWork)
		err    error
	}{
		{"version from the work", func(w *workv1.ManifestWork) { w.Generation, w.ResourceVersion = 7, "7" }, nil},
		{"version from the annotation", func(w *workv1.ManifestWork) {
			w.Generation, w.ResourceVersion = 7, "7"
			w.Annotations = map[string]string{common.CloudEventsResourceVersionAnnotationKey: "3"}
		}, nil},
		{"no version", func(*workv1.ManifestWork) {}, nil},
		{"generation without resource version", func(w *workv1.ManifestWork) { w.Generation = 4 }, nil},
		{"invalid", func(w *workv1.ManifestWork) { w.Generation = 2; w.Namespace = "" }, nil},
		{"bad annotation", func(w *workv1.ManifestWork) {
			w.Annotations = map[string]string{common.CloudEventsResourceVersionAnnotationKey: "x"}
		}, nil},
		{"stale version refused", func(w *workv1.ManifestWork) { w.Generation, w.ResourceVersion = 2, "2" },
			errors.New("failed to update resource: maestro-6: the resource version is not the latest, the latest version: 3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := base()
			tc.mutate(w)

			viaPatch := &capturingCE{err: tc.err}
			client := sourceclient.NewManifestWorkSourceClient("src", storeOf{w}, viaPatch)
			client.SetNamespace(w.Namespace)
			// An empty merge patch on the stored work: what Patch publishes
			// once the patch is applied.
			wantWork, wantErr := client.Patch(context.Background(), w.Name, kubetypes.MergePatchType, []byte(`{}`), metav1.PatchOptions{})

			direct := &capturingCE{err: tc.err}
			gotWork, gotErr := updateVersioned(context.Background(), direct, w)

			// Same class (code, reason); the message too, but for the OCM
			// client's doubled "Internal error occurred: " on a bad
			// version annotation.
			got, want := errorStatus(gotErr), errorStatus(wantErr)
			if got.Code != want.Code || got.Reason != want.Reason || !strings.HasSuffix(want.Message, got.Message) {
				t.Fatalf("error %v, want %v", gotErr, wantErr)
			}
			if tc.err != nil && !apierrors.IsConflict(gotErr) && errorStatus(gotErr).Reason == "" {
				t.Fatalf("a refused publish is not a StatusError: %v", gotErr)
			}
			if direct.eventType != viaPatch.eventType {
				t.Errorf("event type %v, want %v", direct.eventType, viaPatch.eventType)
			}
			for _, pair := range [][2]any{{direct.work, viaPatch.work}, {gotWork, wantWork}} {
				if got, want := asJSON(t, pair[0]), asJSON(t, pair[1]); got != want {
					t.Errorf("published/returned\n%s\nwant\n%s", got, want)
				}
			}
		})
	}
}

// storeOf is a store holding one work.
type storeOf struct{ work *workv1.ManifestWork }

func (s storeOf) Get(context.Context, string, string) (*workv1.ManifestWork, bool, error) {
	return s.work.DeepCopy(), true, nil
}
func (s storeOf) GetWatcher(context.Context, string, metav1.ListOptions) (watch.Interface, error) {
	return nil, errNoWatch
}
func (s storeOf) HandleReceivedResource(context.Context, *workv1.ManifestWork) error { return nil }
func (s storeOf) Add(runtime.Object) error                                           { return nil }
func (s storeOf) Update(runtime.Object) error                                        { return nil }
func (s storeOf) Delete(runtime.Object) error                                        { return nil }
func (s storeOf) HasInitiated() bool                                                 { return true }
func (s storeOf) List(context.Context, string, metav1.ListOptions) (*store.ResourceList[*workv1.ManifestWork], error) {
	return nil, errNoWatch
}
func (s storeOf) ListAll(context.Context) ([]*workv1.ManifestWork, error) { return nil, errNoWatch }

func errorStatus(err error) metav1.Status {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se.ErrStatus
	}
	if err != nil {
		return metav1.Status{Message: err.Error()}
	}
	return metav1.Status{}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
