// The simulated agent: its options, start and stop, and the loop that
// applies received works and reports on them (agent_status.go builds what
// it reports).

package maestrotest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	clientutils "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/agent/codec"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"
)

// Reasons the simulated agent puts on the conditions it reports.
const (
	ReasonApplied     = workv1.AppliedManifestComplete // "AppliedManifestComplete" (per manifest)
	ReasonWorkApplied = "AppliedManifestWorkComplete"
	ReasonApplyFailed = workv1.AppliedManifestFailed // "AppliedManifestFailed"
	ReasonAvailable   = "ResourcesAvailable"
	ReasonUnavailable = "ResourcesNotAvailable"
	ReasonDegraded    = "SimulatedDegradation"
)

// AgentOptions shapes how the simulated agent behaves.
type AgentOptions struct {
	// Delay is how long the agent waits after it receives a work (or a new
	// generation of it, or its deletion) before it reports. Zero reports at once.
	Delay time.Duration

	// Fail, when set, is asked about every work before the agent reports on it
	// (it gets a copy). A nil result means success: Applied, Available True.
	// An error makes the agent report Applied=False and Available=False with
	// the error's message, as when applying failed. An error wrapping
	// ErrDegraded (see Degraded) instead reports Applied and Available True
	// and Degraded=True with the message.
	//
	// The agent asks again whenever the server sends the work again (a new
	// generation, a resync) and on Reconcile, so a test can flip the answer.
	Fail func(work *workv1.ManifestWork) error

	// Status, when set, supplies the `.status` of a manifest as the agent would
	// read it from the cluster. Status feedback rules are evaluated, as the
	// real agent evaluates them, against the whole object: the manifest with
	// this status. Returning nil falls back to the manifest's own status, then
	// to a plausible synthesized one (e.g. a Deployment with all replicas
	// ready, a Job that has completed); kinds that have no status on a real
	// cluster (ConfigMap, Secret, RBAC objects, ...) get none.
	Status func(work *workv1.ManifestWork, manifest *unstructured.Unstructured) map[string]interface{}

	// Logf receives the agent's diagnostics. Defaults to klog.
	Logf func(format string, args ...interface{})
}

// ErrDegraded marks a Fail error as a degradation rather than a failure to apply.
var ErrDegraded = errors.New("degraded")

// Degraded returns an error for AgentOptions.Fail that makes the agent report
// the work applied and available but Degraded=True with the given message.
// errors.Is(err, ErrDegraded) is true for it.
func Degraded(message string) error {
	return degradedError(message)
}

type degradedError string

func (e degradedError) Error() string        { return string(e) }
func (e degradedError) Is(target error) bool { return target == ErrDegraded }

// Agent stands in for a Maestro agent on one consumer: it receives the
// consumer's ManifestWorks over Maestro's gRPC broker with the OCM SDK's
// cloudevents work agent client (as Maestro's own integration tests do) and
// publishes status as a real agent would, without applying anything anywhere.
//
// The agent knows works by the names Maestro gives them on the agent side:
// the resource ID (see WorkID), not the name the source chose. Labels and
// annotations are passed through, so Fail can also select works by label.
type Agent struct {
	consumer string
	opts     AgentOptions

	cancel context.CancelFunc
	dialer *grpcoptions.GRPCDialer
	store  *agentStore
	client workv1client.ManifestWorkInterface
	queue  workqueue.TypedRateLimitingInterface[string]
	wg     sync.WaitGroup
	stop   sync.Once

	mu       sync.Mutex
	reported map[string]string // fingerprint of the last status reported per work name

	// cluster is the target cluster as far as deletion is concerned (which
	// objects exist and which works own them; see cluster.go).
	cluster *cluster
}

// StartAgent connects a simulated agent for consumerName to the gRPC broker
// at grpcBrokerEndpoint (host:port) and starts processing works. The
// connection is made in the background and retried, so a wrong endpoint shows
// up as works never getting status, not as an error here. On (re)connection
// the agent asks the server to resend the consumer's works, so works created
// before it started, or while it was disconnected, are picked up.
func StartAgent(ctx context.Context, grpcBrokerEndpoint, consumerName string, opts AgentOptions) (*Agent, error) {
	if grpcBrokerEndpoint == "" {
		return nil, fmt.Errorf("maestrotest: gRPC broker endpoint is empty")
	}
	if consumerName == "" {
		return nil, fmt.Errorf("maestrotest: consumer name is empty")
	}
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...interface{}) {
			klog.InfofDepth(1, "maestrotest agent "+consumerName+": "+format, args...)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &Agent{
		consumer: consumerName,
		opts:     opts,
		cancel:   cancel,
		dialer:   &grpcoptions.GRPCDialer{URL: grpcBrokerEndpoint},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "maestrotest-agent-" + consumerName},
		),
		reported: map[string]string{},
		cluster:  newCluster(),
	}
	a.store = newAgentStore(a.enqueue)

	clientOptions := options.NewGenericClientOptions(
		&grpcoptions.GRPCOptions{Dialer: a.dialer},
		codec.NewManifestBundleCodec(),
		consumerName+"-maestrotest-agent", // client ID
	).WithClusterName(consumerName).
		WithClientWatcherStore(a.store)
	holder, err := work.NewAgentClientHolder(ctx, clientOptions)
	if err != nil {
		cancel()
		a.queue.ShutDown()
		return nil, fmt.Errorf("maestrotest: start agent client for %q: %w", consumerName, err)
	}
	a.client = holder.ManifestWorks(consumerName)
	a.wg.Add(1)
	go a.work(ctx)
	return a, nil
}

// WorkID is the name a work has on the agent side: Maestro's resource ID, a
// UUIDv5 of the source ID, the ManifestWork group/resource, the consumer and
// the work's name as the source created it.
func WorkID(sourceID, consumer, name string) string {
	return clientutils.UID(sourceID, common.ManifestWorkGR.String(), consumer, name)
}

// Consumer returns the consumer name the agent serves.
func (a *Agent) Consumer() string { return a.consumer }

// Stop disconnects the agent and waits for its goroutines. Works stay on the
// server as they are; a new agent for the same consumer picks them up.
func (a *Agent) Stop() {
	a.stop.Do(func() {
		a.cancel()
		a.queue.ShutDown()
		a.wg.Wait()
		_ = a.dialer.Close()
	})
}

// Works returns a snapshot of the works the agent holds (deep copies, with the
// status it last reported), named by resource ID (see WorkID).
func (a *Agent) Works() []*workv1.ManifestWork {
	list, _ := a.store.ListAll(context.Background())
	return list
}

// Reconcile makes the agent look at every work again (after Delay), asking
// Fail and Status afresh, as a real agent's periodic resync would.
func (a *Agent) Reconcile() {
	for _, w := range a.Works() {
		a.enqueue(w.Name)
	}
}

func (a *Agent) enqueue(name string) {
	if a.opts.Delay > 0 {
		a.queue.AddAfter(name, a.opts.Delay)
	} else {
		a.queue.Add(name)
	}
}

func (a *Agent) work(ctx context.Context) {
	defer a.wg.Done()
	for {
		name, shutdown := a.queue.Get()
		if shutdown {
			return
		}
		err := a.process(ctx, name)
		switch {
		case ctx.Err() != nil:
			a.queue.Forget(name)
		case err != nil:
			a.opts.Logf("work %s: %v (will retry)", name, err)
			a.queue.AddRateLimited(name)
		default:
			a.queue.Forget(name)
		}
		a.queue.Done(name)
	}
}

// process reports on one work: its status, or its deletion.
func (a *Agent) process(ctx context.Context, name string) error {
	w, exists, _ := a.store.Get(ctx, a.consumer, name)
	if !exists {
		a.mu.Lock()
		delete(a.reported, name)
		a.mu.Unlock()
		return nil
	}
	if !w.DeletionTimestamp.IsZero() {
		return a.finalize(ctx, w)
	}

	status := a.buildStatus(w)
	if c := meta.FindStatusCondition(status.Conditions, workv1.WorkApplied); c != nil && c.Status == metav1.ConditionTrue {
		// Applied: the objects exist, owned as this generation's delete
		// option says.
		a.cluster.apply(w)
	}
	fingerprint := statusFingerprint(w.Generation, status)
	a.mu.Lock()
	same := a.reported[name] == fingerprint
	a.mu.Unlock()
	if same {
		return nil
	}
	patch, err := json.Marshal(map[string]interface{}{
		// "0" tells the SDK's agent client to skip its resource version check:
		// works arrive with an empty resource version, which it would refuse.
		// The agent's store guards against stale writes instead.
		"metadata": map[string]interface{}{"resourceVersion": "0"},
		"status":   status,
	})
	if err != nil {
		return err
	}
	// Publishes the status to Maestro, then writes it to the store.
	if _, err := a.client.Patch(ctx, name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("publish status: %w", err)
	}
	a.mu.Lock()
	a.reported[name] = fingerprint
	a.mu.Unlock()
	return nil
}

// finalize plays the agent's part in deletion: the SDK marks a work deleted by
// the source as deleting with the manifest-work-cleanup finalizer; a real
// agent removes the applied resources it owns (see cluster) and then the
// finalizer. Once no
// finalizer is left, the SDK's agent client publishes the Deleted condition
// (from a 2 s loop) and Maestro removes the work.
func (a *Agent) finalize(ctx context.Context, w *workv1.ManifestWork) error {
	var keep []string
	found := false
	for _, f := range w.Finalizers {
		if f == workv1.ManifestWorkFinalizer {
			found = true
			continue
		}
		keep = append(keep, f)
	}
	if !found {
		return nil
	}
	// The AppliedManifestWork's finalizer: delete what the work owns.
	a.cluster.remove(w)
	var finalizers interface{} // JSON null removes the field
	if len(keep) > 0 {
		finalizers = keep
	}
	patch, err := json.Marshal(map[string]interface{}{
		"metadata": map[string]interface{}{"resourceVersion": "0", "finalizers": finalizers},
	})
	if err != nil {
		return err
	}
	if _, err := a.client.Patch(ctx, w.Name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}
