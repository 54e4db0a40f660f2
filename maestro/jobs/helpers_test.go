package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cliDir != "" {
		_ = os.RemoveAll(cliDir)
	}
	os.Exit(code)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// baseOptions are the options of the unit tests (fake clientset).
func baseOptions(t testing.TB) Options {
	return Options{
		Namespace:      "hyperfleet-system",
		ServiceAccount: "maestro-cli",
		Maestro: MaestroOptions{
			GRPCEndpoint: "maestro-grpc.maestro:8090",
			HTTPEndpoint: "http://maestro.maestro:8000",
			SourceID:     "hyperfleet-adapter-namespace",
			Insecure:     true, // the local Maestro serves plaintext
		},
		Logger: maestrotest.SlogLogger(t),
	}
}

// newFake builds a Delivery on client-go's fake clientset. The fake stands
// in for the API server where only the delivery's own logic is under test;
// it does not default Jobs (no selector, no pod labels), set UIDs or
// timestamps, or split status from spec, so nothing here relies on those
// (the integration tests run against a real kube-apiserver).
func newFake(t testing.TB, mutate func(*Options), objs ...runtime.Object) (*Delivery, *fake.Clientset) {
	t.Helper()
	cs := newFakeClientset(objs...)
	opts := baseOptions(t)
	if mutate != nil {
		mutate(&opts)
	}
	d, err := New(testContext(t), cs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(d.Close)
	return d, cs
}

// newFakeClientset is client-go's fake with one addition: it answers
// SelfSubjectAccessReviews "allowed", as a server would for an adapter
// whose Role grants what it needs (the fake's own answer echoes the request,
// which reads as denied).
func newFakeClientset(objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		review.Status.Allowed = true
		return true, review, nil
	})
	return cs
}

// readSample reads a copy of a contract sample (CONTRACTS.md samples/).
func readSample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// namespaceWork is what the namespace adapter builds for the contract's
// sample cluster at generation gen.
func namespaceWork(t testing.TB, gen int64) *workv1.ManifestWork {
	t.Helper()
	res, err := hyperfleet.ParseResource([]byte(readSample(t, "cluster-get-response.json")), "sample cluster")
	if err != nil {
		t.Fatal(err)
	}
	res.Generation = gen
	h, err := handlers.New(handlers.Config{Type: handlers.TypeNamespace})
	if err != nil {
		t.Fatal(err)
	}
	works, err := h.Build(handlers.Target{Resource: res, Cluster: res})
	if err != nil || len(works) != 1 {
		t.Fatalf("namespace handler built %d works, err %v; want 1", len(works), err)
	}
	if got := works[0].Annotations[workmeta.AnnotationGeneration]; got != strconv.FormatInt(gen, 10) {
		t.Fatalf("work carries generation %q, want %d", got, gen)
	}
	return works[0]
}

// onlyJob returns the one Job of op for the work, failing otherwise.
func onlyJob(t testing.TB, cs kubernetes.Interface, ns string, w *workv1.ManifestWork, op string) *batchv1.Job {
	t.Helper()
	jobs := listJobs(t, cs, ns, w, op)
	if len(jobs) != 1 {
		t.Fatalf("%d %s Jobs for work %s/%s, want 1", len(jobs), op, w.Namespace, w.Name)
	}
	return &jobs[0]
}

func listJobs(t testing.TB, cs kubernetes.Interface, ns string, w *workv1.ManifestWork, op string) []batchv1.Job {
	t.Helper()
	sel := LabelWork + "=" + workLabel(w.Namespace, w.Name) + "," + LabelOperation + "=" + op
	list, err := cs.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// Job statuses as the Job controller and the status-reporter write them.

func finished(typ batchv1.JobConditionType, reason, msg string) []batchv1.JobCondition {
	now := metav1.Now()
	lead := batchv1.JobSuccessCriteriaMet
	if typ == batchv1.JobFailed {
		lead = batchv1.JobFailureTarget
	}
	return []batchv1.JobCondition{
		{Type: lead, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
		{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
	}
}

func reporterCondition(status corev1.ConditionStatus, reason, msg string) batchv1.JobCondition {
	now := metav1.Now()
	return batchv1.JobCondition{Type: "Available", Status: status, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
}

// updateJobStatus writes the Job's status through the status subresource,
// as the Job controller and the status-reporter do.
func updateJobStatus(t testing.TB, cs kubernetes.Interface, job *batchv1.Job, mutate func(*batchv1.JobStatus)) *batchv1.Job {
	t.Helper()
	out, err := setJobStatus(cs, job, mutate)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setJobStatus is updateJobStatus for goroutines other than the test's.
func setJobStatus(cs kubernetes.Interface, job *batchv1.Job, mutate func(*batchv1.JobStatus)) (*batchv1.Job, error) {
	ctx := context.Background()
	cur, err := cs.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	mutate(&cur.Status)
	out, err := cs.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update status of Job %s: %w", job.Name, err)
	}
	return out, nil
}

// jobPod is a pod of job as the Job controller creates it and the kubelet
// reports it, with the maestro-cli container in state.
func jobPod(job *batchv1.Job, state corev1.ContainerState) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-x7k2p", Namespace: job.Namespace,
			Labels: map[string]string{LabelComponent: ComponentValue, batchv1.JobNameLabel: job.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptrTo(true),
			}},
			CreationTimestamp: metav1.Now(),
		},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: ContainerCLI, State: state}}},
	}
}

func ptrTo[T any](v T) *T { return &v }

// nextEvent waits for the next watch event about the work.
func nextEvent(t testing.TB, ch <-chan maestro.WorkEvent, consumer, name string) maestro.WorkEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Work != nil && ev.Work.Namespace == consumer && ev.Work.Name == name {
				return ev
			}
		case <-deadline:
			t.Fatalf("no watch event for %s/%s within %s", consumer, name, waitTimeout)
		}
	}
}
