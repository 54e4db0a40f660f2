package kubeapply_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
)

// The delivery conformance suite against the local kube-apiserver: every
// apply is a real server-side apply, every status comes from informers on
// the real objects.
func TestConformance(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(kubetest.Require(t))
	ensureNamespace(t, cs, "conformance") // the suite's manifests live there
	for _, propagation := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationForeground} {
		t.Run(string(propagation), func(t *testing.T) {
			deliverytest.Run(t, func(t *testing.T) (maestro.Delivery, deliverytest.Env) {
				e := newEnv(t, func(o *kubeapply.Options) { o.DeletePropagation = propagation })
				return e.d, deliverytest.Env{Consumers: []string{"cluster-a", "cluster-b"}, Timeout: 10 * time.Second}
			})
		})
	}
}
