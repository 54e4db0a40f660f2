// The Delivery itself: construction (permission check, informers), Close,
// Ready, Watch, and the plumbing of its Kubernetes API calls. Runs are
// started in runs.go and read from the caches in state.go.

// Package jobs delivers ManifestWorks the way the Maestro integration spike
// proposed for the MVP: for each apply or delete, a Kubernetes Job runs
// `maestro-cli apply` (or `delete`) against Maestro, and the Job's outcome
// is the work's status.
//
// A run is one (work, resource generation, operation, attempt). Its Job and
// ConfigMap (holding the work) are named deterministically from it, so an
// event delivered twice, or by two replicas, finds the Job the first one
// created (AlreadyExists is success) and follows it: maestro-cli does not
// run twice for the same thing. A failed run is retried by the next event
// for the same generation (Sentinel re-publishes unreconciled resources) as
// attempt+1.
//
// Jobs are followed with one shared informer factory per Delivery (one per
// process), limited to the namespace and to objects labelled
// hyperfleet.io/component=maestro-handler: no polling. The outcome is read
// from the status-reporter's condition on the Job, or, without a
// status-reporter, from the Job's own conditions and maestro-cli's container
// status and termination message; see observe.
//
// What the maestro.Delivery methods mean here:
//
//   - Apply creates the run's Job (or finds it) and returns the work as the
//     Job tells it, its Generation the resource generation.
//   - Get returns the work as its latest run tells it (synthesize): Applied
//     and Available True at the work's generation when maestro-cli
//     succeeded; False, with Degraded True, and the reason (OOMKilled,
//     DeadlineExceeded, BackoffLimitExceeded, the results file's or the
//     status-reporter's) when it failed; while it runs, neither (the
//     pipeline keeps waiting) but Progressing True with why (JobPending,
//     ErrImagePull, ...). NotFound when no run is known or the latest
//     deleted the work. The work's Generation is the resource generation.
//   - Watch sends Modified when a run's outcome changes and Deleted when a
//     delete run succeeds, so maestro.Tracker.Await and handlers.Report work
//     unchanged.
//   - Delete creates a delete run and follows it for up to DeleteWait, so
//     that a failed deletion is an error the report carries. An unfinished
//     apply run of the work is waited for first: two Jobs' pods start in no
//     set order.
//
// The delivery knows only what its Jobs said: it does not read Maestro.
// After TTLAfterFinished the Jobs are gone and Get answers NotFound until the
// next event runs maestro-cli again.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Delivery is the Job delivery backend. Build it with New; Close it.
type Delivery struct {
	opts Options
	cs   kubernetes.Interface
	log  *slog.Logger
	obs  Observer

	factory informers.SharedInformerFactory
	jobs    cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
	queue   workqueue.TypedInterface[workKey]
	stop    chan struct{}
	worker  sync.WaitGroup
	closed  sync.Once

	mu      sync.Mutex
	changed chan struct{}      // closed and replaced on every cache change
	emitted map[workKey]string // fingerprint of the state last sent per work

	watches *maestro.WorkEventFanout
}

var _ maestro.Delivery = (*Delivery)(nil)

type workKey struct{ consumer, name string }

func (k workKey) String() string { return k.consumer + "/" + k.name }

// Cache indexes.
const (
	indexWork = "work" // Jobs by consumer/name
	indexJob  = "job"  // pods by their Job's name
)

// labelJobName is the label the Job controller puts on a Job's pods.
const labelJobName = batchv1.JobNameLabel

var manifestWorks = schema.GroupResource{Group: workv1.GroupName, Resource: "manifestworks"}

// New checks opts, asks the API server whether the adapter may do all the
// delivery needs in the namespace (a missing permission is a Permanent
// error naming it), starts the informers and waits, bounded by ctx and
// RequestTimeout, until their caches are filled. Build one per process.
func New(ctx context.Context, cs kubernetes.Interface, opts Options) (*Delivery, error) {
	if err := opts.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	opts = opts.withDefaults()
	d := &Delivery{
		opts:    opts,
		cs:      cs,
		log:     opts.Logger.With("component", "job-delivery", "namespace", opts.Namespace),
		obs:     opts.Observer,
		queue:   workqueue.NewTyped[workKey](),
		stop:    make(chan struct{}),
		changed: make(chan struct{}),
		emitted: map[workKey]string{},
	}
	d.watches = maestro.NewWorkEventFanout(d.stop, "job delivery")
	if err := d.checkAccess(ctx); err != nil {
		return nil, err
	}

	selector := labels.SelectorFromSet(labels.Set{LabelComponent: ComponentValue}).String()
	d.factory = informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }),
		informers.WithTransform(maestro.StripManagedFields),
	)
	d.jobs = d.factory.Batch().V1().Jobs().Informer()
	d.pods = d.factory.Core().V1().Pods().Informer()
	if err := d.jobs.AddIndexers(cache.Indexers{indexWork: func(obj any) ([]string, error) {
		job, ok := obj.(*batchv1.Job)
		if !ok {
			return nil, nil
		}
		if r, ok := runOf(job); ok {
			return []string{workKey{r.consumer, r.name}.String()}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("job delivery: %w", err)
	}
	if err := d.pods.AddIndexers(cache.Indexers{indexJob: func(obj any) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Labels[labelJobName] == "" {
			return nil, nil
		}
		return []string{pod.Labels[labelJobName]}, nil
	}}); err != nil {
		return nil, fmt.Errorf("job delivery: %w", err)
	}
	handler := func(keyOf func(obj any) (workKey, bool)) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if initial {
					d.prime(keyOf(obj))
					return
				}
				d.onChange(keyOf(obj))
			},
			UpdateFunc: func(_, obj any) { d.onChange(keyOf(obj)) },
			DeleteFunc: func(obj any) { d.onChange(keyOf(obj)) },
		}
	}
	jobsReg, err := d.jobs.AddEventHandler(handler(d.jobKey))
	if err != nil {
		return nil, fmt.Errorf("job delivery: %w", err)
	}
	podsReg, err := d.pods.AddEventHandler(handler(d.podKey))
	if err != nil {
		return nil, fmt.Errorf("job delivery: %w", err)
	}

	d.factory.Start(d.stop)
	d.worker.Add(1)
	go d.work()
	syncCtx, cancel := context.WithTimeout(ctx, opts.RequestTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), d.jobs.HasSynced, d.pods.HasSynced, jobsReg.HasSynced, podsReg.HasSynced) {
		d.Close()
		return nil, failure.Transient(fmt.Errorf("job delivery: the Job and pod caches of namespace %s did not fill within %s: %w",
			opts.Namespace, opts.RequestTimeout, cmp.Or(ctx.Err(), context.DeadlineExceeded)))
	}
	return d, nil
}

// permissions is what the delivery does with the Kubernetes API, and what
// deploy/kustomize/components/job-delivery/role.yaml grants.
var permissions = []authorizationv1.ResourceAttributes{
	{Group: "batch", Resource: "jobs", Verb: "create"},
	{Group: "batch", Resource: "jobs", Verb: "get"},
	{Group: "batch", Resource: "jobs", Verb: "list"},
	{Group: "batch", Resource: "jobs", Verb: "watch"},
	{Resource: "configmaps", Verb: "create"},
	{Resource: "secrets", Verb: "create"},
	{Resource: "pods", Verb: "list"},
	{Resource: "pods", Verb: "watch"},
}

// checkAccess fails early, and permanently, when the adapter may not do
// all it needs in the namespace: otherwise a missing watch would only show
// as informers that never learn anything, and a missing create as the first
// event's failure. It asks the API server (SelfSubjectAccessReview, which
// every authenticated user may create).
func (d *Delivery) checkAccess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
	defer cancel()
	var missing []string
	for _, p := range permissions {
		p.Namespace = d.opts.Namespace
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &p}}
		var got *authorizationv1.SelfSubjectAccessReview
		err := d.call("create", "selfsubjectaccessreviews", func() error {
			var err error
			got, err = d.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return classify(fmt.Errorf("job delivery: checking what the adapter may do in namespace %s: %w", d.opts.Namespace, err))
		}
		if !got.Status.Allowed {
			missing = append(missing, p.Verb+" "+schema.GroupResource{Group: p.Group, Resource: p.Resource}.String())
		}
	}
	if len(missing) > 0 {
		return failure.Permanentf("job delivery: the adapter may not %s in namespace %s; its Role must grant that (deploy/kustomize/components/job-delivery/role.yaml)",
			strings.Join(missing, ", "), d.opts.Namespace)
	}
	return nil
}

// Close stops the informers and ends every Watch. It is safe to call more
// than once.
func (d *Delivery) Close() {
	d.closed.Do(func() {
		// stop first: it unblocks a send to a watcher nobody reads.
		close(d.stop)
		d.queue.ShutDown()
		d.worker.Wait()
		if d.factory != nil {
			d.factory.Shutdown()
		}
		d.watches.Close()
	})
}

// Ready reports whether the informers' caches are filled (a readiness check).
func (d *Delivery) Ready(context.Context) error {
	if !d.jobs.HasSynced() || !d.pods.HasSynced() {
		return errors.New("job delivery: informer caches not synced")
	}
	return nil
}

// call runs one Kubernetes API call and tells the observer.
func (d *Delivery) call(verb, resource string, f func() error) error {
	start := time.Now()
	err := f()
	d.obs.KubeRequest(verb, resource, RequestResult(err), time.Since(start))
	return err
}

// classify marks err Permanent when retrying cannot help until someone
// changes the configuration (RBAC, the namespace, the object).
func classify(err error) error {
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return failure.Permanent(err)
	case apierrors.IsNotFound(err):
		// Creating in a namespace that does not exist.
		return failure.Permanent(err)
	}
	return failure.Transient(err)
}

// Watch implements maestro.Delivery.
func (d *Delivery) Watch(ctx context.Context) (<-chan maestro.WorkEvent, error) {
	return d.watches.Watch(ctx)
}

func (d *Delivery) emit(ev maestro.WorkEvent) { d.watches.Emit(ev) }
