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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
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
		return nil, events.Permanent(err)
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
	d.watches = maestro.NewWorkEventFanout(d.stop)
	if err := d.checkAccess(ctx); err != nil {
		return nil, err
	}

	selector := labels.SelectorFromSet(labels.Set{LabelComponent: ComponentValue}).String()
	d.factory = informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }),
		informers.WithTransform(stripManagedFields),
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
		return nil, events.Transient(fmt.Errorf("job delivery: the Job and pod caches of namespace %s did not fill within %s: %w",
			opts.Namespace, opts.RequestTimeout, cmp.Or(ctx.Err(), context.DeadlineExceeded)))
	}
	return d, nil
}

// prime records the state of a work the initial lists brought: what the
// caches hold at start is the starting point, not news.
func (d *Delivery) prime(key workKey, ok bool) {
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.state(key); ok {
		d.emitted[key] = st.fingerprint()
	}
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
		return events.Permanentf("job delivery: the adapter may not %s in namespace %s; its Role must grant that (deploy/kustomize/components/job-delivery/role.yaml)",
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

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// jobKey is the work a Job (or its tombstone) belongs to.
func (d *Delivery) jobKey(obj any) (workKey, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return workKey{}, false
	}
	r, ok := runOf(job)
	return workKey{r.consumer, r.name}, ok
}

// podKey is the work a pod's Job belongs to, when the Job is cached.
func (d *Delivery) podKey(obj any) (workKey, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Labels[labelJobName] == "" {
		return workKey{}, false
	}
	item, exists, err := d.jobs.GetIndexer().GetByKey(pod.Namespace + "/" + pod.Labels[labelJobName])
	if err != nil || !exists {
		return workKey{}, false
	}
	return d.jobKey(item)
}

// onChange runs on the informers' goroutines after their cache changed: it
// wakes whoever waits for the cache and queues the work for the worker, which
// decides whether its state changed.
func (d *Delivery) onChange(key workKey, ok bool) {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	if ok {
		d.queue.Add(key)
	}
}

// work turns queued works into watch events, one at a time: the state is
// read from the caches when the key is processed (level-triggered), so the
// order in which Job and pod updates arrived does not matter.
func (d *Delivery) work() {
	defer d.worker.Done()
	for {
		key, shutdown := d.queue.Get()
		if shutdown {
			return
		}
		d.sync(key)
		d.queue.Done(key)
	}
}

func (d *Delivery) sync(key workKey) {
	d.mu.Lock()
	st, ok := d.state(key)
	if !ok {
		// The Jobs are gone (TTL): the work did not change, the delivery
		// just forgot it.
		delete(d.emitted, key)
		d.mu.Unlock()
		return
	}
	fp := st.fingerprint()
	if d.emitted[key] == fp {
		d.mu.Unlock()
		return
	}
	d.emitted[key] = fp
	d.mu.Unlock()

	ev := maestro.WorkEvent{Type: watch.Modified, Work: st.work()}
	if st.gone() {
		ev.Type = watch.Deleted
	}
	d.log.Debug("work status changed", "work", key.String(), "job", st.job.Name, "phase", st.out.Phase, "reason", st.out.Reason)
	d.emit(ev)
}

// runState is a work's latest run as the caches have it.
type runState struct {
	job *batchv1.Job
	run run
	out Outcome
}

func (s runState) fingerprint() string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s", s.job.UID, s.run.op, s.out.Phase, s.out.Reason, s.out.Message)
}

func (s runState) work() *workv1.ManifestWork { return synthesize(s.job, s.run, s.out) }

// gone: the latest run deleted the work.
func (s runState) gone() bool { return s.run.op == OpDelete && s.out.Phase == PhaseSucceeded }

// state is the work's latest run: the newest generation, then the newest
// Job, then delete over apply and the higher attempt.
func (d *Delivery) state(key workKey) (runState, bool) {
	runs := d.runs(key)
	if len(runs) == 0 {
		return runState{}, false
	}
	latest := runs[len(runs)-1]
	latest.out = observe(latest.job, d.newestPod(latest.job), d.opts.ReporterConditionType)
	return latest, true
}

// runs are the work's cached runs, oldest first.
func (d *Delivery) runs(key workKey) []runState {
	objs, err := d.jobs.GetIndexer().ByIndex(indexWork, key.String())
	if err != nil {
		return nil
	}
	out := make([]runState, 0, len(objs))
	for _, obj := range objs {
		job, ok := obj.(*batchv1.Job)
		if !ok {
			continue
		}
		if r, ok := runOf(job); ok {
			out = append(out, runState{job: job, run: r})
		}
	}
	slices.SortFunc(out, func(a, b runState) int {
		return cmp.Or(
			cmp.Compare(a.run.gen, b.run.gen),
			a.job.CreationTimestamp.Compare(b.job.CreationTimestamp.Time),
			cmp.Compare(opRank(a.run.op), opRank(b.run.op)),
			cmp.Compare(a.run.attempt, b.run.attempt),
			cmp.Compare(a.job.Name, b.job.Name),
		)
	})
	return out
}

func opRank(op string) int {
	if op == OpDelete {
		return 1
	}
	return 0
}

// nextAttempt is one more than the highest cached attempt of (gen, op).
func nextAttempt(runs []runState, gen int64, op string) int {
	next := 0
	for _, s := range runs {
		if s.run.gen == gen && s.run.op == op && s.run.attempt >= next {
			next = s.run.attempt + 1
		}
	}
	return next
}

// newestPod is the Job's most recently created pod in the cache.
func (d *Delivery) newestPod(job *batchv1.Job) *corev1.Pod {
	objs, err := d.pods.GetIndexer().ByIndex(indexJob, job.Name)
	if err != nil {
		return nil
	}
	var newest *corev1.Pod
	for _, obj := range objs {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Namespace != job.Namespace {
			continue
		}
		// A pod of an earlier Job of the same name is not this one's.
		if ref := metav1.GetControllerOf(pod); ref != nil && ref.UID != job.UID {
			continue
		}
		if newest == nil || newest.CreationTimestamp.Before(&pod.CreationTimestamp) {
			newest = pod
		}
	}
	return newest
}

// Get implements maestro.Delivery: the work as its latest run tells it.
func (d *Delivery) Get(_ context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	key := workKey{consumer, name}
	d.mu.Lock()
	st, ok := d.state(key)
	d.mu.Unlock()
	if !ok || st.gone() {
		return nil, apierrors.NewNotFound(manifestWorks, name)
	}
	return st.work(), nil
}

// Apply implements maestro.Delivery: it starts a run of `maestro-cli apply`
// for the work's generation, or finds the one already started, and returns
// the work as that run tells it (usually not finished yet: Watch says when).
//
// A run for an older generation is superseded by a new one; a run for a
// newer generation makes Apply return ErrStaleGeneration; a run for the same
// generation and the same work content is followed unless it failed, in
// which case the next attempt starts.
func (d *Delivery) Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	gen, doc, sensitive, err := d.validate(work)
	if err != nil {
		return nil, err
	}
	key := workKey{work.Namespace, work.Name}
	meta := workMeta{Labels: work.Labels, Annotations: work.Annotations}
	d.mu.Lock()
	runs := d.runs(key)
	latest, known := d.state(key)
	d.mu.Unlock()

	if known && latest.run.gen > gen {
		return latest.work(), fmt.Errorf("applying work %s at generation %d: a run for generation %d exists (Job %s): %w",
			key, gen, latest.run.gen, latest.job.Name, maestro.ErrStaleGeneration)
	}
	r := run{consumer: work.Namespace, name: work.Name, gen: gen, op: OpApply, digest: digest(doc), sensitive: sensitive}
	if known && latest.run.op == OpApply && latest.run.gen == gen && latest.run.digest == r.digest && latest.out.Phase != PhaseFailed {
		// This event was delivered before, or another replica got it: the
		// run exists. Make sure its work document does too (a crash between
		// the two creates would leave the pod waiting for it).
		if !latest.out.Finished() {
			if err := d.createWorkHolder(ctx, latest.job, doc); err != nil {
				return nil, err
			}
		}
		return latest.work(), nil
	}
	r.attempt = nextAttempt(runs, gen, OpApply)

	job, err := d.startRun(ctx, r, meta)
	if err != nil {
		return nil, err
	}
	if err := d.createWorkHolder(ctx, job, doc); err != nil {
		return nil, err
	}
	st, err := d.awaitCached(ctx, key, job)
	if err != nil {
		return nil, err
	}
	return st.work(), nil
}

// Delete implements maestro.Delivery: it starts a run of `maestro-cli
// delete` (or follows the one running) and waits up to DeleteWait for its
// outcome. A failed run is a Transient error carrying the reason; the next
// call starts another attempt. An apply run of the work that has not
// finished is waited for first (within the same DeleteWait), so that the
// two cannot run in the wrong order.
func (d *Delivery) Delete(ctx context.Context, consumer, name string) error {
	if consumer == "" || name == "" {
		return events.Permanentf("deleting work %q on consumer %q: consumer and name are required", name, consumer)
	}
	key := workKey{consumer, name}
	waitCtx, cancel := context.WithTimeout(ctx, d.opts.DeleteWait)
	defer cancel()
	d.mu.Lock()
	latest, known := d.state(key)
	d.mu.Unlock()
	if known && latest.run.op == OpApply && !latest.out.Finished() {
		// Two Jobs' pods start in no set order: a delete run started now
		// could run before the apply run, which would then bring the work
		// back. The apply run ends first (or at its deadline).
		pending := latest.job.Name
		var err error
		latest, err = d.await(waitCtx, key, func(st runState, ok bool) bool {
			return !ok || st.job.Name != pending || st.out.Finished()
		})
		if err != nil {
			return events.Transient(fmt.Errorf("deleting work %s: the apply run (Job %s) has not finished, and must before the delete run starts: %w",
				key, pending, err))
		}
	}
	d.mu.Lock()
	runs := d.runs(key)
	latest, known = d.state(key)
	d.mu.Unlock()

	var job *batchv1.Job
	switch {
	case known && latest.run.op == OpDelete && latest.out.Phase == PhaseSucceeded:
		return nil
	case known && latest.run.op == OpDelete && latest.out.Phase != PhaseFailed:
		job = latest.job
	default:
		r := run{consumer: consumer, name: name, op: OpDelete}
		var meta workMeta
		if known {
			r.gen = latest.run.gen
			_ = json.Unmarshal([]byte(latest.job.Annotations[AnnotationWorkMetadata]), &meta)
		}
		r.attempt = nextAttempt(runs, r.gen, OpDelete)
		started, err := d.startRun(ctx, r, meta)
		if err != nil {
			return err
		}
		job = started
	}

	st, err := d.await(waitCtx, key, func(st runState, ok bool) bool {
		return ok && st.job.Name == job.Name && st.job.UID == job.UID && st.out.Finished()
	})
	switch {
	case err == nil && st.out.Phase == PhaseFailed:
		return events.Transient(fmt.Errorf("deleting work %s: maestro-cli Job %s failed: %s: %s",
			key, job.Name, st.out.Reason, orDefault(st.out.Message, "no message")))
	case err != nil && ctx.Err() != nil:
		return events.Transient(fmt.Errorf("deleting work %s: %w", key, ctx.Err()))
	case err != nil:
		d.log.Debug("delete run not finished within the wait; Watch will report it", "work", key.String(), "job", job.Name, "wait", d.opts.DeleteWait)
	}
	return nil
}

// startRun creates the run's Job. A Job that already exists (an earlier
// delivery of the same event, another replica) is the same run: it is
// fetched and followed.
func (d *Delivery) startRun(ctx context.Context, r run, meta workMeta) (*batchv1.Job, error) {
	r.eventID = maestro.EventID(ctx)
	want, err := d.opts.job(r, meta)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("building Job for work %s/%s: %w", r.consumer, r.name, err))
	}
	var job *batchv1.Job
	err = d.call("create", "jobs", func() error {
		cctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
		defer cancel()
		var err error
		job, err = d.cs.BatchV1().Jobs(d.opts.Namespace).Create(cctx, want, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		err = d.call("get", "jobs", func() error {
			cctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
			defer cancel()
			var err error
			job, err = d.cs.BatchV1().Jobs(d.opts.Namespace).Get(cctx, want.Name, metav1.GetOptions{})
			return err
		})
		if err == nil {
			d.log.Debug("run already started; following it", "job", job.Name, "work", r.consumer+"/"+r.name)
		}
	} else if err == nil {
		d.log.Info("started maestro-cli Job", "job", job.Name, "work", r.consumer+"/"+r.name,
			"operation", r.op, "generation", r.gen, "attempt", r.attempt)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("%s work %s/%s: creating Job %s/%s: %w", r.op, r.consumer, r.name, d.opts.Namespace, want.Name, err))
	}
	return job, nil
}

// createWorkHolder creates the ConfigMap, or for a work carrying a Secret
// the Secret, that the Job mounts its work from, owned by the Job. One that
// exists already is the same one (same name, same run).
func (d *Delivery) createWorkHolder(ctx context.Context, job *batchv1.Job, doc []byte) error {
	kind, resource := "ConfigMap", "configmaps"
	create := func(ctx context.Context) error {
		_, err := d.cs.CoreV1().ConfigMaps(d.opts.Namespace).Create(ctx, d.opts.configMap(job, doc), metav1.CreateOptions{})
		return err
	}
	if holdsWorkInSecret(job) {
		kind, resource = "Secret", "secrets"
		create = func(ctx context.Context) error {
			_, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Create(ctx, d.opts.secret(job, doc), metav1.CreateOptions{})
			return err
		}
	}
	err := d.call("create", resource, func() error {
		cctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
		defer cancel()
		return create(cctx)
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return classify(fmt.Errorf("creating %s %s/%s for Job %s: %w", kind, job.Namespace, job.Name, job.Name, err))
	}
	return nil
}

// awaitCached waits until the informer's cache holds job (or something
// newer), so that Get, which reads the cache, sees what Apply did.
func (d *Delivery) awaitCached(ctx context.Context, key workKey, job *batchv1.Job) (runState, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.RequestTimeout)
	defer cancel()
	st, err := d.await(ctx, key, func(_ runState, _ bool) bool {
		_, exists, _ := d.jobs.GetIndexer().Get(job)
		return exists
	})
	if err != nil {
		return runState{}, events.Transient(fmt.Errorf("Job %s/%s was created but the informer has not seen it: %w", job.Namespace, job.Name, err))
	}
	if st.job == nil {
		st = runState{job: job}
		st.run, _ = runOf(job)
		st.out = observe(job, nil, d.opts.ReporterConditionType)
	}
	return st, nil
}

// await waits until done accepts the work's latest run (ok false: no run),
// re-checking on every cache change.
func (d *Delivery) await(ctx context.Context, key workKey, done func(st runState, ok bool) bool) (runState, error) {
	for {
		d.mu.Lock()
		st, ok := d.state(key)
		changed := d.changed
		d.mu.Unlock()
		if done(st, ok) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, ctx.Err()
		case <-d.stop:
			return st, errors.New("job delivery closed")
		}
	}
}

// validate checks the work and returns its generation, the document the
// Job mounts, and whether that must be kept in a Secret.
func (d *Delivery) validate(work *workv1.ManifestWork) (gen int64, doc []byte, sensitive bool, err error) {
	switch {
	case work == nil:
		return 0, nil, false, events.Permanentf("applying work: nil work")
	case work.Name == "":
		return 0, nil, false, events.Permanentf("applying work: metadata.name is empty")
	case work.Namespace == "":
		return 0, nil, false, events.Permanentf("applying work %s: metadata.namespace (the consumer name) is empty", work.Name)
	case len(work.Spec.Workload.Manifests) == 0:
		return 0, nil, false, events.Permanentf("applying work %s/%s: spec.workload.manifests is empty", work.Namespace, work.Name)
	}
	if v, ok := work.Annotations[maestro.AnnotationGeneration]; ok {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil || g < 0 {
			return 0, nil, false, events.Permanentf("applying work %s/%s: annotation %s=%q is not a generation",
				work.Namespace, work.Name, maestro.AnnotationGeneration, v)
		}
		gen = g
	}
	w := work.DeepCopy()
	for i := range w.Spec.Workload.Manifests {
		m := &w.Spec.Workload.Manifests[i]
		if m.Raw == nil && m.Object != nil {
			raw, err := json.Marshal(m.Object)
			if err != nil {
				return 0, nil, false, events.Permanentf("applying work %s/%s: encoding manifest %d: %w", work.Namespace, work.Name, i, err)
			}
			m.Raw, m.Object = raw, nil
		}
		if err := maestro.CheckManifest(m.Raw); err != nil {
			return 0, nil, false, events.Permanentf("applying work %s/%s: manifest %d: %w", work.Namespace, work.Name, i, err)
		}
	}
	doc, err = d.opts.workDocument(w)
	if err != nil {
		return 0, nil, false, events.Permanentf("applying work %s/%s: encoding it: %w", work.Namespace, work.Name, err)
	}
	if len(doc) > maxConfigMapBytes {
		return 0, nil, false, events.Permanentf("applying work %s/%s: it is %d bytes, more than a ConfigMap or Secret holds (%d)",
			work.Namespace, work.Name, len(doc), maxConfigMapBytes)
	}
	return gen, doc, holdsSecret(w), nil
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
		return events.Permanent(err)
	case apierrors.IsNotFound(err):
		// Creating in a namespace that does not exist.
		return events.Permanent(err)
	}
	return events.Transient(err)
}

// Watch implements maestro.Delivery.
func (d *Delivery) Watch(ctx context.Context) (<-chan maestro.WorkEvent, error) {
	select {
	case <-d.stop:
		return nil, events.Permanentf("job delivery closed")
	default:
	}
	return d.watches.Watch(ctx), nil
}

func (d *Delivery) emit(ev maestro.WorkEvent) { d.watches.Emit(ev) }
