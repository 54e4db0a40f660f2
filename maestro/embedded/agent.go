package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/workqueue"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

// AgentOptions configures an Agent.
type AgentOptions struct {
	// Delay is how long the agent takes to apply a change (or confirm a
	// deletion) before reporting it. Zero reports at once.
	Delay time.Duration
	// Fail, when set, is asked about every work the agent applies; an error
	// makes the work Applied=False and Degraded=True with its message, as a
	// refused manifest would on a real cluster. Tests use it to inject
	// failures.
	Fail func(*workv1.ManifestWork) error
	// Workers is how many works are applied at once. Default 4.
	Workers int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate reports the first option that cannot work.
func (o AgentOptions) Validate() error {
	switch {
	case o.Delay < 0:
		return fmt.Errorf("embedded agent options: Delay must not be negative, got %s", o.Delay)
	case o.Workers < 0:
		return fmt.Errorf("embedded agent options: Workers must not be negative, got %d", o.Workers)
	}
	return nil
}

// Agent stands in for the Maestro agent on every consumer's cluster. It
// receives each spec change of the Store's works and, after Delay, reports
// the work applied and available at that generation, with a status per
// manifest and status feedback for the manifests whose manifestConfigs ask
// for it; for a work being deleted it reports Deleted, which removes it.
//
// Nothing is applied anywhere: feedback values come from the manifest's own
// status when it has one, otherwise from a plausible status for its kind
// (a Deployment with all replicas ready, a Job complete, a Namespace
// active, a Ready condition for anything else with a status).
//
// It is part of the product's local default, not only of tests.
type Agent struct {
	store *Store
	opts  AgentOptions
	log   *slog.Logger
	queue workqueue.TypedDelayingInterface[workKey]

	runOnce sync.Once
}

// NewAgent returns an agent for s. It queues changes from now on and
// applies them once Run runs.
func NewAgent(s *Store, opts AgentOptions) (*Agent, error) {
	if s == nil {
		return nil, errors.New("embedded agent: nil store")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{
		store: s,
		opts:  opts,
		log:   opts.Logger,
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[workKey]{
			Name: "embedded-agent-" + s.SourceID(),
		}),
	}
	s.onChange(func(k workKey) { a.queue.AddAfter(k, a.opts.Delay) })
	return a, nil
}

// Run applies works until ctx ends. Starting, it looks at every work the
// store holds, as an agent does when it connects. Run works once per
// Agent; it returns nil.
func (a *Agent) Run(ctx context.Context) error {
	ran := false
	a.runOnce.Do(func() {
		ran = true
		for _, k := range a.store.keys() {
			a.queue.AddAfter(k, a.opts.Delay)
		}
		var wg sync.WaitGroup
		for range a.opts.Workers {
			wg.Go(func() {
				for {
					k, shutdown := a.queue.Get()
					if shutdown {
						return
					}
					a.process(k)
					a.queue.Done(k)
				}
			})
		}
		<-ctx.Done()
		a.queue.ShutDown()
		wg.Wait()
	})
	if !ran {
		return errors.New("embedded agent: Run called twice")
	}
	return nil
}

func (a *Agent) process(k workKey) {
	w, ok := a.store.snapshot(k)
	if !ok {
		return
	}
	if w.DeletionTimestamp != nil {
		if a.store.confirmDeleted(k) {
			a.log.Debug("embedded agent: work deleted", "consumer", k.namespace, "work", k.name)
		}
		return
	}
	var failure error
	if a.opts.Fail != nil {
		failure = a.opts.Fail(w)
	}
	status := statusFor(w, failure, metav1.Now())
	if a.store.reportStatus(k, w.Generation, status) {
		a.log.Debug("embedded agent: status reported", "consumer", k.namespace, "work", k.name,
			"generation", w.Generation, "failed", failure != nil)
	}
}

// statusFor is the status an agent reports for w at its generation.
func statusFor(w *workv1.ManifestWork, failure error, now metav1.Time) workv1.ManifestWorkStatus {
	gen := w.Generation
	status := workv1.ManifestWorkStatus{Conditions: append([]metav1.Condition(nil), w.Status.Conditions...)}
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now,
		})
	}
	if failure == nil {
		set(workv1.WorkApplied, metav1.ConditionTrue, maestro.ReasonAppliedComplete, "Apply manifest work complete")
		set(workv1.WorkAvailable, metav1.ConditionTrue, maestro.ReasonAvailable, "All resources are available")
		set(workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonCompleted, "All resources are applied")
		set(workv1.WorkDegraded, metav1.ConditionFalse, maestro.ReasonNotDegraded, "")
	} else {
		msg := failure.Error()
		set(workv1.WorkApplied, metav1.ConditionFalse, maestro.ReasonAppliedFailed, msg)
		// Resources applied by an earlier generation are still there.
		if !apimeta.IsStatusConditionTrue(w.Status.Conditions, workv1.WorkAvailable) {
			set(workv1.WorkAvailable, metav1.ConditionFalse, maestro.ReasonNotAvailable, "Resources are not available")
		} else {
			set(workv1.WorkAvailable, metav1.ConditionTrue, maestro.ReasonAvailable, "All resources are available")
		}
		set(workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonFailed, msg)
		set(workv1.WorkDegraded, metav1.ConditionTrue, maestro.ReasonDegraded, msg)
	}

	prev := map[int32]workv1.ManifestCondition{}
	for _, m := range w.Status.ResourceStatus.Manifests {
		prev[m.ResourceMeta.Ordinal] = m
	}
	for i, m := range w.Spec.Workload.Manifests {
		var obj unstructured.Unstructured
		if err := obj.UnmarshalJSON(m.Raw); err != nil {
			continue // Maestro validated it; nothing to report on garbage
		}
		mc := workv1.ManifestCondition{
			ResourceMeta: resourceMeta(int32(i), &obj),
			Conditions:   append([]metav1.Condition(nil), prev[int32(i)].Conditions...),
		}
		mset := func(t string, s metav1.ConditionStatus, reason, msg string) {
			apimeta.SetStatusCondition(&mc.Conditions, metav1.Condition{
				Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now,
			})
		}
		if failure == nil {
			mset(workv1.ManifestApplied, metav1.ConditionTrue, "AppliedManifestComplete", "Apply manifest complete")
			mset(workv1.ManifestAvailable, metav1.ConditionTrue, "ResourceAvailable", "Resource is available")
			var synced metav1.Condition
			mc.StatusFeedbacks, synced = statusFeedback(w, &obj, mc.ResourceMeta)
			mset(synced.Type, synced.Status, synced.Reason, synced.Message)
		} else {
			mset(workv1.ManifestApplied, metav1.ConditionFalse, "AppliedManifestFailed", failure.Error())
			mc.StatusFeedbacks = prev[int32(i)].StatusFeedbacks
		}
		status.ResourceStatus.Manifests = append(status.ResourceStatus.Manifests, mc)
	}
	return status
}

func resourceMeta(ordinal int32, obj *unstructured.Unstructured) workv1.ManifestResourceMeta {
	gvk := obj.GroupVersionKind()
	plural, _ := apimeta.UnsafeGuessKindToResource(gvk)
	return workv1.ManifestResourceMeta{
		Ordinal:   ordinal,
		Group:     gvk.Group,
		Version:   gvk.Version,
		Kind:      gvk.Kind,
		Resource:  plural.Resource,
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
	}
}

// statusFeedback evaluates the feedback rules naming the manifest against
// it as it would look live on the cluster (with a simulated status when it
// carries none), the way Maestro's real agent reads status feedback.
func statusFeedback(w *workv1.ManifestWork, manifest *unstructured.Unstructured, m workv1.ManifestResourceMeta) (workv1.StatusFeedbackResult, metav1.Condition) {
	rules := feedback.Rules(w.Spec.ManifestConfigs, feedback.Resource{
		Group: m.Group, Resource: m.Resource, Name: m.Name, Namespace: m.Namespace})
	live := manifest.DeepCopy()
	if len(rules) != 0 {
		if st, ok := live.Object["status"].(map[string]any); !ok || len(st) == 0 {
			if synth := simulatedStatus(live); synth != nil {
				live.Object["status"] = synth
			}
		}
	}
	result, synced, _ := feedback.Evaluate(live.Object, live.GroupVersionKind(), rules)
	return result, synced
}

// statusless kinds have no status on a real cluster.
var statusless = map[string]bool{
	"ConfigMap": true, "Secret": true, "ServiceAccount": true, "Role": true, "RoleBinding": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "LimitRange": true, "PriorityClass": true,
	"StorageClass": true,
}

// simulatedStatus is a plausible settled status for obj's kind, or nil for
// kinds without one.
func simulatedStatus(obj *unstructured.Unstructured) map[string]any {
	kind := obj.GetKind()
	if statusless[kind] {
		return nil
	}
	ready := func(t string) []any {
		return []any{map[string]any{
			"type": t, "status": "True", "reason": "Simulated",
			"message": "reported by the embedded agent", "lastTransitionTime": "1970-01-01T00:00:00Z",
		}}
	}
	switch kind {
	case "Namespace":
		return map[string]any{"phase": "Active"}
	case "Deployment", "StatefulSet", "ReplicaSet":
		replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if !found {
			replicas = 1
		}
		return map[string]any{
			"observedGeneration": int64(1), "replicas": replicas, "readyReplicas": replicas,
			"availableReplicas": replicas, "updatedReplicas": replicas, "conditions": ready("Available"),
		}
	case "DaemonSet":
		return map[string]any{"desiredNumberScheduled": int64(1), "numberReady": int64(1), "numberAvailable": int64(1)}
	case "Job":
		return map[string]any{"succeeded": int64(1), "active": int64(0), "conditions": ready("Complete")}
	case "Pod":
		return map[string]any{"phase": "Running", "conditions": ready("Ready")}
	case "PersistentVolumeClaim":
		return map[string]any{"phase": "Bound"}
	case "OAuth": // OpenShift's cluster configuration: its status is empty
		return map[string]any{}
	case "ResourceQuota":
		hard, _, _ := unstructured.NestedMap(obj.Object, "spec", "hard")
		used := make(map[string]any, len(hard))
		for k := range hard {
			used[k] = "0"
		}
		return map[string]any{"hard": hard, "used": used}
	case "NodePool": // HyperShift's: its nodes joined, at the release's version
		replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if !found {
			replicas, _, _ = unstructured.NestedInt64(obj.Object, "spec", "autoScaling", "min")
		}
		image, _, _ := unstructured.NestedString(obj.Object, "spec", "release", "image")
		return map[string]any{"replicas": replicas, "version": releaseVersion(image), "conditions": ready("Ready")}
	case "IngressController": // OpenShift's: admitted on its domain, every replica up
		domain, _, _ := unstructured.NestedString(obj.Object, "spec", "domain")
		replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if !found {
			replicas = 2
		}
		return map[string]any{"domain": domain, "availableReplicas": replicas, "conditions": ready("Available")}
	default:
		return map[string]any{"conditions": ready("Ready")}
	}
}

// releaseVersion is the version a release image names in its tag
// (…:v4.14.0 or …:4.14.0-x86_64 give 4.14.0), or "" without one.
func releaseVersion(image string) string {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	tag := strings.TrimPrefix(image[i+1:], "v")
	if j := strings.IndexByte(tag, '-'); j >= 0 {
		tag = tag[:j]
	}
	return tag
}
