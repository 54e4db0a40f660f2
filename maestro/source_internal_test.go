package maestro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	workv1 "open-cluster-management.io/api/work/v1"
	clientutils "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

var workGR = schema.GroupResource{Group: "work.open-cluster-management.io", Resource: "manifestworks"}

// publishErr builds the StatusError the OCM source client returns for any
// failed publish (sdk-go clients/errors.NewPublishError).
func publishErr(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 500, Reason: "PublishError",
		Message: "Failed to publish resource w: " + msg,
	}}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"NotFound", apierrors.NewNotFound(workGR, "w"), true},
		{"AlreadyExists", apierrors.NewAlreadyExists(workGR, "w"), true},
		{"Invalid", apierrors.NewInvalid(schema.GroupKind{Group: workGR.Group, Kind: "ManifestWork"}, "w", nil), true},
		{"BadRequest", apierrors.NewBadRequest("no"), true},
		{"MethodNotSupported", apierrors.NewMethodNotSupported(workGR, "update"), true},
		// Credentials rotate: a refusal is retried (bounded by MAX_ATTEMPTS).
		{"Forbidden", apierrors.NewForbidden(workGR, "w", errors.New("no")), false},
		{"Unauthorized", apierrors.NewUnauthorized("no"), false},
		{"GRPCUnauthenticated", publishErr("rpc error: code = Unauthenticated desc = invalid token"), false},
		{"BundleRefused", publishErr("failed to update resource: maestro-8: the new manifest bundle in the resource is invalid, x"), true},
		{"VersionConflict", publishErr("failed to update resource: maestro-6: the resource version is not the latest, the latest version: 3"), false},
		{"NotConnected", publishErr("the cloudevents client is not ready"), false},
		{"ServiceUnavailable", apierrors.NewServiceUnavailable("down"), false},
		{"Internal", apierrors.NewInternalError(errors.New("boom")), false},
		{"Timeout", apierrors.NewTimeoutError("slow", 1), false},
		{"TooManyRequests", apierrors.NewTooManyRequests("slow down", 1), false},
		{"Network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{"Deadline", context.DeadlineExceeded, false},
		{"Unknown", errors.New("something"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(fmt.Errorf("doing it: %w", tc.err))
			if got := failure.IsPermanent(err); got != tc.permanent {
				t.Fatalf("IsPermanent = %v, want %v", got, tc.permanent)
			}
			if !errors.Is(err, tc.err) {
				t.Fatal("classification lost the cause")
			}
			auth := strings.Contains(tc.name, "Forbidden") || strings.Contains(tc.name, "Unauth")
			if got := errors.Is(err, ErrAuthentication); got != auth {
				t.Fatalf("errors.Is(err, ErrAuthentication) = %v, want %v (%v)", got, auth, err)
			}
			if auth && !strings.Contains(err.Error(), "authentication") {
				t.Fatalf("%q does not name authentication", err)
			}
		})
	}
	if classify(nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}

func TestMergePatchCarriesTheStoredVersion(t *testing.T) {
	raw := func(v string) workv1.Manifest {
		return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"v":"` + v + `"}}`)}}
	}
	stored := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{
		UID: "u", Generation: 7, ResourceVersion: "7",
		Labels:      map[string]string{"gone": "x", "kept": "y"},
		Annotations: map[string]string{"logging.open-cluster-management.io/t": "1", annotationCloudEventsResourceVersion: "3"},
	}}
	stored.Spec.Workload.Manifests = []workv1.Manifest{raw("1")}
	desired := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"kept": "y"}}}
	desired.Spec.Workload.Manifests = []workv1.Manifest{raw("2")}

	data, err := mergePatch(stored, desired)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Metadata struct {
			Generation      int64              `json:"generation"`
			ResourceVersion string             `json:"resourceVersion"`
			Labels          map[string]*string `json:"labels"`
			Annotations     map[string]*string `json:"annotations"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Generation != 7 || p.Metadata.ResourceVersion != "7" {
		t.Errorf("patch %s does not carry version 7", data)
	}
	if v, ok := p.Metadata.Labels["gone"]; !ok || v != nil {
		t.Errorf("patch %s does not remove the label no longer desired", data)
	}
	if _, ok := p.Metadata.Annotations["logging.open-cluster-management.io/t"]; ok {
		t.Errorf("patch %s touches the SDK's annotation", data)
	}
	if v, ok := p.Metadata.Annotations[annotationCloudEventsResourceVersion]; !ok || v != nil {
		t.Errorf("patch %s keeps the resource version annotation, which would pin it to version 3", data)
	}
	if p.Spec == nil {
		t.Errorf("patch %s does not change the spec", data)
	}
}

func TestOrphanOption(t *testing.T) {
	manifest := func(apiVersion, kind, ns, name string) workv1.Manifest {
		return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(fmt.Sprintf(
			`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q,"namespace":%q}}`, apiVersion, kind, name, ns))}}
	}
	nsM, cmA, cmB, depC := manifest("v1", "Namespace", "", "lz"), manifest("v1", "ConfigMap", "lz", "a"),
		manifest("v1", "ConfigMap", "lz", "b"), manifest("apps/v1", "Deployment", "lz", "c")
	meta := func(group, kind, resource, ns, name string) workv1.ManifestCondition {
		return workv1.ManifestCondition{ResourceMeta: workv1.ManifestResourceMeta{Group: group, Kind: kind, Resource: resource, Namespace: ns, Name: name}}
	}
	// stored holds the namespace, a, b and c as the agent reported them.
	stored := func(opt *workv1.DeleteOption, reported ...workv1.ManifestCondition) *workv1.ManifestWork {
		w := &workv1.ManifestWork{}
		w.Spec.Workload.Manifests = []workv1.Manifest{nsM, cmA, cmB, depC}
		w.Spec.DeleteOption = opt
		w.Status.ResourceStatus.Manifests = reported
		return w
	}
	allReported := []workv1.ManifestCondition{meta("", "Namespace", "namespaces", "", "lz"),
		meta("", "ConfigMap", "configmaps", "lz", "a"), meta("", "ConfigMap", "configmaps", "lz", "b"),
		meta("apps", "Deployment", "deployments", "lz", "c")}
	desired := func(ms ...workv1.Manifest) *workv1.ManifestWork {
		w := &workv1.ManifestWork{}
		w.Spec.Workload.Manifests = ms
		return w
	}
	foreground := &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}
	orphan := &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}

	for _, tc := range []struct {
		name    string
		stored  *workv1.ManifestWork
		desired *workv1.ManifestWork
		want    *workv1.DeleteOption
	}{
		{"keeps all, adds one", stored(foreground, allReported...),
			desired(nsM, cmA, cmB, manifest("apps/v1beta1", "Deployment", "lz", "c"), manifest("v1", "Secret", "lz", "s")), orphan},
		{"drops b", stored(nil, allReported...), desired(nsM, cmA, depC), &workv1.DeleteOption{
			PropagationPolicy: workv1.DeletePropagationPolicyTypeSelectivelyOrphan,
			SelectivelyOrphan: &workv1.SelectivelyOrphan{OrphaningRules: []workv1.OrphaningRule{
				{Resource: "namespaces", Name: "lz"}, {Resource: "configmaps", Namespace: "lz", Name: "a"},
				{Group: "apps", Resource: "deployments", Namespace: "lz", Name: "c"}}}}},
		{"drops b, resource of a kept one unknown", stored(foreground, allReported[0], allReported[2]), desired(nsM, cmA), orphan},
		{"keeps nothing", stored(foreground, allReported...), desired(manifest("v1", "ConfigMap", "lz", "z")), nil},
		{"orphans all already", stored(orphan, allReported...), desired(nsM), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := orphanOption(tc.stored, tc.desired); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("orphanOption = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// patchedWork builds directly what the OCM source client's Patch makes of
// mergePatch's patch applied to the stored work (sdk-go clients/utils.Patch,
// a JSON merge patch of the whole work). Random stored/desired pairs cover
// owned and foreign labels and annotations, the resource version
// annotation, the optional spec fields on either side and a stored status.
func TestPatchedWorkIsTheMergePatchApplied(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(keys ...string) map[string]string {
		var m map[string]string
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				if m == nil {
					m = map[string]string{}
				}
				m[k] = fmt.Sprint("v", rng.IntN(2))
			}
		}
		return m
	}
	manifests := func() []workv1.Manifest {
		var out []workv1.Manifest
		for i := range 1 + rng.IntN(3) {
			out = append(out, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(fmt.Sprintf(
				`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m%d","labels":{"x":"%d"}},"data":{"v":"%d"}}`, i, rng.IntN(2), rng.IntN(3)))}})
		}
		return out
	}
	spec := func() workv1.ManifestWorkSpec {
		s := workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: manifests()}}
		if rng.IntN(2) == 0 {
			s.DeleteOption = &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
		}
		if rng.IntN(2) == 0 {
			s.ManifestConfigs = []workv1.ManifestConfigOption{{
				ResourceIdentifier: workv1.ResourceIdentifier{Resource: "configmaps", Name: "m0"},
				FeedbackRules:      []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{{Name: "v", Path: ".data.v"}}}},
			}}
		}
		return s
	}
	keys := []string{"hyperfleet.io/a", "hyperfleet.io/b", "logging.open-cluster-management.io/t", annotationCloudEventsResourceVersion}
	for i := range 500 {
		stored := &workv1.ManifestWork{
			TypeMeta: metav1.TypeMeta{Kind: "ManifestWork", APIVersion: "work.open-cluster-management.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c", UID: "u", Generation: int64(1 + rng.IntN(9)),
				Labels: pick(keys[:3]...), Annotations: pick(keys...)},
			Spec: spec(),
		}
		stored.ResourceVersion = fmt.Sprint(stored.Generation)
		if rng.IntN(2) == 0 {
			stored.Status.Conditions = []metav1.Condition{{Type: workv1.WorkApplied, Status: metav1.ConditionTrue, ObservedGeneration: stored.Generation, Reason: "r"}}
		}
		desired := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c",
			Labels: pick(keys[:2]...), Annotations: pick(keys[:2]...)}, Spec: spec()}

		data, err := mergePatch(stored, desired)
		if err != nil {
			t.Fatal(err)
		}
		viaPatch, err := clientutils.Patch(types.MergePatchType, stored, data)
		if err != nil {
			t.Fatal(err)
		}
		want, got := jsonValue(t, viaPatch), jsonValue(t, patchedWork(stored, desired))
		if !reflect.DeepEqual(got, want) {
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			t.Fatalf("case %d: patchedWork\n%s\nwant (merge patch %s applied)\n%s", i, gb, data, wb)
		}
	}
}

func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
