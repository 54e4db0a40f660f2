package jobs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// countCreates counts create calls on resource.
func countCreates(cs interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}, resource string) *atomic.Int32 {
	var n atomic.Int32
	cs.PrependReactor("create", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		return false, nil, nil
	})
	return &n
}

func condStatus(w *workv1.ManifestWork, typ string) (metav1.ConditionStatus, string) {
	c := meta.FindStatusCondition(w.Status.Conditions, typ)
	if c == nil {
		return "", ""
	}
	return c.Status, c.Reason
}

// TestApplyFollowsTheJobToItsEnd: Apply starts a Job and returns the work
// pending; the status-reporter's condition makes Watch send the work
// Applied and Available at its generation, and Get agrees.
func TestApplyFollowsTheJobToItsEnd(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, func(o *Options) { o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:v1" })
	evs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := namespaceWork(t, 3)
	got, err := d.Apply(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != w.Name || got.Namespace != w.Namespace || got.Generation != 3 {
		t.Fatalf("Apply returned %s/%s generation %d, want %s/%s generation 3", got.Namespace, got.Name, got.Generation, w.Namespace, w.Name)
	}
	if s, reason := condStatus(got, workv1.WorkProgressing); s != metav1.ConditionTrue || reason != ReasonJobPending {
		t.Fatalf("Apply returned Progressing=%s (%s), want True JobPending", s, reason)
	}
	if maestro.StatusSettled(got) {
		t.Fatal("the work Apply returned looks settled to the pipeline before the Job ran")
	}
	// Get reads the cache, which Apply waited for.
	if g, err := d.Get(ctx, w.Namespace, w.Name); err != nil || g.Generation != 3 {
		t.Fatalf("Get right after Apply: %v, %v", g, err)
	}
	if ev := nextEvent(t, evs, w.Namespace, w.Name); ev.Type != watch.Modified {
		t.Fatalf("first event %s, want Modified (the Job appeared)", ev.Type)
	}

	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	updateJobStatus(t, cs, job, func(s *batchv1.JobStatus) {
		s.Conditions = append(s.Conditions, reporterCondition(corev1.ConditionTrue, "Applied", "ManifestWork applied"))
	})
	ev := nextEvent(t, evs, w.Namespace, w.Name)
	if ev.Type != watch.Modified {
		t.Fatalf("event %s, want Modified", ev.Type)
	}
	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		c := meta.FindStatusCondition(ev.Work.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != ev.Work.Generation {
			t.Fatalf("after success the watch shows %s = %+v, want True at generation %d", typ, c, ev.Work.Generation)
		}
	}
	g, err := d.Get(ctx, w.Namespace, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := condStatus(g, workv1.WorkAvailable); s != metav1.ConditionTrue {
		t.Fatalf("Get after success: Available=%s", s)
	}
	// The Job finishing (Complete, after the reporter) changes nothing more:
	// no second event.
	updateJobStatus(t, cs, job, func(s *batchv1.JobStatus) {
		s.Succeeded = 1
		s.Conditions = append(s.Conditions, finished(batchv1.JobComplete, "CompletionsReached", "")...)
	})
	select {
	case ev := <-evs:
		t.Fatalf("unexpected event %s for %s/%s after the outcome was already known", ev.Type, ev.Work.Namespace, ev.Work.Name)
	case <-time.After(300 * time.Millisecond): // a quiet period: asserting absence
	}
}

// TestRedeliveryFollowsTheSameJob: the same event twice, or from another
// replica, creates one Job.
func TestRedeliveryFollowsTheSameJob(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	creates := countCreates(cs, "jobs")
	w := namespaceWork(t, 1)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ctx, w.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if n := creates.Load(); n != 1 {
		t.Fatalf("%d Job creates for one event delivered twice, want 1", n)
	}
	// Another replica with its own cache.
	d2, err := New(ctx, cs, baseOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := d2.Apply(ctx, w.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if n := len(listJobs(t, cs, d.opts.Namespace, w, OpApply)); n != 1 {
		t.Fatalf("%d Jobs after three deliveries, want 1", n)
	}
}

// TestAlreadyExistsIsFollowed: losing the create race to another replica
// (AlreadyExists, the real API server's answer) is success: the existing Job
// is fetched and followed, and its ConfigMap made sure of.
func TestAlreadyExistsIsFollowed(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	w := namespaceWork(t, 2)
	// The other replica's create lands between our cache read and our create.
	var raced atomic.Bool
	cs.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced.Swap(true) {
			return false, nil, nil
		}
		job := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job).DeepCopy()
		job.UID = "other-replica"
		if err := cs.Tracker().Add(job); err != nil {
			t.Errorf("tracker add: %v", err)
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "batch", Resource: "jobs"}, job.Name)
	})
	got, err := d.Apply(ctx, w)
	if err != nil {
		t.Fatalf("Apply after losing the create race: %v", err)
	}
	if got.Generation != 2 {
		t.Fatalf("Apply returned generation %d", got.Generation)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	if job.UID != "other-replica" {
		t.Fatalf("the Job is %s, not the other replica's", job.UID)
	}
	cm, err := cs.CoreV1().ConfigMaps(d.opts.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap of the followed Job: %v", err)
	}
	if cm.OwnerReferences[0].UID != "other-replica" {
		t.Errorf("ConfigMap owned by %s, want the existing Job", cm.OwnerReferences[0].UID)
	}
}

// TestFailedRunIsRetriedByTheNextEvent: a failed Job is the report for its
// event; the next event for the same generation starts attempt 1.
func TestFailedRunIsRetriedByTheNextEvent(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	w := namespaceWork(t, 4)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	updateJobStatus(t, cs, job, func(s *batchv1.JobStatus) {
		s.Failed = 1
		s.Conditions = finished(batchv1.JobFailed, ReasonDeadline, "Job was active longer than specified deadline")
	})
	failed, err := d.await(ctx, workKey{w.Namespace, w.Name}, func(st runState, ok bool) bool { return ok && st.out.Phase == PhaseFailed })
	if err != nil {
		t.Fatal(err)
	}
	if s, reason := condStatus(failed.work(), workv1.WorkApplied); s != metav1.ConditionFalse || reason != ReasonDeadline {
		t.Fatalf("failed run: Applied=%s (%s), want False DeadlineExceeded", s, reason)
	}
	got, err := d.Apply(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := condStatus(got, workv1.WorkProgressing); s != metav1.ConditionTrue {
		t.Fatalf("retry: Apply returned Progressing=%s, want True (a new run)", s)
	}
	jobs := listJobs(t, cs, d.opts.Namespace, w, OpApply)
	if len(jobs) != 2 {
		t.Fatalf("%d Jobs after a retry, want 2", len(jobs))
	}
	attempts := map[string]bool{}
	for _, j := range jobs {
		attempts[j.Labels[LabelAttempt]] = true
	}
	if !attempts["0"] || !attempts["1"] {
		t.Fatalf("attempts %v, want 0 and 1", attempts)
	}
	// Get shows the new attempt, not the old failure.
	g, err := d.Get(ctx, w.Namespace, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := condStatus(g, workv1.WorkProgressing); s != metav1.ConditionTrue {
		t.Fatalf("Get after the retry started: Progressing=%s, want True", s)
	}
}

// TestGenerations: a newer generation is a new Job; an older one is stale.
func TestGenerations(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	if _, err := d.Apply(ctx, namespaceWork(t, 1)); err != nil {
		t.Fatal(err)
	}
	w2 := namespaceWork(t, 2)
	got, err := d.Apply(ctx, w2)
	if err != nil || got.Generation != 2 {
		t.Fatalf("Apply generation 2: %v, %v", got, err)
	}
	if n := len(listJobs(t, cs, d.opts.Namespace, w2, OpApply)); n != 2 {
		t.Fatalf("%d Jobs for two generations, want 2", n)
	}
	stale, err := d.Apply(ctx, namespaceWork(t, 1))
	if !errors.Is(err, workmeta.ErrStaleGeneration) {
		t.Fatalf("Apply of generation 1 after 2: %v, want ErrStaleGeneration", err)
	}
	if stale == nil || stale.Generation != 2 {
		t.Fatalf("stale Apply returned %v, want the stored work at generation 2", stale)
	}
	if n := len(listJobs(t, cs, d.opts.Namespace, w2, OpApply)); n != 2 {
		t.Fatalf("a stale Apply created a Job (%d Jobs)", n)
	}
	// Same generation, different content (the adapter's configuration
	// changed): a new run.
	changed := namespaceWork(t, 2)
	changed.Labels["hyperfleet.io/extra"] = "x"
	if _, err := d.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if n := len(listJobs(t, cs, d.opts.Namespace, w2, OpApply)); n != 3 {
		t.Fatalf("%d Jobs after a changed work at the same generation, want 3", n)
	}
}

// TestDelete: a delete run; success makes the work gone (Get NotFound, Watch
// Deleted); failure is a Transient error naming the reason; deleting again
// after success starts nothing.
func TestDelete(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, func(o *Options) { o.DeleteWait = 10 * time.Second })
	w := namespaceWork(t, 5)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	updateJobStatus(t, cs, onlyJob(t, cs, d.opts.Namespace, w, OpApply), func(s *batchv1.JobStatus) {
		s.Succeeded = 1
		s.Conditions = finished(batchv1.JobComplete, "CompletionsReached", "")
	})
	if _, err := d.await(ctx, workKey{w.Namespace, w.Name}, func(st runState, ok bool) bool { return ok && st.out.Finished() }); err != nil {
		t.Fatal(err)
	}
	evs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The "kubelet": fail the first delete run, then succeed the second.
	fail := make(chan error, 1)
	go func() {
		fail <- func() error {
			job, err := waitJob(ctx, d, w, OpDelete, "0")
			if err != nil {
				return err
			}
			_, err = setJobStatus(cs, job, func(s *batchv1.JobStatus) {
				s.Failed = 1
				s.Conditions = append(finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
					reporterCondition(corev1.ConditionFalse, "MaestroUnreachable", "Maestro at maestro-grpc:8090 is unreachable"))
			})
			return err
		}()
	}()
	err = d.Delete(ctx, w.Namespace, w.Name)
	if e := <-fail; e != nil {
		t.Fatal(e)
	}
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "MaestroUnreachable") {
		t.Fatalf("Delete with a failing Job: %v, want a Transient error naming MaestroUnreachable", err)
	}
	if _, err := d.Get(ctx, w.Namespace, w.Name); err != nil {
		t.Fatalf("Get after a failed delete: %v, want the work (still there)", err)
	}

	go func() {
		fail <- func() error {
			job, err := waitJob(ctx, d, w, OpDelete, "1")
			if err != nil {
				return err
			}
			_, err = setJobStatus(cs, job, func(s *batchv1.JobStatus) {
				s.Conditions = append(s.Conditions, reporterCondition(corev1.ConditionTrue, "Deleted", "ManifestWork deleted"))
			})
			return err
		}()
	}()
	if err := d.Delete(ctx, w.Namespace, w.Name); err != nil {
		t.Fatalf("Delete, second attempt: %v", err)
	}
	if e := <-fail; e != nil {
		t.Fatal(e)
	}
	for {
		ev := nextEvent(t, evs, w.Namespace, w.Name)
		if ev.Type == watch.Deleted {
			break
		}
	}
	if _, err := d.Get(ctx, w.Namespace, w.Name); !apierrors.IsNotFound(err) {
		t.Fatalf("Get after the delete succeeded: %v, want NotFound", err)
	}
	before := len(listJobs(t, cs, d.opts.Namespace, w, OpDelete))
	if err := d.Delete(ctx, w.Namespace, w.Name); err != nil {
		t.Fatalf("deleting a deleted work: %v", err)
	}
	if after := len(listJobs(t, cs, d.opts.Namespace, w, OpDelete)); after != before {
		t.Fatalf("deleting a deleted work started a Job (%d -> %d)", before, after)
	}
}

// TestDeleteReturnsWhenTheWaitRunsOut: a delete run still going after
// DeleteWait is not an error; Watch reports it later.
func TestDeleteReturnsWhenTheWaitRunsOut(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, func(o *Options) { o.DeleteWait = 200 * time.Millisecond })
	w := namespaceWork(t, 1)
	start := time.Now()
	if err := d.Delete(ctx, w.Namespace, w.Name); err != nil {
		t.Fatalf("Delete of a work no Job knows: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Delete took %s with a 200ms wait", took)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpDelete)
	if job.Labels[LabelGeneration] != "0" {
		t.Errorf("delete run of an unknown work at generation %q, want 0", job.Labels[LabelGeneration])
	}
	g, err := d.Get(ctx, w.Namespace, w.Name)
	if err != nil || g.DeletionTimestamp == nil {
		t.Fatalf("Get while deleting: %v, %v; want the work marked deleting", g, err)
	}
}

// TestDeleteWaitsForTheApplyRun: a delete run never starts while an apply
// run of the work is unfinished (their pods could run in either order);
// Delete waits for it, and says so when it does not end in time.
func TestDeleteWaitsForTheApplyRun(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, func(o *Options) { o.DeleteWait = 300 * time.Millisecond })
	w := namespaceWork(t, 2)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	err := d.Delete(ctx, w.Namespace, w.Name)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("Delete during an unfinished apply run: %v, want a Transient error saying it waits", err)
	}
	if n := len(listJobs(t, cs, d.opts.Namespace, w, OpDelete)); n != 0 {
		t.Fatalf("a delete run started (%d Jobs) while the apply run was unfinished", n)
	}

	// The apply run ends while Delete waits: the delete run follows.
	d2, cs2 := newFake(t, func(o *Options) { o.DeleteWait = 10 * time.Second })
	if _, err := d2.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	apply := onlyJob(t, cs2, d2.opts.Namespace, w, OpApply)
	done := make(chan error, 1)
	go func() { done <- d2.Delete(ctx, w.Namespace, w.Name) }()
	// Delete is waiting: no delete Job yet. Then the apply run ends.
	select {
	case err := <-done:
		t.Fatalf("Delete returned %v before the apply run ended", err)
	case <-time.After(200 * time.Millisecond): // a quiet period: asserting absence
	}
	if n := len(listJobs(t, cs2, d2.opts.Namespace, w, OpDelete)); n != 0 {
		t.Fatalf("a delete run started (%d Jobs) while the apply run was unfinished", n)
	}
	updateJobStatus(t, cs2, apply, func(s *batchv1.JobStatus) {
		s.Failed = 1
		s.Conditions = finished(batchv1.JobFailed, ReasonDeadline, "Job was active longer than specified deadline")
	})
	job, err := waitJob(ctx, d2, w, OpDelete, "0")
	if err != nil {
		t.Fatal(err)
	}
	updateJobStatus(t, cs2, job, func(s *batchv1.JobStatus) {
		s.Succeeded = 1
		s.Conditions = finished(batchv1.JobComplete, "CompletionsReached", "")
	})
	if err := <-done; err != nil {
		t.Fatalf("Delete after the apply run ended: %v", err)
	}
}

// waitJob waits until the delivery's cache holds the work's Job of op and
// attempt.
func waitJob(ctx context.Context, d *Delivery, w *workv1.ManifestWork, op, attempt string) (*batchv1.Job, error) {
	var found *batchv1.Job
	_, err := d.await(ctx, workKey{w.Namespace, w.Name}, func(runState, bool) bool {
		for _, s := range d.runs(workKey{w.Namespace, w.Name}) {
			if s.job.Labels[LabelOperation] == op && s.job.Labels[LabelAttempt] == attempt {
				found = s.job
				return true
			}
		}
		return false
	})
	return found, err
}

// TestTrackerAwaitsTheJob: the pipeline's waiting works unchanged on the
// Job delivery: Tracker.Await with the pipeline's predicate ends when the
// Job ends, success or failure.
func TestTrackerAwaitsTheJob(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	tr := deliverytest.RunTracker(t, d, maestrotest.SlogLogger(t))

	for _, c := range []struct {
		gen    int64
		status func(s *batchv1.JobStatus)
		want   metav1.ConditionStatus
		reason string
	}{
		{1, func(s *batchv1.JobStatus) {
			s.Succeeded = 1
			s.Conditions = finished(batchv1.JobComplete, "CompletionsReached", "")
		}, metav1.ConditionTrue, ReasonJobSucceeded},
		{2, func(s *batchv1.JobStatus) {
			s.Failed = 1
			s.Conditions = finished(batchv1.JobFailed, ReasonDeadline, "Job was active longer than specified deadline")
		}, metav1.ConditionFalse, ReasonDeadline},
	} {
		w := namespaceWork(t, c.gen)
		stored, err := d.Apply(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		job := jobAtGeneration(t, d, w, c.gen)
		wrote := make(chan error, 1)
		go func() { _, err := setJobStatus(cs, job, c.status); wrote <- err }()
		actx, cancel := context.WithTimeout(ctx, waitTimeout)
		got, err := tr.Await(actx, w.Namespace, w.Name, func(w *workv1.ManifestWork) bool {
			return w != nil && w.Generation >= stored.Generation && maestro.StatusSettled(w)
		})
		cancel()
		if werr := <-wrote; werr != nil {
			t.Fatal(werr)
		}
		if err != nil {
			t.Fatalf("generation %d: Await: %v", c.gen, err)
		}
		if s, reason := condStatus(got, workv1.WorkApplied); s != c.want || reason != c.reason {
			t.Fatalf("generation %d: Applied=%s (%s), want %s (%s)", c.gen, s, reason, c.want, c.reason)
		}
	}
}

func jobAtGeneration(t *testing.T, d *Delivery, w *workv1.ManifestWork, gen int64) *batchv1.Job {
	t.Helper()
	for _, st := range d.runs(workKey{w.Namespace, w.Name}) {
		if st.run.gen == gen {
			return st.job
		}
	}
	t.Fatalf("no Job at generation %d", gen)
	return nil
}

// TestInvalidWorkIsPermanent: bad input is refused before any Job.
func TestInvalidWorkIsPermanent(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	creates := countCreates(cs, "jobs")
	for what, mutate := range map[string]func(w *workv1.ManifestWork){
		"name":       func(w *workv1.ManifestWork) { w.Name = "" },
		"namespace":  func(w *workv1.ManifestWork) { w.Namespace = "" },
		"generation": func(w *workv1.ManifestWork) { w.Annotations[workmeta.AnnotationGeneration] = "soon" },
		"empty":      func(w *workv1.ManifestWork) { w.Spec.Workload.Manifests = nil },
		"metadata.name": func(w *workv1.ManifestWork) {
			w.Spec.Workload.Manifests[0].Raw = []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}`)
		},
		"bytes": func(w *workv1.ManifestWork) {
			w.Spec.Workload.Manifests[0].Raw = []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"` +
				strings.Repeat("x", 1<<20) + `"}}`)
		},
	} {
		w := namespaceWork(t, 1)
		mutate(w)
		_, err := d.Apply(ctx, w)
		if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: Apply = %v, want a Permanent error saying %q", what, err, what)
		}
	}
	if err := d.Delete(ctx, "", "x"); !failure.IsPermanent(err) {
		t.Errorf("Delete without a consumer: %v, want Permanent", err)
	}
	if n := creates.Load(); n != 0 {
		t.Fatalf("%d Jobs created for invalid works", n)
	}
}

// TestForbiddenIsPermanent: an adapter whose Role lacks a permission fails
// at New, naming what is missing and the namespace; a create refused later
// is Permanent; an unavailable API server is Transient.
func TestForbiddenIsPermanent(t *testing.T) {
	ctx := testContext(t)
	cs := fake.NewClientset()
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		attrs := review.Spec.ResourceAttributes
		review.Status.Allowed = !(attrs.Resource == "pods" && attrs.Verb == "watch")
		return true, review, nil
	})
	_, err := New(ctx, cs, baseOptions(t))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "watch pods") || !strings.Contains(err.Error(), "hyperfleet-system") {
		t.Fatalf("New without watch on pods: %v, want Permanent naming the permission and the namespace", err)
	}

	d, cs2 := newFake(t, nil)
	cs2.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("RBAC: no"))
	})
	if _, err := d.Apply(ctx, namespaceWork(t, 1)); !failure.IsPermanent(err) || !apierrors.IsForbidden(err) {
		t.Fatalf("Apply with create forbidden: %v, want Permanent and Forbidden", err)
	}
	d3, cs3 := newFake(t, nil)
	cs3.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd is down")
	})
	if _, err := d3.Apply(ctx, namespaceWork(t, 1)); err == nil || failure.IsPermanent(err) {
		t.Fatalf("Apply with the API unavailable: %v, want Transient", err)
	}
}

// TestWatchClosesWhenContextEnds and on Close.
func TestWatchCloses(t *testing.T) {
	d, _ := newFake(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := d.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitClosed(t, ch)
	d.Close()
	waitClosed(t, ch2)
	if _, err := d.Watch(context.Background()); !failure.IsPermanent(err) {
		t.Fatalf("Watch after Close: %v, want Permanent", err)
	}
}

func waitClosed(t *testing.T, ch <-chan maestro.WorkEvent) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

// TestStartupStateIsNotNews: Jobs that exist when the delivery starts are
// known to Get but not sent on the watch.
func TestStartupStateIsNotNews(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, nil)
	w := namespaceWork(t, 1)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	updateJobStatus(t, cs, job, func(s *batchv1.JobStatus) {
		s.Succeeded = 1
		s.Conditions = finished(batchv1.JobComplete, "CompletionsReached", "")
	})
	d.Close()

	d2, err := New(ctx, cs, baseOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	evs, err := d2.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d2.Get(ctx, w.Namespace, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := condStatus(g, workv1.WorkAvailable); s != metav1.ConditionTrue {
		t.Fatalf("Get after a restart: Available=%s, want True", s)
	}
	select {
	case ev := <-evs:
		t.Fatalf("startup sent %s for %s", ev.Type, ev.Work.Name)
	case <-time.After(300 * time.Millisecond): // a quiet period: asserting absence
	}
}

// TestMetricsObserveCalls: every API call is observed with its result.
func TestMetricsObserveCalls(t *testing.T) {
	ctx := testContext(t)
	rec := &recorder{}
	d, _ := newFake(t, func(o *Options) { o.Observer = rec })
	w := namespaceWork(t, 1)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	got := rec.calls()
	for _, want := range []string{"create selfsubjectaccessreviews ok", "create jobs ok", "create configmaps ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("observed calls %q lack %q", got, want)
		}
	}
}

type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) KubeRequest(verb, resource, result string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, verb+" "+resource+" "+result)
}

func (r *recorder) calls() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, "; ")
}

// TestPrometheusMetrics: the delivery's calls land in
// hyperfleet_adapter_kube_request_duration_seconds{verb,resource,result}.
func TestPrometheusMetrics(t *testing.T) {
	ctx := testContext(t)
	reg := prometheus.NewRegistry()
	m := pipeline.NewMetrics(reg, "namespace")
	d, cs := newFake(t, func(o *Options) { o.Observer = m })
	w := namespaceWork(t, 1)
	// Lose the create race once: an already_exists, then a get.
	var raced atomic.Bool
	cs.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced.Swap(true) {
			return false, nil, nil
		}
		job := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job).DeepCopy()
		if err := cs.Tracker().Add(job); err != nil {
			t.Errorf("tracker add: %v", err)
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "batch", Resource: "jobs"}, job.Name)
	})
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool {
		return mf.GetName() == "hyperfleet_adapter_kube_request_duration_seconds"
	})
	if i < 0 {
		t.Fatalf("gathered %v; want the kube request histogram", mfs)
	}
	got := map[string]uint64{}
	for _, metric := range mfs[i].GetMetric() {
		l := map[string]string{}
		for _, p := range metric.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got[l["verb"]+" "+l["resource"]+" "+l["result"]] = metric.GetHistogram().GetSampleCount()
	}
	for series, want := range map[string]uint64{
		"create jobs already_exists":         1,
		"get jobs ok":                        1,
		"create configmaps ok":               1,
		"create selfsubjectaccessreviews ok": uint64(len(permissions)),
	} {
		if got[series] != want {
			t.Errorf("series %q observed %d times, want %d (all: %v)", series, got[series], want, got)
		}
	}
}
