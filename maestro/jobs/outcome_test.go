package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

func terminated(code int32, reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg}}
}

// TestObserve is the outcome mapping: what a Job and its pod say becomes
// phase, reason and message.
func TestObserve(t *testing.T) {
	srSuccess := readSample(t, "status-reporter-result-success.json")
	srFailure := readSample(t, "status-reporter-result-failure.json")
	deprecated := readSample(t, "maestro-cli-statusresult-deprecated.json")
	var written struct {
		Status batchv1.JobStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(readSample(t, "status-reporter-job-status-written.json")), &written); err != nil {
		t.Fatal(err)
	}

	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "maestro-apply-w-0123456789", Namespace: "ns", UID: "u1"}}
	cases := []struct {
		name        string
		status      batchv1.JobStatus
		cli         *corev1.ContainerState // nil: no pod known
		wantPhase   Phase
		wantReason  string
		wantMessage string // substring
	}{
		{name: "status-reporter success",
			status:    batchv1.JobStatus{Conditions: []batchv1.JobCondition{reporterCondition(corev1.ConditionTrue, "Applied", "ManifestWork applied")}},
			wantPhase: PhaseSucceeded, wantReason: "Applied", wantMessage: "ManifestWork applied"},
		{name: "status-reporter failure (contract sample), before the Job controller finishes the Job",
			status:    written.Status,
			wantPhase: PhaseFailed, wantReason: "MissingPermissions", wantMessage: "lacks required IAM permissions"},
		{name: "status-reporter condition wins over the Job's own",
			status: batchv1.JobStatus{Conditions: append(finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
				reporterCondition(corev1.ConditionFalse, "AdapterOOMKilled", "Adapter container was killed due to out of memory (OOMKilled)"))},
			wantPhase: PhaseFailed, wantReason: "AdapterOOMKilled"},
		{name: "not started",
			status:    batchv1.JobStatus{},
			wantPhase: PhasePending, wantReason: ReasonJobPending},
		{name: "image cannot be pulled",
			status:    batchv1.JobStatus{Active: 1},
			cli:       &corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}},
			wantPhase: PhasePending, wantReason: "ImagePullBackOff", wantMessage: "Back-off pulling image"},
		{name: "container being created",
			status:    batchv1.JobStatus{Active: 1},
			cli:       &corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			wantPhase: PhasePending, wantReason: ReasonJobPending},
		{name: "running",
			status:    batchv1.JobStatus{Active: 1},
			cli:       &corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			wantPhase: PhaseRunning, wantReason: ReasonJobRunning},
		{name: "complete, pod status not yet terminated in the cache",
			status:    batchv1.JobStatus{Succeeded: 1, Conditions: finished(batchv1.JobComplete, "CompletionsReached", "")},
			cli:       &corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			wantPhase: PhaseRunning, wantReason: ReasonJobRunning},
		{name: "complete, no pod known",
			status:    batchv1.JobStatus{Succeeded: 1, Conditions: finished(batchv1.JobComplete, "CompletionsReached", "")},
			wantPhase: PhaseSucceeded, wantReason: ReasonJobSucceeded},
		{name: "complete, results (status-reporter format) in the termination message",
			status:    batchv1.JobStatus{Succeeded: 1, Conditions: finished(batchv1.JobComplete, "CompletionsReached", "")},
			cli:       ptrTo(terminated(0, "Completed", srSuccess)),
			wantPhase: PhaseSucceeded, wantReason: "ValidationPassed", wantMessage: "validated successfully"},
		{name: "complete, results (the spike's format) in the termination message",
			status:    batchv1.JobStatus{Succeeded: 1, Conditions: finished(batchv1.JobComplete, "CompletionsReached", "")},
			cli:       ptrTo(terminated(0, "Completed", deprecated)),
			wantPhase: PhaseSucceeded, wantReason: ReasonJobSucceeded, wantMessage: "applied successfully"},
		{name: "complete with exit 0 but results saying failure",
			status:    batchv1.JobStatus{Succeeded: 1, Conditions: finished(batchv1.JobComplete, "CompletionsReached", "")},
			cli:       ptrTo(terminated(0, "Completed", srFailure)),
			wantPhase: PhaseFailed, wantReason: "MissingPermissions"},
		{name: "failed: results (status-reporter format) give the reason",
			status:    batchv1.JobStatus{Failed: 1, Conditions: finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")},
			cli:       ptrTo(terminated(2, "Error", `{"status":"failure","reason":"ConsumerNotRegistered","message":"consumer cluster-x is not registered with Maestro"}`)),
			wantPhase: PhaseFailed, wantReason: "ConsumerNotRegistered", wantMessage: "not registered"},
		{name: "failed: results (the spike's format, with a reason) give the reason",
			status:    batchv1.JobStatus{Failed: 1, Conditions: finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")},
			cli:       ptrTo(terminated(4, "Error", `{"manifestWorkName":"w","consumer":"c","status":"Failed","reason":"Timeout","message":"--timeout ran out"}`)),
			wantPhase: PhaseFailed, wantReason: "Timeout", wantMessage: "--timeout ran out"},
		{name: "failed: log tail (FallbackToLogsOnError) and the exit code",
			status: batchv1.JobStatus{Failed: 1, Conditions: finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")},
			cli: ptrTo(terminated(3, "Error", "time=10:00:00 level=INFO msg=connecting\n"+
				"maestro-cli apply: Maestro at maestro-grpc:8090 is unreachable\n")),
			wantPhase: PhaseFailed, wantReason: "BackoffLimitExceeded", wantMessage: "exited with code 3: maestro-cli apply: Maestro at maestro-grpc:8090 is unreachable"},
		{name: "failed: OOM-killed",
			status:    batchv1.JobStatus{Failed: 1, Conditions: finished(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")},
			cli:       ptrTo(terminated(137, ReasonOOMKilled, "")),
			wantPhase: PhaseFailed, wantReason: ReasonOOMKilled, wantMessage: "memory limit"},
		{name: "failed: deadline, pod still terminating",
			status:    batchv1.JobStatus{Failed: 1, Conditions: finished(batchv1.JobFailed, ReasonDeadline, "Job was active longer than specified deadline")},
			cli:       &corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			wantPhase: PhaseFailed, wantReason: ReasonDeadline, wantMessage: "longer than specified deadline"},
		{name: "failure target (the Job controller's forerunner of Failed)",
			status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue,
				Reason: ReasonDeadline, Message: "Job was active longer than specified deadline"}}},
			wantPhase: PhaseFailed, wantReason: ReasonDeadline},
		{name: "failed without any reason",
			status:    batchv1.JobStatus{Failed: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}},
			wantPhase: PhaseFailed, wantReason: ReasonJobFailed},
		{name: "a False Complete condition is not an end",
			status:    batchv1.JobStatus{Active: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionFalse}}},
			wantPhase: PhaseRunning, wantReason: ReasonJobRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := job.DeepCopy()
			j.Status = c.status
			var pod *corev1.Pod
			if c.cli != nil {
				pod = jobPod(j, *c.cli)
			}
			got := observe(j, pod, "Available")
			if got.Phase != c.wantPhase || got.Reason != c.wantReason || !strings.Contains(got.Message, c.wantMessage) {
				t.Errorf("observe = %+v, want phase %s, reason %s, message containing %q", got, c.wantPhase, c.wantReason, c.wantMessage)
			}
		})
	}
}

// TestNewestPodOfAnotherJobIgnored: a pod left from an earlier Job of the
// same name (TTL deleted it, the next event recreated it) is not this Job's.
func TestObserveIgnoresOtherJobsPods(t *testing.T) {
	d, cs := newFake(t, nil)
	ctx := testContext(t)
	w := namespaceWork(t, 1)
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	job = updateJobStatus(t, cs, job, func(s *batchv1.JobStatus) { s.Active = 1 })
	old := jobPod(job, terminated(137, ReasonOOMKilled, ""))
	old.OwnerReferences[0].UID = "an-earlier-job"
	if _, err := cs.CoreV1().Pods(job.Namespace).Create(ctx, old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.await(ctx, workKey{w.Namespace, w.Name}, func(st runState, ok bool) bool {
		objs, _ := d.pods.GetIndexer().ByIndex(indexJob, job.Name)
		return len(objs) == 1
	}); err != nil {
		t.Fatal(err)
	}
	if p := d.newestPod(job); p != nil {
		t.Fatalf("newestPod = %s, a pod of another Job", p.Name)
	}
}

func TestParseResult(t *testing.T) {
	for in, want := range map[string]bool{
		readSample(t, "status-reporter-result-success.json"):      true,
		readSample(t, "status-reporter-result-failure.json"):      true,
		readSample(t, "maestro-cli-statusresult-deprecated.json"): true,
		`{"status":"maybe"}`:           false,
		"maestro-cli apply: it failed": false,
		"":                             false,
		`{"status":`:                   false,
	} {
		if _, ok := ParseResult(in); ok != want {
			t.Errorf("ParseResult(%q) ok = %v, want %v", in, ok, want)
		}
	}
}

// TestReportFromSynthesizedStatus: the synthesised work, through the
// unchanged handlers.Report, gives what the issue asks: success is Applied
// and Available True; a failure is Applied/Available False with the reason
// and Health False naming it; a running Job is Unknown with its reason.
func TestReportFromSynthesizedStatus(t *testing.T) {
	w := namespaceWork(t, 5)
	o := baseOptions(t).withDefaults()
	r := run{consumer: w.Namespace, name: w.Name, gen: 5, op: OpApply}
	job, err := o.job(r, workMeta{Labels: w.Labels, Annotations: w.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	res := &hyperfleet.Resource{Kind: hyperfleet.KindCluster, ID: "c1", Generation: 5}
	report := func(out Outcome) map[string]hyperfleet.Condition {
		synth := synthesize(job, r, out)
		rep := handlers.Report("namespace", handlers.Target{Resource: res, Cluster: res}, false,
			[]handlers.Observed{{Name: w.Name, Consumer: w.Namespace, Work: synth}}, time.Now())
		conds := map[string]hyperfleet.Condition{}
		for _, c := range rep.Conditions {
			conds[c.Type] = c
		}
		return conds
	}

	ok := report(Outcome{PhaseSucceeded, "Applied", "ManifestWork applied"})
	for _, typ := range []string{hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable, hyperfleet.ConditionHealth} {
		if ok[typ].Status != hyperfleet.True {
			t.Errorf("success: %s = %+v, want True", typ, ok[typ])
		}
	}
	for _, reason := range []string{ReasonDeadline, ReasonOOMKilled, "BackoffLimitExceeded", ReasonJobFailed, "ConsumerNotRegistered"} {
		bad := report(Outcome{PhaseFailed, reason, "details"})
		if c := bad[hyperfleet.ConditionApplied]; c.Status != hyperfleet.False || c.Reason != reason {
			t.Errorf("%s: Applied = %+v, want False with reason %s", reason, c, reason)
		}
		if c := bad[hyperfleet.ConditionAvailable]; c.Status != hyperfleet.False || c.Reason != reason {
			t.Errorf("%s: Available = %+v, want False with reason %s", reason, c, reason)
		}
		if c := bad[hyperfleet.ConditionHealth]; c.Status != hyperfleet.False || !strings.Contains(c.Message, reason+":") {
			t.Errorf("%s: Health = %+v, want False with the reason in its message", reason, c)
		}
	}
	running := report(Outcome{PhasePending, "ErrImagePull", "pull access denied"})
	if c := running[hyperfleet.ConditionApplied]; c.Status != hyperfleet.Unknown {
		t.Errorf("pending: Applied = %+v, want Unknown", c)
	}
	pending := synthesize(job, r, Outcome{PhasePending, "ErrImagePull", "pull access denied"})
	if c := meta.FindStatusCondition(pending.Status.Conditions, workv1.WorkProgressing); c == nil || c.Reason != "ErrImagePull" {
		t.Errorf("pending: Progressing = %+v, want the waiting reason", c)
	}
	if maestro.StatusSettled(pending) {
		t.Error("the pipeline would stop waiting for a run that has not finished")
	}
	if c := running[hyperfleet.ConditionHealth]; c.Status != hyperfleet.True {
		t.Errorf("pending: Health = %+v, want True (nothing failed yet)", c)
	}

	// The synthesised work carries what the pipeline maps status back with.
	synth := synthesize(job, r, Outcome{Phase: PhaseSucceeded})
	if synth.Labels[workmeta.LabelAdapter] != w.Labels[workmeta.LabelAdapter] ||
		synth.Annotations[workmeta.AnnotationResourceHref] != w.Annotations[workmeta.AnnotationResourceHref] {
		t.Errorf("synthesised work lost labels %v or annotations %v", synth.Labels, synth.Annotations)
	}
	if c := meta.FindStatusCondition(synth.Status.Conditions, workv1.WorkApplied); c == nil || c.ObservedGeneration != synth.Generation || synth.Generation != 5 {
		t.Errorf("conditions %+v not at the work's generation %d (want 5)", synth.Status.Conditions, synth.Generation)
	}
}
