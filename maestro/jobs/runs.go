// Apply and Delete: starting a run (its Job, and the ConfigMap or Secret
// holding the work) or finding the one started, and waiting on the caches
// for it.

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

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
			key, gen, latest.run.gen, latest.job.Name, workmeta.ErrStaleGeneration)
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
		return failure.Permanentf("deleting work %q on consumer %q: consumer and name are required", name, consumer)
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
			return failure.Transient(fmt.Errorf("deleting work %s: the apply run (Job %s) has not finished, and must before the delete run starts: %w",
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
		return failure.Transient(fmt.Errorf("deleting work %s: maestro-cli Job %s failed: %s: %s",
			key, job.Name, st.out.Reason, orDefault(st.out.Message, "no message")))
	case err != nil && ctx.Err() != nil:
		return failure.Transient(fmt.Errorf("deleting work %s: %w", key, ctx.Err()))
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
		return nil, failure.Permanent(fmt.Errorf("building Job for work %s/%s: %w", r.consumer, r.name, err))
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
		return runState{}, failure.Transient(fmt.Errorf("Job %s/%s was created but the informer has not seen it: %w", job.Namespace, job.Name, err))
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
	w, err := maestro.CheckWork(work)
	if err != nil {
		return 0, nil, false, err
	}
	if gen, _, err = maestro.DesiredGeneration(w); err != nil {
		return 0, nil, false, err
	}
	doc, err = d.opts.workDocument(w)
	if err != nil {
		return 0, nil, false, failure.Permanentf("applying work %s/%s: encoding it: %w", work.Namespace, work.Name, err)
	}
	if len(doc) > maxConfigMapBytes {
		return 0, nil, false, failure.Permanentf("applying work %s/%s: it is %d bytes, more than a ConfigMap or Secret holds (%d)",
			work.Namespace, work.Name, len(doc), maxConfigMapBytes)
	}
	return gen, doc, holdsSecret(w), nil
}
