package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking the change):\n--- got\n%s", path, got)
	}
}

// stored is what the golden files show of a stored object: everything but
// what the (fake) server adds.
func stored(t *testing.T, obj interface{ GetObjectMeta() metav1.Object }) []byte {
	t.Helper()
	m := obj.GetObjectMeta()
	m.SetManagedFields(nil)
	m.SetResourceVersion("")
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoldenApplyJob: the Job and ConfigMap Apply creates for the namespace
// adapter's work, as the spike's template with the status-reporter sidecar
// and the Maestro mTLS Secret, and without either.
func TestGoldenApplyJob(t *testing.T) {
	for name, mutate := range map[string]func(*Options){
		"job-apply-namespace.yaml": nil,
		"job-apply-namespace-reporter-tls.yaml": func(o *Options) {
			o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:v1"
			o.Maestro.TLSSecret = "maestro-client-tls"
			o.CLITimeout = 2 * time.Minute
			o.ActiveDeadline = 4 * time.Minute
			o.TTLAfterFinished = 30 * time.Minute
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			d, cs := newFake(t, mutate)
			w := namespaceWork(t, 3)
			if _, err := d.Apply(ctx, w); err != nil {
				t.Fatal(err)
			}
			job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
			cm, err := cs.CoreV1().ConfigMaps(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the Job's ConfigMap: %v", err)
			}
			golden(t, name, append(append(stored(t, job), "---\n"...), stored(t, cm)...))
		})
	}
}

// TestConfigMapHoldsTheWork: maestro-cli reads back exactly the work the
// handler built, with the delete propagation made explicit.
func TestConfigMapHoldsTheWork(t *testing.T) {
	ctx := testContext(t)
	d, cs := newFake(t, func(o *Options) { o.Maestro.DeletePropagation = workv1.DeletePropagationPolicyTypeOrphan })
	w := namespaceWork(t, 2)
	w.Spec.DeleteOption = nil // the handler sets one; the delivery fills in a missing one
	if _, err := d.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	job := onlyJob(t, cs, d.opts.Namespace, w, OpApply)
	cm, err := cs.CoreV1().ConfigMaps(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var back workv1.ManifestWork
	if err := json.Unmarshal([]byte(cm.Data[ConfigMapKey]), &back); err != nil {
		t.Fatalf("ConfigMap key %s is not a ManifestWork: %v", ConfigMapKey, err)
	}
	if back.Name != w.Name || back.Namespace != w.Namespace || back.Annotations[workmeta.AnnotationGeneration] != "2" {
		t.Errorf("ConfigMap work is %s/%s at generation %q, want %s/%s at 2", back.Namespace, back.Name,
			back.Annotations[workmeta.AnnotationGeneration], w.Namespace, w.Name)
	}
	if len(back.Spec.Workload.Manifests) != len(w.Spec.Workload.Manifests) ||
		!bytes.Equal(back.Spec.Workload.Manifests[0].Raw, w.Spec.Workload.Manifests[0].Raw) {
		t.Error("ConfigMap work's manifests differ from the handler's")
	}
	if back.Spec.DeleteOption == nil || back.Spec.DeleteOption.PropagationPolicy != workv1.DeletePropagationPolicyTypeOrphan {
		t.Errorf("deleteOption %+v, want Orphan (the configured propagation)", back.Spec.DeleteOption)
	}
	// The ConfigMap goes with its Job.
	if refs := cm.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Job" || refs[0].Name != job.Name {
		t.Errorf("ConfigMap owners %+v, want the Job %s", refs, job.Name)
	}
	// The Job mounts it and maestro-cli reads it from there.
	args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--manifest-file="+ManifestDir+"/"+ConfigMapKey) {
		t.Errorf("maestro-cli args %q do not read the ConfigMap's file", args)
	}
}

// TestJobNames: names are valid DNS labels of at most 63 characters,
// deterministic, readable, and different for every run.
func TestJobNames(t *testing.T) {
	long := strings.Repeat("hyperfleet-cluster-with-a-very-long-name.", 6)
	seen := map[string]run{}
	for _, r := range []run{
		{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 1, op: OpApply, digest: "a1"},
		{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 2, op: OpApply, digest: "a1"},
		{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 2, op: OpApply, digest: "b2"},
		{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 2, op: OpApply, digest: "b2", attempt: 1},
		{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 2, op: OpDelete},
		{consumer: "cluster-east-2", name: "hyperfleet-cluster-west-1-namespace", gen: 2, op: OpDelete},
		{consumer: "c", name: long, gen: 9223372036854775807, op: OpDelete, attempt: 99},
		{consumer: "c", name: long + "x", gen: 9223372036854775807, op: OpDelete, attempt: 99},
		{consumer: "c", name: "UPPER.dots_and_underscores", gen: 1, op: OpApply},
		{consumer: "c", name: "---", gen: 1, op: OpApply},
	} {
		name := r.jobName()
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			t.Errorf("run %+v: name %q is not a DNS label: %v", r, name, msgs)
		}
		if len(name) > 63 {
			t.Errorf("run %+v: name %q has %d characters", r, name, len(name))
		}
		if name != r.jobName() {
			t.Errorf("run %+v: name is not deterministic", r)
		}
		if !strings.HasPrefix(name, "maestro-"+r.op+"-") {
			t.Errorf("name %q does not start with maestro-%s-", name, r.op)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("runs %+v and %+v share the name %q", prev, r, name)
		}
		seen[name] = r
		if msgs := validation.IsValidLabelValue(r.id()); len(msgs) > 0 {
			t.Errorf("run id %q is not a label value: %v", r.id(), msgs)
		}
	}
	if got := (run{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 1, op: OpApply}).jobName(); !strings.Contains(got, "hyperfleet-cluster-west-1-namespace") {
		t.Errorf("name %q does not show the work's name", got)
	}
}

// TestJobCarriesWhatTheSpikeAsks: the template's labels, flags, results
// path, resources and Job limits; the status-reporter configured as its
// README says.
func TestJobCarriesWhatTheSpikeAsks(t *testing.T) {
	o := baseOptions(t)
	o.StatusReporterImage = "quay.io/openshift-hyperfleet/status-reporter:v1"
	o = o.withDefaults()
	r := run{consumer: "cluster-west-1", name: "hyperfleet-cluster-west-1-namespace", gen: 4, op: OpApply, digest: "d", eventID: "evt-1"}
	job, err := o.job(r, workMeta{Labels: map[string]string{workmeta.LabelAdapter: "namespace", "bad key!": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Annotations[AnnotationSentinelEventID] != "evt-1" || env(job.Spec.Template.Spec.Containers[0], "EVENT_ID") != "evt-1" {
		t.Errorf("Job annotations %v, maestro-cli env %v: want the CloudEvent id evt-1 on both", job.Annotations, job.Spec.Template.Spec.Containers[0].Env)
	}
	if other := r; true {
		other.eventID = "evt-2"
		if other.id() != r.id() || other.jobName() != job.Name {
			t.Error("the CloudEvent id changed the run's identity: a re-published event would start another Job")
		}
	}
	if job.Labels[LabelComponent] != ComponentValue || job.Labels[LabelEventID] != r.id() || job.Labels[workmeta.LabelAdapter] != "namespace" {
		t.Errorf("Job labels %v lack the component, event id or the work's labels", job.Labels)
	}
	if _, ok := job.Labels["bad key!"]; ok {
		t.Error("an invalid label key of the work was copied onto the Job")
	}
	if ptrDeref(job.Spec.BackoffLimit) != 0 || ptrDeref(job.Spec.ActiveDeadlineSeconds) != 600 || ptrDeref(job.Spec.TTLSecondsAfterFinished) != 3600 {
		t.Errorf("backoffLimit %v, activeDeadlineSeconds %v, ttlSecondsAfterFinished %v; want 0, 600, 3600",
			job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds, job.Spec.TTLSecondsAfterFinished)
	}
	pod := job.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || pod.ServiceAccountName != "maestro-cli" {
		t.Errorf("restartPolicy %q, serviceAccountName %q", pod.RestartPolicy, pod.ServiceAccountName)
	}
	if len(pod.Containers) != 2 {
		t.Fatalf("%d containers, want maestro-cli and the status-reporter", len(pod.Containers))
	}
	cli, rep := pod.Containers[0], pod.Containers[1]
	args := strings.Join(append(cli.Command, cli.Args...), " ")
	for _, want := range []string{"maestro-cli apply", "--consumer=cluster-west-1", "--name=hyperfleet-cluster-west-1-namespace",
		"--watch", "--timeout=5m0s", "--grpc-endpoint=maestro-grpc.maestro:8090", "--http-endpoint=http://maestro.maestro:8000",
		"--source-id=hyperfleet-adapter-namespace", "--results-path=" + ResultsFile, "--results-format=status-reporter"} {
		if !strings.Contains(args, want) {
			t.Errorf("maestro-cli command %q lacks %q", args, want)
		}
	}
	if env(cli, EnvInsecure) != "true" {
		t.Errorf("maestro-cli %s %q, want true: the options allow plaintext and the CLI refuses it without", EnvInsecure, env(cli, EnvInsecure))
	}
	if env(cli, "RESULTS_PATH") != ResultsFile {
		t.Errorf("maestro-cli RESULTS_PATH %q, want %s", env(cli, "RESULTS_PATH"), ResultsFile)
	}
	if cli.Resources.Requests.Cpu().String() != "50m" || cli.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("maestro-cli resources %+v, want the spike's", cli.Resources)
	}
	if rep.Name != ContainerReporter || env(rep, "JOB_NAME") != job.Name || env(rep, "RESULTS_PATH") != ResultsFile ||
		env(rep, "ADAPTER_CONTAINER_NAME") != ContainerCLI || env(rep, "CONDITION_TYPE") != "Available" || env(rep, "MAX_WAIT_TIME_SECONDS") != "315" {
		t.Errorf("status-reporter env %+v is not configured for this Job", rep.Env)
	}
	if !sharesMount(cli, rep, ResultsDir) {
		t.Error("maestro-cli and the status-reporter do not share " + ResultsDir)
	}
	if !ptrDeref(pod.AutomountServiceAccountToken) {
		t.Error("the status-reporter needs the service account token")
	}

	// Without a status-reporter: no API access, the log tail as message.
	o.StatusReporterImage = ""
	job, err = o.job(run{consumer: "c", name: "w", op: OpDelete}, workMeta{})
	if err != nil {
		t.Fatal(err)
	}
	pod = job.Spec.Template.Spec
	if len(pod.Containers) != 1 || ptrDeref(pod.AutomountServiceAccountToken) {
		t.Errorf("without a status-reporter: %d containers, automount %v; want 1, false", len(pod.Containers), pod.AutomountServiceAccountToken)
	}
	if pod.Containers[0].TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %q", pod.Containers[0].TerminationMessagePolicy)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			t.Error("a delete Job mounts a ConfigMap; it has no manifest to read")
		}
	}
	if got := strings.Join(append(pod.Containers[0].Command, pod.Containers[0].Args...), " "); !strings.HasPrefix(got, "maestro-cli delete --consumer=c --name=w --watch") {
		t.Errorf("delete command %q", got)
	}
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				return "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
			}
			return e.Value
		}
	}
	return ""
}

func sharesMount(a, b corev1.Container, path string) bool {
	var va, vb string
	for _, m := range a.VolumeMounts {
		if m.MountPath == path {
			va = m.Name
		}
	}
	for _, m := range b.VolumeMounts {
		if m.MountPath == path {
			vb = m.Name
		}
	}
	return va != "" && va == vb
}

func ptrDeref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestOptionsValidate: every bad setting is named by its variable.
func TestOptionsValidate(t *testing.T) {
	good := baseOptions(t)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for env, mutate := range map[string]func(*Options){
		EnvNamespace:           func(o *Options) { o.Namespace = "" },
		EnvImage:               func(o *Options) { o.Image = "has space" },
		EnvServiceAccount:      func(o *Options) { o.ServiceAccount = "Bad_SA" },
		EnvCPURequest:          func(o *Options) { o.CPURequest = "lots" },
		EnvMemoryRequest:       func(o *Options) { o.MemoryRequest = "1Gi"; o.MemoryLimit = "256Mi" },
		EnvActiveDeadline:      func(o *Options) { o.CLITimeout = 5 * time.Minute; o.ActiveDeadline = 5 * time.Minute },
		EnvCLITimeout:          func(o *Options) { o.CLITimeout = time.Millisecond },
		EnvBackoffLimit:        func(o *Options) { o.BackoffLimit = -1 },
		EnvTTLAfterFinished:    func(o *Options) { o.TTLAfterFinished = -time.Second },
		EnvMaestroTLSSecret:    func(o *Options) { o.Maestro.TLSSecret = "no/slashes" },
		EnvGRPCEndpoint:        func(o *Options) { o.Maestro.GRPCEndpoint = "no-port" },
		EnvHTTPEndpoint:        func(o *Options) { o.Maestro.HTTPEndpoint = "http://user:pw@maestro:8000" },
		EnvSourceID:            func(o *Options) { o.Maestro.SourceID = "" },
		EnvDeletePropagation:   func(o *Options) { o.Maestro.DeletePropagation = "Background" },
		EnvStatusReporterImage: func(o *Options) { o.StatusReporterImage = "a b" },
		EnvInsecure:            func(o *Options) { o.Maestro.Insecure = false }, // plaintext without the opt-in
	} {
		o := baseOptions(t)
		mutate(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), env+":") {
			t.Errorf("%s: Validate() = %v, want an error naming %s", env, err, env)
		}
	}
	// New refuses bad options before touching the API.
	if _, err := New(context.Background(), nil, Options{}); err == nil || !strings.Contains(err.Error(), EnvNamespace) {
		t.Errorf("New with empty options: %v", err)
	}
}

// TestJobRoundTrips: the built Job round-trips through JSON
// into the typed API (no field lost, no unknown field), for both operations.
func TestJobRoundTrips(t *testing.T) {
	o := baseOptions(t).withDefaults()
	for _, op := range []string{OpApply, OpDelete} {
		job, err := o.job(run{consumer: "c", name: "w", gen: 1, op: op}, workMeta{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		var back batchv1.Job
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("%s Job does not decode strictly: %v", op, err)
		}
		if r, ok := runOf(&back); !ok || r.op != op || r.consumer != "c" || r.name != "w" || r.gen != 1 {
			t.Errorf("runOf(%s Job) = %+v, %v", op, r, ok)
		}
	}
}

// A work carrying a Secret is mounted from a Secret; any other from a
// ConfigMap. Both hold the same document under the same key.
func TestWorkHolderFollowsTheWork(t *testing.T) {
	o := baseOptions(t).withDefaults()
	plain := namespaceWork(t, 1)
	withSecret := plain.DeepCopy()
	withSecret.Spec.Workload.Manifests = append(withSecret.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{
		Raw: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n"},"data":{"k":"dg=="}}`)}})
	if holdsSecret(plain) || !holdsSecret(withSecret) {
		t.Fatalf("holdsSecret: plain %v, with a Secret %v", holdsSecret(plain), holdsSecret(withSecret))
	}
	for _, sensitive := range []bool{false, true} {
		job, err := o.job(run{consumer: "c", name: "w", gen: 1, op: OpApply, digest: "d", sensitive: sensitive}, workMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if got := holdsWorkInSecret(job); got != sensitive {
			t.Errorf("sensitive %v: Job mounts its work from a Secret: %v", sensitive, got)
		}
		if r, ok := runOf(job); !ok || r.sensitive != sensitive {
			t.Errorf("sensitive %v: run read back from the Job %+v", sensitive, r)
		}
	}
	job, _ := o.job(run{consumer: "c", name: "w", gen: 1, op: OpApply, sensitive: true}, workMeta{})
	if s := o.secret(job, []byte("doc")); string(s.Data[ConfigMapKey]) != "doc" || s.Name != job.Name || s.OwnerReferences[0].Name != job.Name {
		t.Errorf("Secret %+v does not hold the document under %s, named and owned by the Job", s, ConfigMapKey)
	}
}
