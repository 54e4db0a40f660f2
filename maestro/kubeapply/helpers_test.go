package kubeapply_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// env is a Delivery on the local kube-apiserver with its records in a
// namespace of the test's own.
type env struct {
	cfg       *rest.Config
	cs        kubernetes.Interface
	namespace string // of the records
	d         *kubeapply.Delivery
}

// ensureNamespace creates a namespace the manifests of a test use, unless
// it exists; it is left for the next run (it holds only what the works
// put there, and their deletion removes that).
func ensureNamespace(t testing.TB, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// newEnv starts a Delivery (options from mutate). At cleanup it deletes
// every work the test left and checks that they are all gone, records
// included, before it closes the delivery: a record left behind would keep
// its namespace Terminating.
func newEnv(t *testing.T, mutate func(*kubeapply.Options)) *env {
	t.Helper()
	cfg := kubetest.Require(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := kubetest.Namespace(t, cs)
	opts := kubeapply.Options{
		Namespace:    ns,
		FieldManager: "kubeapply-test",
		RetryInitial: 5 * time.Millisecond,
		RetryMax:     100 * time.Millisecond,
		Logger:       maestrotest.SlogLogger(t),
	}
	if mutate != nil {
		mutate(&opts)
	}
	d, err := kubeapply.New(testContext(t), cfg, opts)
	if err != nil {
		t.Fatalf("kubeapply.New: %v", err)
	}
	t.Cleanup(func() { deleteAllAndClose(t, cs, ns, d) })
	return &env{cfg: cfg, cs: cs, namespace: ns, d: d}
}

// deleteAllAndClose deletes every work whose record is in ns through d,
// waits for the records to go and closes d.
func deleteAllAndClose(t testing.TB, cs kubernetes.Interface, ns string, d *kubeapply.Delivery) {
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: kubeapply.LabelDeliveredBy})
	if err != nil {
		t.Errorf("listing work records: %v", err)
		return
	}
	for _, s := range list.Items {
		if err := d.Delete(ctx, s.Annotations[kubeapply.AnnotationConsumer], s.Annotations[kubeapply.AnnotationWorkName]); err != nil {
			t.Errorf("deleting work %s: %v", s.Name, err)
		}
	}
	for {
		list, err = cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: kubeapply.LabelDeliveredBy})
		if err == nil && len(list.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for _, s := range list.Items {
				t.Errorf("work record %s (%s/%s) still there %s after its deletion", s.Name,
					s.Annotations[kubeapply.AnnotationConsumer], s.Annotations[kubeapply.AnnotationWorkName], waitTimeout)
				s.Finalizers = nil
				_, _ = cs.CoreV1().Secrets(ns).Update(context.Background(), &s, metav1.UpdateOptions{})
			}
			return
		case <-time.After(20 * time.Millisecond): // polling interval of a bounded wait
		}
	}
}
