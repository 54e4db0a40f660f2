package jobs

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
)

// TestRealAgentJobDelivery is TestIntegrationLifecycle with Maestro's real
// agent on the consumer instead of the simulated one: the Jobs' maestro-cli
// (run by the node stand-in, as no kubelet runs here) delivers the
// namespace adapter's work through the local Maestro to the real agent,
// which applies it to the kube-apiserver. The Namespace and its ConfigMap
// must be there after the create Job, changed after the update Job, and
// gone after the delete Job, each reported as the pipeline reports it.
func TestRealAgentJobDelivery(t *testing.T) {
	e := newITEnv(t, false)
	agenttest.Start(t, e.consumer)
	d := e.delivery(t, func(o *Options) { o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:test" })
	n := startNode(t, e.cs, e.ns, nil)
	h := newHarness(t, e, d)
	clusterID := "0194" + randomSuffix(t)
	ns := handlers.DNSLabel(clusterID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	configMapGeneration := func() string {
		t.Helper()
		if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Fatalf("the Namespace %s the Job's work holds is not in the kube-apiserver: %v", ns, err)
		}
		cm, err := e.cs.CoreV1().ConfigMaps(ns).Get(ctx, handlers.ClusterInfoConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ConfigMap %s/%s: %v", ns, handlers.ClusterInfoConfigMap, err)
		}
		if cm.Data["cluster-id"] != clusterID {
			t.Errorf("ConfigMap %s/%s data %v, want cluster-id %s", ns, cm.Name, cm.Data, clusterID)
		}
		return cm.Data["generation"]
	}

	start := time.Now()
	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 1, false)), 1)
	t.Logf("create through a maestro-cli Job and the real agent: %s", time.Since(start).Round(time.Millisecond))
	reports := h.sink.reports(t)
	requireReport(t, "generation 1", reports[len(reports)-1], map[string]string{
		hyperfleet.ConditionApplied: "True", hyperfleet.ConditionAvailable: "True", hyperfleet.ConditionHealth: "True",
	})
	if g := configMapGeneration(); g != "1" {
		t.Errorf("after the create Job the ConfigMap says generation %q, want 1", g)
	}

	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 2, false)), 1)
	reports = h.sink.reports(t)
	requireReport(t, "generation 2", reports[len(reports)-1], map[string]string{
		hyperfleet.ConditionApplied: "True", hyperfleet.ConditionAvailable: "True", hyperfleet.ConditionHealth: "True",
	})
	if g := configMapGeneration(); g != "2" {
		t.Errorf("after the update Job the ConfigMap says generation %q, want 2", g)
	}

	start = time.Now()
	requireSettled(t, h.run(t, clusterEvent(t, clusterID, 3, true)), 1)
	t.Logf("delete through a maestro-cli Job and the real agent: %s", time.Since(start).Round(time.Millisecond))
	reports = h.sink.reports(t)
	requireReport(t, "deleting", reports[len(reports)-1], map[string]string{
		hyperfleet.ConditionFinalized: "True", hyperfleet.ConditionHealth: "True",
	})
	// The agent confirms the deletion once the Namespace is gone.
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Namespace %s after the delete Job: err %v, want NotFound", ns, err)
	}
	if runs := n.history(); len(runs) != 3 {
		t.Errorf("the node ran %d Jobs, want 3 (apply, apply, delete)", len(runs))
	}
}
