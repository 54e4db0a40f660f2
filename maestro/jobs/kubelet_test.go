package jobs

// The stand-in for the parts of a cluster the test control plane lacks (no
// kubelet, no Job controller, no status-reporter run there): for each Job
// the delivery creates, it runs the real maestro-cli binary with exactly the
// Job container's command, arguments and environment (only the volume mount
// paths rewritten to temporary directories), then writes what the
// status-reporter and the Job controller would: the status-reporter's
// condition from the results file, the Job controller's conditions and
// counts, and, without a status-reporter, a pod whose container status
// carries the exit code and the log tail the kubelet would copy
// (FallbackToLogsOnError).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// cliDir holds the maestro-cli binary; TestMain removes it.
var cliDir string

// cliBinary builds cmd/maestro-cli once per test binary.
var cliBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "jobs-maestro-cli-")
	if err != nil {
		return "", err
	}
	cliDir = dir
	out := filepath.Join(dir, "maestro-cli")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/maestro-cli")
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/maestro-cli: %w\n%s", err, b)
	}
	return out, nil
})

func requireCLI(t testing.TB) string {
	t.Helper()
	path, err := cliBinary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// podBehaviour decides what happens to one Job's pod.
type podBehaviour int

const (
	// podRuns: the pod starts and maestro-cli runs.
	podRuns podBehaviour = iota
	// podNeverStarts: the pod stays Pending (unschedulable, image not
	// pullable) until the Job controller fails the Job at its deadline.
	podNeverStarts
)

// node runs the Jobs of one namespace as they appear.
type node struct {
	t      testing.TB
	cs     kubernetes.Interface
	ns     string
	cli    string
	behave func(job *batchv1.Job) podBehaviour

	mu   sync.Mutex
	runs []nodeRun
	errs []error
	seen map[string]bool
	wg   sync.WaitGroup
}

// nodeRun is what one Job's pod did.
type nodeRun struct {
	job      string
	args     []string // as executed, mount paths rewritten
	exitCode int
	results  string
	output   string
	took     time.Duration // from the Job's appearance to maestro-cli's end
	cli      time.Duration // maestro-cli's own run, process start to exit
}

// startNode watches the namespace's Jobs and runs each new one once, in
// the background, until the test ends.
func startNode(t testing.TB, cs kubernetes.Interface, ns string, behave func(*batchv1.Job) podBehaviour) *node {
	t.Helper()
	n := &node{t: t, cs: cs, ns: ns, cli: requireCLI(t), behave: behave, seen: map[string]bool{}}
	if n.behave == nil {
		n.behave = func(*batchv1.Job) podBehaviour { return podRuns }
	}
	ctx, cancel := context.WithCancel(context.Background())
	// An informer, not a bare watch: on the test control plane's etcd 3.4
	// a watch from "now" fails with "Too large resource version" until the
	// watch cache catches up, and the reflector retries that for us.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelComponent + "=" + ComponentValue }))
	inf := factory.Batch().V1().Jobs().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		job, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		n.mu.Lock()
		dup := n.seen[job.Name]
		n.seen[job.Name] = true
		n.mu.Unlock()
		if dup {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.runJob(ctx, job); err != nil && ctx.Err() == nil {
				n.mu.Lock()
				n.errs = append(n.errs, fmt.Errorf("Job %s: %w", job.Name, err))
				n.mu.Unlock()
			}
		}()
	}}); err != nil {
		cancel()
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	syncCtx, stopSync := context.WithTimeout(ctx, waitTimeout)
	defer stopSync()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		cancel()
		t.Fatal("node: Job informer did not sync")
	}
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
		n.wg.Wait()
		for _, err := range n.errors() {
			t.Errorf("node: %v", err)
		}
	})
	return n
}

func (n *node) errors() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.errs)
}

func (n *node) history() []nodeRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.runs)
}

// runJob is the pod's life: kubelet (volumes, the container), status-reporter,
// Job controller.
func (n *node) runJob(ctx context.Context, job *batchv1.Job) error {
	start := time.Now()
	if n.behave(job) == podNeverStarts {
		// The Job controller fails a Job whose pod outlived
		// activeDeadlineSeconds. Its deadline is not waited for in real
		// time: the test says it has passed.
		return n.finishJob(job, false, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", nil)
	}
	spec := job.Spec.Template.Spec
	var cli, reporter *corev1.Container
	for i := range spec.Containers {
		switch spec.Containers[i].Name {
		case ContainerCLI:
			cli = &spec.Containers[i]
		case ContainerReporter:
			reporter = &spec.Containers[i]
		}
	}
	if cli == nil {
		return errors.New("no maestro-cli container")
	}
	dir, err := os.MkdirTemp("", "jobs-pod-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Volumes live in dir/<volume>, shared by the containers that mount them.
	for _, v := range spec.Volumes {
		host := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(host, 0o755); err != nil {
			return err
		}
		data, err := n.volumeData(ctx, v)
		if err != nil {
			return err
		}
		for k, val := range data {
			if err := os.WriteFile(filepath.Join(host, k), val, 0o644); err != nil {
				return err
			}
		}
	}
	cliMounts := mounts(dir, cli)

	cmd := cli.Command
	if len(cmd) == 0 || cmd[0] != "maestro-cli" {
		return fmt.Errorf("command %q does not run maestro-cli", cmd)
	}
	args := append(rewriteAll(cmd[1:], cliMounts), rewriteAll(cli.Args, cliMounts)...)
	proc := exec.CommandContext(ctx, n.cli, args...)
	// Exactly the container's environment: nothing of the test's (which
	// has MAESTRO_* of its own) leaks in.
	proc.Env = containerEnv(cli, job, cliMounts)
	var output bytes.Buffer
	proc.Stdout, proc.Stderr = &output, &output
	cliStart := time.Now()
	runErr := proc.Run()
	cliTook := time.Since(cliStart)
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(runErr, &exit):
		code = exit.ExitCode()
	case runErr != nil:
		return fmt.Errorf("running maestro-cli: %w", runErr)
	}
	var results string
	resultsPath := rewrite(envValue(*cli, "RESULTS_PATH"), cliMounts)
	if b, err := os.ReadFile(resultsPath); err == nil {
		results = string(b)
	}
	n.mu.Lock()
	n.runs = append(n.runs, nodeRun{job: job.Name, args: args, exitCode: code, results: results, output: output.String(), took: time.Since(start), cli: cliTook})
	n.mu.Unlock()

	if reporter != nil {
		// The status-reporter reads the results file at its RESULTS_PATH, in
		// its own mounts: the same emptyDir.
		path := rewrite(envValue(*reporter, "RESULTS_PATH"), mounts(dir, reporter))
		if err := n.report(ctx, job, envValue(*reporter, "CONDITION_TYPE"), path, code); err != nil {
			return err
		}
	}
	var pod *corev1.Pod
	if reporter == nil {
		tail := ""
		if code != 0 { // FallbackToLogsOnError: the log's tail, on error only
			tail = logTail(output.String())
		}
		if pod, err = n.createPod(ctx, job, cli.Name, code, tail); err != nil {
			return err
		}
	}
	if code == 0 {
		return n.finishJob(job, true, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", pod)
	}
	return n.finishJob(job, false, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", pod)
}

// volumeData waits for the ConfigMap or Secret a volume names, as the
// kubelet does (the pod stays ContainerCreating until it exists), and
// returns its files; other volumes start empty.
func (n *node) volumeData(ctx context.Context, v corev1.Volume) (map[string][]byte, error) {
	var kind, name string
	var get func(context.Context) (map[string][]byte, error)
	switch {
	case v.ConfigMap != nil:
		kind, name = "ConfigMap", v.ConfigMap.Name
		get = func(ctx context.Context) (map[string][]byte, error) {
			cm, err := n.cs.CoreV1().ConfigMaps(n.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			out := map[string][]byte{}
			for k, val := range cm.Data {
				out[k] = []byte(val)
			}
			return out, nil
		}
	case v.Secret != nil:
		kind, name = "Secret", v.Secret.SecretName
		get = func(ctx context.Context) (map[string][]byte, error) {
			s, err := n.cs.CoreV1().Secrets(n.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return s.Data, nil
		}
	default:
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		data, err := get(ctx)
		if err == nil {
			return data, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s never appeared: %w", kind, name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// report is the status-reporter: one condition from the results file, or
// from the container's exit when there is none (its README's rules).
func (n *node) report(ctx context.Context, job *batchv1.Job, condType, path string, code int) error {
	cond := batchv1.JobCondition{Type: batchv1.JobConditionType(condType), LastTransitionTime: metav1.Now(), LastProbeTime: metav1.Now()}
	raw, err := os.ReadFile(path)
	res, ok := ParseResult(string(raw))
	switch {
	case err == nil && ok && (res.Status == "success" || res.Status == "failure"):
		cond.Status = corev1.ConditionFalse
		if res.Status == "success" {
			cond.Status = corev1.ConditionTrue
		}
		cond.Reason, cond.Message = orDefault(res.Reason, "NoReasonProvided"), orDefault(res.Message, "No message provided")
	case err == nil:
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "InvalidResultFormat", "Failed to parse adapter result"
	case code != 0:
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "AdapterExitedWithError", fmt.Sprintf("Adapter container exited with code %d: Error", code)
	default:
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "AdapterMissingResults", "Adapter container exited successfully (code 0) but did not produce a valid result file"
	}
	_, err = setJobStatus(n.cs, job, func(s *batchv1.JobStatus) {
		s.Conditions = append(s.Conditions, cond)
	})
	return err
}

// createPod is the pod the Job controller would have made, with the status
// the kubelet reports once maestro-cli ended.
func (n *node) createPod(ctx context.Context, job *batchv1.Job, container string, code int, message string) (*corev1.Pod, error) {
	labels := map[string]string{batchv1.JobNameLabel: job.Name, batchv1.ControllerUidLabel: string(job.UID)}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-x7k2p", Namespace: job.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	created, err := n.cs.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	now := metav1.Now()
	phase, reason := corev1.PodSucceeded, "Completed"
	if code != 0 {
		phase, reason = corev1.PodFailed, "Error"
	}
	created.Status = corev1.PodStatus{
		Phase: phase, StartTime: &now,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: container, Image: job.Spec.Template.Spec.Containers[0].Image, ImageID: "sha256:0",
			ContainerID: "containerd://0",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(code), Reason: reason, Message: message, StartedAt: now, FinishedAt: now, ContainerID: "containerd://0",
			}},
		}},
	}
	out, err := n.cs.CoreV1().Pods(job.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod status: %w", err)
	}
	return out, nil
}

// finishJob is the Job controller's end of a Job: the interim condition
// (SuccessCriteriaMet or FailureTarget), then Complete or Failed with the
// counts and times the API server's validation asks for.
func (n *node) finishJob(job *batchv1.Job, ok bool, reason, msg string, pod *corev1.Pod) error {
	_, err := setJobStatus(n.cs, job, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		if s.StartTime == nil {
			s.StartTime = &now
		}
		typ, lead := batchv1.JobFailed, batchv1.JobFailureTarget
		if ok {
			typ, lead = batchv1.JobComplete, batchv1.JobSuccessCriteriaMet
			s.Succeeded = 1
			s.CompletionTime = &now
		} else {
			s.Failed = 1
		}
		s.Active = 0
		s.Ready = ptrTo[int32](0)
		s.Terminating = ptrTo[int32](0)
		s.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		s.Conditions = append(s.Conditions,
			batchv1.JobCondition{Type: lead, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
			batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
		)
	})
	return err
}

// mounts maps a container's mount paths to the host directories of their
// volumes.
func mounts(dir string, c *corev1.Container) map[string]string {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		out[m.MountPath] = filepath.Join(dir, m.Name)
	}
	return out
}

// rewrite maps a path under a mount point to the host; anything else is
// left alone. Flags are rewritten in their value (--flag=/path).
func rewrite(s string, mounts map[string]string) string {
	prefix := ""
	if i := strings.Index(s, "="); strings.HasPrefix(s, "--") && i > 0 {
		prefix, s = s[:i+1], s[i+1:]
	}
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) }) // longest first
	for _, p := range paths {
		if s == p || strings.HasPrefix(s, p+"/") {
			return prefix + mounts[p] + strings.TrimPrefix(s, p)
		}
	}
	return prefix + s
}

func rewriteAll(in []string, mounts map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = rewrite(s, mounts)
	}
	return out
}

// containerEnv is the container's environment as the kubelet sets it, with
// mount paths rewritten.
func containerEnv(c *corev1.Container, job *batchv1.Job, mounts map[string]string) []string {
	var env []string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.namespace":
				v = job.Namespace
			case "metadata.name":
				v = job.Name + "-x7k2p"
			}
		}
		env = append(env, e.Name+"="+rewrite(v, mounts))
	}
	return env
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// logTail is what FallbackToLogsOnError copies: the last 80 lines, at most
// 2048 bytes.
func logTail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > 2048 {
		out = out[len(out)-2048:]
	}
	return out
}
