package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// deadline bounds every wait in these tests.
const deadline = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it returns true or the deadline passes.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the deadline (last error: %v)", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestRequireSkipsWithoutKubeconfig(t *testing.T) {
	t.Setenv(EnvKubeconfig, "")
	t.Setenv(EnvRequireIntegration, "0")
	var sub testing.TB
	t.Run("require", func(t *testing.T) {
		sub = t
		Require(t)
		t.Error("Require returned without a kubeconfig")
	})
	if !sub.Skipped() {
		t.Fatal("Require did not skip the test")
	}
}

func TestConfigRefusesRemoteServers(t *testing.T) {
	for server, wantErr := range map[string]bool{
		"https://127.0.0.1:16443":     false,
		"https://localhost:6443":      false,
		"https://[::1]:6443":          false,
		"https://api.example.com:443": true,
		"https://10.0.0.1":            true,
	} {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
			"\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
		if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Config(path)
		if (err != nil) != wantErr {
			t.Errorf("Config(server %s): error %v, want error: %v", server, err, wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Config(server %s): error %q does not say why", server, err)
		}
	}
}

func TestServerVersion(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(Require(t))
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	// kube.sh sets the version with -ldflags; without them a module build
	// reports v0.0.0-master.
	if v.Major != "1" || !strings.HasPrefix(v.GitVersion, "v1.") || strings.Contains(v.GitVersion, "master") {
		t.Fatalf("server version %+v, want a v1.x release", v)
	}
}

// TestJobLifecycle does what the Job delivery path and the status-reporter do
// against a real API server: a ConfigMap and a Job in a namespace, listed, and
// a condition written through the status subresource, seen by an informer.
func TestJobLifecycle(t *testing.T) {
	ctx := testContext(t)
	cs := kubernetes.NewForConfigOrDie(Require(t))
	ns := Namespace(t, cs)

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "maestro-cli-input", Labels: map[string]string{"hyperfleet.io/cluster-id": "c1"}},
		Data:       map[string]string{"manifestwork.json": `{"kind":"ManifestWork"}`},
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ConfigMap: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create of the ConfigMap: error %v, want AlreadyExists", err)
	}

	// The informer starts before the Job exists, as a delivery's watch would.
	// Its first list also exercises the watch-list fallback: client-go asks for
	// a watch stream, which the server refuses on an etcd without progress
	// notifications (Debian's 3.4), and the reflector lists instead.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	jobInformer := factory.Batch().V1().Jobs()
	sawCondition := make(chan *batchv1.Job, 1)
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			job := obj.(*batchv1.Job)
			for _, c := range job.Status.Conditions {
				if c.Type == "Available" {
					select {
					case sawCondition <- job:
					default:
					}
				}
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); factory.Shutdown() })
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "maestro-cli-c1", Labels: map[string]string{"hyperfleet.io/cluster-id": "c1"}},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: ptr.To[int64](600),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:      corev1.RestartPolicyNever,
				ServiceAccountName: "maestro-cli",
				Volumes:            []corev1.Volume{{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				Containers: []corev1.Container{
					{Name: "maestro-cli", Image: "quay.io/example/maestro-cli:test", Args: []string{"apply"},
						VolumeMounts: []corev1.VolumeMount{{Name: "results", MountPath: "/results"}}},
					{Name: "status-reporter", Image: "quay.io/example/status-reporter:test",
						VolumeMounts: []corev1.VolumeMount{{Name: "results", MountPath: "/results"}}},
				},
			}},
		},
	}
	created, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Job: %v", err)
	}
	// Server-side defaulting: what a fake clientset would not do.
	if created.Spec.Selector == nil || created.Spec.Template.Labels["batch.kubernetes.io/job-name"] != job.Name {
		t.Fatalf("created Job lacks the generated selector and pod labels: selector %v, labels %v",
			created.Spec.Selector, created.Spec.Template.Labels)
	}
	if ptr.Deref(created.Spec.Completions, 0) != 1 || ptr.Deref(created.Spec.CompletionMode, "") != batchv1.NonIndexedCompletion {
		t.Fatalf("created Job not defaulted: completions %v, completionMode %v", created.Spec.Completions, created.Spec.CompletionMode)
	}

	sel := labels.SelectorFromSet(labels.Set{"hyperfleet.io/cluster-id": "c1"}).String()
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(jobs.Items) != 1 || jobs.Items[0].UID != created.UID {
		t.Fatalf("list Jobs %s: %d items, err %v; want the created Job", sel, len(jobs.Items), err)
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("list ConfigMaps %s: %d items, err %v; want 1", sel, len(cms.Items), err)
	}

	// A plain update does not write status (the status subresource owns it).
	plain := created.DeepCopy()
	plain.Status.Conditions = []batchv1.JobCondition{{Type: "Available", Status: corev1.ConditionTrue}}
	afterPlain, err := cs.BatchV1().Jobs(ns).Update(ctx, plain, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update Job: %v", err)
	}
	if len(afterPlain.Status.Conditions) != 0 {
		t.Fatalf("a plain update wrote status conditions: %+v", afterPlain.Status.Conditions)
	}

	// What the status-reporter writes (contracts sample
	// status-reporter-job-status-written.json).
	withStatus := afterPlain.DeepCopy()
	withStatus.Status.Conditions = append(withStatus.Status.Conditions, batchv1.JobCondition{
		Type:               "Available",
		Status:             corev1.ConditionFalse,
		Reason:             "MissingPermissions",
		Message:            "Service account lacks required IAM permissions",
		LastTransitionTime: metav1.Now(),
		LastProbeTime:      metav1.Now(),
	})
	updated, err := cs.BatchV1().Jobs(ns).UpdateStatus(ctx, withStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update Job status: %v", err)
	}
	if updated.Generation != afterPlain.Generation {
		t.Errorf("a status update changed the generation: %d -> %d", afterPlain.Generation, updated.Generation)
	}
	// A stale write conflicts, as it would for two status writers.
	if _, err := cs.BatchV1().Jobs(ns).UpdateStatus(ctx, withStatus, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("status update with a stale resourceVersion: error %v, want Conflict", err)
	}

	select {
	case seen := <-sawCondition:
		c := seen.Status.Conditions[len(seen.Status.Conditions)-1]
		if c.Status != corev1.ConditionFalse || c.Reason != "MissingPermissions" {
			t.Fatalf("informer saw condition %+v, want Available=False MissingPermissions", c)
		}
	case <-ctx.Done():
		t.Fatal("the informer did not see the status condition within the deadline")
	}
}

// TestServerSideDryRun checks manifests the way deployment checks will:
// validated and defaulted by the server, stored nowhere.
func TestServerSideDryRun(t *testing.T) {
	ctx := testContext(t)
	cs := kubernetes.NewForConfigOrDie(Require(t))
	ns := Namespace(t, cs)

	podLabels := map[string]string{"app": "maestro-adapter"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "maestro-adapter"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "adapter", Image: "quay.io/example/maestro-adapter:test"},
				}},
			},
		},
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	got, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, dry)
	if err != nil {
		t.Fatalf("dry-run create Deployment: %v", err)
	}
	if got.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ptr.Deref(got.Spec.RevisionHistoryLimit, 0) != 10 {
		t.Fatalf("dry-run result not defaulted by the server: strategy %q, revisionHistoryLimit %v",
			got.Spec.Strategy.Type, got.Spec.RevisionHistoryLimit)
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, dep.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after a dry-run create: error %v, want NotFound", err)
	}

	bad := dep.DeepCopy()
	bad.Spec.Template.Labels = map[string]string{"app": "something-else"}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, bad, dry)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "selector") {
		t.Fatalf("dry-run create of a Deployment whose selector does not match its pods: error %v, want Invalid about the selector", err)
	}
}

// TestRBACEnforced shows that RBAC manifests are meaningful here: a service
// account may create Jobs only once a Role grants it.
func TestRBACEnforced(t *testing.T) {
	ctx := testContext(t)
	cfg := Require(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := Namespace(t, cs)

	asSA := rest.CopyConfig(cfg)
	asSA.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":maestro-cli",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	saClient := kubernetes.NewForConfigOrDie(asSA)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "example"}},
		}}},
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := saClient.BatchV1().Jobs(ns).Create(ctx, job, dry); !apierrors.IsForbidden(err) {
		t.Fatalf("create Job as a service account without a Role: error %v, want Forbidden", err)
	}

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "job-creator"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "job-creator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "maestro-cli", Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding: %v", err)
	}
	// The authorizer reads RBAC objects from a cache fed by a watch, so the
	// grant takes effect shortly after the write, not at once.
	eventually(t, ctx, "the RoleBinding takes effect", func() (bool, error) {
		_, err := saClient.BatchV1().Jobs(ns).Create(ctx, job, dry)
		return err == nil, err
	})
	// The Role grants create only.
	if err := saClient.BatchV1().Jobs(ns).Delete(ctx, job.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete Job as the service account: error %v, want Forbidden", err)
	}
}
