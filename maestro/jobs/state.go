// What the informers' caches say of a work: its runs (Jobs) and the latest
// one's outcome (Get), and the worker that turns changes of that outcome
// into watch events.

package jobs

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

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
