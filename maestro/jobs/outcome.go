package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Reasons the delivery gives when nothing more specific is known. Reasons
// from the status-reporter, maestro-cli's results file, the Job controller
// (DeadlineExceeded, BackoffLimitExceeded) and the kubelet (OOMKilled,
// ErrImagePull, ...) are passed on as they are.
const (
	ReasonJobPending   = "JobPending"
	ReasonJobRunning   = "JobRunning"
	ReasonJobSucceeded = "JobSucceeded"
	ReasonJobFailed    = "JobFailed"
	ReasonDeadline     = "DeadlineExceeded"
	ReasonOOMKilled    = "OOMKilled"
)

// Phase is where a run is.
type Phase string

const (
	PhasePending   Phase = "Pending" // no pod has started yet
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
)

// Outcome is what became of one run, as far as the Job and its pod tell.
type Outcome struct {
	Phase   Phase
	Reason  string
	Message string
}

// Finished reports whether the run has its final outcome.
func (o Outcome) Finished() bool { return o.Phase == PhaseSucceeded || o.Phase == PhaseFailed }

// Result is maestro-cli's results file, in either of the formats it writes
// (CONTRACTS.md §5): the status-reporter's {status: success|failure, reason,
// message} or the spike's {manifestWorkName, consumer, status:
// Applied|Failed|InProgress, message}.
type Result struct {
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// The spike's format.
	ManifestWorkName string `json:"manifestWorkName"`
	Consumer         string `json:"consumer"`
}

// ParseResult reads a results file. ok is false when data is not one (an
// empty file, a log tail the kubelet fell back to, another JSON shape).
func ParseResult(data string) (r Result, ok bool) {
	data = strings.TrimSpace(data)
	if !strings.HasPrefix(data, "{") {
		return Result{}, false
	}
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return Result{}, false
	}
	switch r.Status {
	case "success", "failure", "Applied", "Deleted", "Failed", "InProgress":
		return r, true
	}
	return Result{}, false
}

// Verdict maps the result onto a phase: success/Applied/Deleted succeed,
// failure/Failed fail, InProgress has not finished.
func (r Result) Verdict() Phase {
	switch r.Status {
	case "success", "Applied", "Deleted":
		return PhaseSucceeded
	case "failure", "Failed":
		return PhaseFailed
	}
	return PhaseRunning
}

// observe derives a run's outcome from its Job and newest pod (nil when
// none is known), reporterCondition naming the condition the
// status-reporter writes. In order:
//
//  1. The status-reporter's condition on the Job, when present, is the
//     verdict: True succeeded, False failed, with its reason.
//  2. Until the Job controller marks the Job finished (Complete or Failed,
//     or their forerunners SuccessCriteriaMet and FailureTarget) the run is
//     pending or running; a waiting container's reason (ErrImagePull,
//     CreateContainerConfigError, ...) says why it has not started.
//  3. A finished Job whose pod is known but has not terminated in the cache
//     yet is still running: the pod's update, carrying the termination
//     message, is on its way (Jobs and pods come through separate watches).
//  4. Success: a results document in the termination message gives the
//     reason (one saying failure wins over the exit code).
//  5. Failure, by precedence: the container was OOM-killed (OOMKilled); the
//     Job ran out of time (DeadlineExceeded); a results document's reason;
//     the Job controller's reason (BackoffLimitExceeded, ...); JobFailed.
//     The message carries the exit code and the termination message's last
//     line (with FallbackToLogsOnError: maestro-cli's error line).
func observe(job *batchv1.Job, pod *corev1.Pod, reporterCondition string) Outcome {
	for _, c := range job.Status.Conditions {
		if string(c.Type) != reporterCondition {
			continue
		}
		switch c.Status {
		case corev1.ConditionTrue:
			return Outcome{PhaseSucceeded, orDefault(c.Reason, ReasonJobSucceeded), c.Message}
		case corev1.ConditionFalse:
			return Outcome{PhaseFailed, orDefault(c.Reason, ReasonJobFailed), c.Message}
		}
	}

	var succeeded, failed *batchv1.JobCondition
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			succeeded = c
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			if failed == nil || c.Type == batchv1.JobFailed {
				failed = c
			}
		}
	}
	cli := cliStatus(pod)
	if succeeded == nil && failed == nil {
		if cli != nil && cli.State.Waiting != nil && cli.State.Waiting.Reason != "" && cli.State.Waiting.Reason != "ContainerCreating" {
			return Outcome{PhasePending, cli.State.Waiting.Reason, cli.State.Waiting.Message}
		}
		if job.Status.Active > 0 && (cli == nil || cli.State.Running != nil) {
			return Outcome{PhaseRunning, ReasonJobRunning, fmt.Sprintf("maestro-cli Job %s is running.", job.Name)}
		}
		return Outcome{PhasePending, ReasonJobPending, fmt.Sprintf("maestro-cli Job %s has not started yet.", job.Name)}
	}

	deadline := failed != nil && failed.Reason == ReasonDeadline
	var term *corev1.ContainerStateTerminated
	if cli != nil {
		term = cli.State.Terminated
	}
	if pod != nil && term == nil && !deadline && pod.DeletionTimestamp == nil {
		return Outcome{PhaseRunning, ReasonJobRunning, fmt.Sprintf("maestro-cli Job %s finished; waiting for its pod's final status.", job.Name)}
	}
	var res Result
	var haveResult bool
	if term != nil {
		res, haveResult = ParseResult(term.Message)
	}

	if failed == nil {
		if haveResult && res.Verdict() == PhaseFailed {
			return Outcome{PhaseFailed, orDefault(res.Reason, ReasonJobFailed), res.Message}
		}
		if haveResult {
			return Outcome{PhaseSucceeded, orDefault(res.Reason, ReasonJobSucceeded), res.Message}
		}
		return Outcome{PhaseSucceeded, ReasonJobSucceeded, fmt.Sprintf("maestro-cli Job %s succeeded.", job.Name)}
	}

	msg := orDefault(failed.Message, "the Job failed")
	switch {
	case term != nil && term.Reason == ReasonOOMKilled:
		return Outcome{PhaseFailed, ReasonOOMKilled, fmt.Sprintf("maestro-cli was killed for exceeding its memory limit (exit code %d). %s", term.ExitCode, msg)}
	case deadline:
		return Outcome{PhaseFailed, ReasonDeadline, msg}
	case haveResult && res.Verdict() == PhaseFailed && res.Reason != "":
		return Outcome{PhaseFailed, res.Reason, res.Message}
	}
	if term != nil && term.ExitCode != 0 {
		detail := lastLine(term.Message)
		if haveResult {
			detail = res.Message
		}
		msg = fmt.Sprintf("maestro-cli exited with code %d", term.ExitCode)
		if detail != "" {
			msg += ": " + truncate(detail, 1024)
		}
	}
	return Outcome{PhaseFailed, orDefault(failed.Reason, ReasonJobFailed), msg}
}

// cliStatus is the maestro-cli container's status in pod, if any.
func cliStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	if pod == nil {
		return nil
	}
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == ContainerCLI {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// synthesize is the work as a run's Job tells it: identity, labels and
// annotations from the Job, no spec (the ConfigMap has it; nobody needs it
// back), and status conditions derived from the outcome at the work's
// generation, which is the resource generation (the only version the Job
// knows):
//
//	run     outcome    Applied  Available  Degraded  Progressing
//	apply   pending    -        -          -         True (reason: why, e.g. ErrImagePull)
//	apply   succeeded  True     True       -         -
//	apply   failed     False    False      True      -    (reason: why)
//	delete  running    -        -          -         -    deletionTimestamp set
//	delete  failed     -        -          True      -    deletionTimestamp set
//	delete  succeeded  gone
//
// All at the work's generation. Applied and Available stay absent until
// the run ends: the pipeline stops waiting once both are observed at the
// generation, whatever their status.
//
// The pipeline's wait (Applied and Available at the generation, or
// Degraded) ends on success and failure alike, and handlers.Report turns a
// failure into Applied/Available False with the reason and Health False
// (the Degraded message starts with the reason). A succeeded delete run
// means the work is gone: Get answers NotFound and Watch sends Deleted.
func synthesize(job *batchv1.Job, r run, out Outcome) *workv1.ManifestWork {
	var meta workMeta
	_ = json.Unmarshal([]byte(job.Annotations[AnnotationWorkMetadata]), &meta)
	w := &workv1.ManifestWork{
		TypeMeta: metav1.TypeMeta{APIVersion: workv1.GroupVersion.String(), Kind: "ManifestWork"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              r.name,
			Namespace:         r.consumer,
			Generation:        r.gen,
			Labels:            meta.Labels,
			Annotations:       meta.Annotations,
			CreationTimestamp: job.CreationTimestamp,
		},
	}
	if r.op == OpDelete {
		w.DeletionTimestamp = ptrTime(job.CreationTimestamp)
		if out.Phase == PhaseFailed {
			w.Status.Conditions = []metav1.Condition{
				condition(workv1.WorkDegraded, metav1.ConditionTrue, r.gen, out.Reason, degradedMessage(job, out)),
			}
		}
		return w
	}
	switch out.Phase {
	case PhaseSucceeded:
		msg := orDefault(out.Message, "maestro-cli applied the work.")
		w.Status.Conditions = []metav1.Condition{
			condition(workv1.WorkApplied, metav1.ConditionTrue, r.gen, out.Reason, msg),
			condition(workv1.WorkAvailable, metav1.ConditionTrue, r.gen, out.Reason, msg),
		}
	case PhaseFailed:
		msg := orDefault(out.Message, "maestro-cli failed.")
		w.Status.Conditions = []metav1.Condition{
			condition(workv1.WorkApplied, metav1.ConditionFalse, r.gen, out.Reason, msg),
			condition(workv1.WorkAvailable, metav1.ConditionFalse, r.gen, out.Reason, msg),
			condition(workv1.WorkDegraded, metav1.ConditionTrue, r.gen, out.Reason, degradedMessage(job, out)),
		}
	default:
		// No Applied or Available yet: the pipeline waits until both are
		// observed at the work's generation, whatever their status.
		msg := orDefault(out.Message, "maestro-cli has not finished.")
		w.Status.Conditions = []metav1.Condition{
			condition(workv1.WorkProgressing, metav1.ConditionTrue, r.gen, out.Reason, msg),
		}
	}
	return w
}

// degradedMessage leads with the reason: the report's Health condition
// quotes this message under its own reason.
func degradedMessage(job *batchv1.Job, out Outcome) string {
	return fmt.Sprintf("%s: maestro-cli Job %s/%s failed: %s", out.Reason, job.Namespace, job.Name, orDefault(out.Message, "no message"))
}

func condition(typ string, status metav1.ConditionStatus, gen int64, reason, msg string) metav1.Condition {
	return metav1.Condition{
		Type: typ, Status: status, ObservedGeneration: gen,
		Reason: reason, Message: truncate(msg, 32<<10),
	}
}

// runOf reads the run a Job is for from its labels and annotations; ok is
// false for a Job this package did not make.
func runOf(job *batchv1.Job) (r run, ok bool) {
	r.consumer = job.Annotations[AnnotationConsumer]
	r.name = job.Annotations[AnnotationWorkName]
	r.op = job.Labels[LabelOperation]
	r.digest = job.Labels[LabelDigest]
	r.eventID = job.Annotations[AnnotationSentinelEventID]
	r.sensitive = holdsWorkInSecret(job)
	gen, err1 := strconv.ParseInt(job.Labels[LabelGeneration], 10, 64)
	attempt, err2 := strconv.Atoi(job.Labels[LabelAttempt])
	if r.consumer == "" || r.name == "" || (r.op != OpApply && r.op != OpDelete) || err1 != nil || err2 != nil {
		return run{}, false
	}
	r.gen, r.attempt = gen, attempt
	return r, true
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// lastLine is the last non-blank line of a log tail.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }
