package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Labels and annotations on the Jobs (and ConfigMaps) this package creates.
const (
	// LabelComponent marks everything the delivery owns; its informers see
	// only objects carrying it.
	LabelComponent = "hyperfleet.io/component"
	// ComponentValue is LabelComponent's value (the spike's).
	ComponentValue = "maestro-handler"
	// LabelEventID carries the run's idempotency key: a hash of (consumer,
	// work name, resource generation, operation, attempt). Sentinel gives
	// every publish of the same state a new CloudEvent id, so the CloudEvent
	// id cannot be what identifies a Job: this key is the same for every
	// event that asks for the same thing.
	LabelEventID = "hyperfleet.io/event-id"
	// LabelWork is a hash of consumer/name: all Jobs of one work.
	LabelWork = "hyperfleet.io/work"
	// LabelOperation is apply or delete.
	LabelOperation = "hyperfleet.io/operation"
	// LabelGeneration is the resource generation the run is for.
	LabelGeneration = "hyperfleet.io/generation"
	// LabelAttempt counts runs of one (work, generation, operation): a
	// failed run is retried by the next event as attempt+1.
	LabelAttempt = "hyperfleet.io/attempt"
	// LabelDigest (apply runs) is a hash of the work as applied: the same
	// generation built differently (the adapter's configuration changed) is
	// another run.
	LabelDigest = "hyperfleet.io/work-digest"

	// AnnotationConsumer and AnnotationWorkName name the work in full (label
	// values are too short for some work names).
	AnnotationConsumer = "hyperfleet.io/work-consumer"
	AnnotationWorkName = "hyperfleet.io/work-name"
	// AnnotationWorkMetadata is the JSON of the work's labels and
	// annotations, so that the work Get synthesises carries them (the
	// pipeline maps status changes back to resources with them).
	AnnotationWorkMetadata = "hyperfleet.io/work-metadata"
	// AnnotationSentinelEventID is the id of the CloudEvent the run was
	// started for (also the CLI's EVENT_ID, as in the spike's template):
	// for tracing a Job back to the event, since LabelEventID cannot be
	// that id. Later events that follow the same run do not change it.
	AnnotationSentinelEventID = "hyperfleet.io/sentinel-event-id"
)

// Operations.
const (
	OpApply  = "apply"
	OpDelete = "delete"
)

// Names and paths inside the Job's pod.
const (
	ContainerCLI      = "maestro-cli"
	ContainerReporter = "status-reporter"
	// ConfigMapKey is the ConfigMap's key holding the work (JSON), mounted
	// at ManifestDir.
	ConfigMapKey = "manifestwork.json"
	ManifestDir  = "/config"
	// ResultsDir is the emptyDir both containers share; ResultsFile is
	// where maestro-cli writes its result (the status-reporter's default
	// RESULTS_PATH).
	ResultsDir  = "/results"
	ResultsFile = ResultsDir + "/adapter-result.json"
	// TLSDir is where the Maestro client Secret is mounted.
	TLSDir = "/etc/maestro/tls"

	volumeResults  = "results"
	volumeManifest = "manifest"
	volumeTLS      = "maestro-tls"
)

// maxNameLen: Job names must be DNS labels (their pods carry the name in a
// label value).
const maxNameLen = validation.DNS1123LabelMaxLength

// maxConfigMapBytes leaves headroom under the API server's 1 MiB object
// limit for the ConfigMap's metadata.
const maxConfigMapBytes = 1<<20 - 16<<10

// run identifies one execution of maestro-cli: a work, the resource
// generation it is for, the operation, the work's digest (apply) and the
// attempt.
type run struct {
	consumer, name string
	gen            int64
	op             string
	digest         string
	attempt        int
	// eventID is the CloudEvent the run was started for; it is not part
	// of the run's identity.
	eventID string
	// sensitive: the work holds a Secret, so the run's work document goes
	// in a Secret, not a ConfigMap (the digest already tells such a work
	// apart, so this is not part of the run's identity either).
	sensitive bool
}

// id is the run's idempotency key (LabelEventID).
func (r run) id() string {
	h := sha256.Sum256([]byte(strings.Join([]string{
		r.consumer, r.name, strconv.FormatInt(r.gen, 10), r.op, r.digest, strconv.Itoa(r.attempt)}, "\x00")))
	return hex.EncodeToString(h[:10])
}

// digest is LabelDigest's value for a work document.
func digest(doc []byte) string {
	h := sha256.Sum256(doc)
	return hex.EncodeToString(h[:8])
}

// jobName is deterministic, a DNS label of at most 63 characters, and
// readable: maestro-<op>-<work name, cut to fit>-<hash>.
func (r run) jobName() string {
	suffix := "-" + r.id()[:10]
	prefix := "maestro-" + r.op
	room := maxNameLen - len(prefix) - len(suffix) - 1
	readable := strings.Trim(sanitize(r.name, room), "-")
	if readable == "" {
		return prefix + suffix
	}
	return prefix + "-" + readable + suffix
}

// sanitize maps s to DNS-label characters and cuts it to n.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if b.Len() >= n {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// workLabel is LabelWork's value for a work.
func workLabel(consumer, name string) string {
	h := sha256.Sum256([]byte(consumer + "/" + name))
	return hex.EncodeToString(h[:16])
}

// workMeta is what AnnotationWorkMetadata holds.
type workMeta struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// objectMeta is the metadata of a run's Job and ConfigMap.
func (o Options) objectMeta(r run, meta workMeta) (metav1.ObjectMeta, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return metav1.ObjectMeta{}, fmt.Errorf("encoding work metadata: %w", err)
	}
	labels := map[string]string{}
	// The work's own labels (adapter, resource kind and id, cluster id)
	// make the Jobs selectable the same way as the works.
	for k, v := range meta.Labels {
		if len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			labels[k] = v
		}
	}
	for k, v := range map[string]string{
		LabelComponent:  ComponentValue,
		LabelEventID:    r.id(),
		LabelWork:       workLabel(r.consumer, r.name),
		LabelOperation:  r.op,
		LabelGeneration: strconv.FormatInt(r.gen, 10),
		LabelAttempt:    strconv.Itoa(r.attempt),
	} {
		labels[k] = v
	}
	if r.digest != "" {
		labels[LabelDigest] = r.digest
	}
	annotations := map[string]string{
		AnnotationConsumer:     r.consumer,
		AnnotationWorkName:     r.name,
		AnnotationWorkMetadata: string(raw),
	}
	if r.eventID != "" {
		annotations[AnnotationSentinelEventID] = r.eventID
	}
	return metav1.ObjectMeta{
		Name:        r.jobName(),
		Namespace:   o.Namespace,
		Labels:      labels,
		Annotations: annotations,
	}, nil
}

// job builds the Job of a run: the spike's template, hardened to Pod
// Security "restricted".
func (o Options) job(r run, meta workMeta) (*batchv1.Job, error) {
	om, err := o.objectMeta(r, meta)
	if err != nil {
		return nil, err
	}
	cli := corev1.Container{
		Name:    ContainerCLI,
		Image:   o.Image,
		Command: []string{"maestro-cli", r.op},
		Args:    o.cliArgs(r),
		Env: []corev1.EnvVar{
			{Name: "RESULTS_PATH", Value: ResultsFile},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: volumeResults, MountPath: ResultsDir}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(o.CPURequest),
				corev1.ResourceMemory: resource.MustParse(o.MemoryRequest),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(o.CPULimit),
				corev1.ResourceMemory: resource.MustParse(o.MemoryLimit),
			},
		},
		// Without a status-reporter the kubelet is the messenger: on failure
		// it copies the log's tail (maestro-cli's one-line error) into the
		// pod's status, where the delivery reads it. terminationMessagePath
		// stays the default: pointing it at the results file would make that
		// file a bind mount, and maestro-cli writes its results atomically by
		// renaming over the file, which fails on a mount point (EBUSY).
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          containerSecurity(),
	}
	if r.eventID != "" {
		cli.Env = append(cli.Env, corev1.EnvVar{Name: "EVENT_ID", Value: r.eventID})
	}
	if o.Maestro.TLSSecret != "" {
		cli.VolumeMounts = append(cli.VolumeMounts, corev1.VolumeMount{Name: volumeTLS, MountPath: TLSDir, ReadOnly: true})
		cli.Env = append(cli.Env,
			corev1.EnvVar{Name: "MAESTRO_CA_FILE", Value: TLSDir + "/ca.crt"},
			corev1.EnvVar{Name: "MAESTRO_CLIENT_CERT_FILE", Value: TLSDir + "/tls.crt"},
			corev1.EnvVar{Name: "MAESTRO_CLIENT_KEY_FILE", Value: TLSDir + "/tls.key"},
		)
	}
	if o.Maestro.InsecureSkipVerify {
		cli.Env = append(cli.Env, corev1.EnvVar{Name: EnvInsecureSkipVerify, Value: "true"})
	}
	if o.Maestro.Insecure {
		cli.Env = append(cli.Env, corev1.EnvVar{Name: EnvInsecure, Value: "true"})
	}
	volumes := []corev1.Volume{{
		Name: volumeResults,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			// The status-reporter reads at most 1 MiB.
			SizeLimit: ptr.To(resource.MustParse("2Mi")),
		}},
	}}
	if r.op == OpApply {
		cli.VolumeMounts = append(cli.VolumeMounts, corev1.VolumeMount{Name: volumeManifest, MountPath: ManifestDir, ReadOnly: true})
		source := corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: om.Name},
		}}
		if r.sensitive {
			source = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: om.Name, DefaultMode: ptr.To[int32](0o440)}}
		}
		volumes = append(volumes, corev1.Volume{Name: volumeManifest, VolumeSource: source})
	}
	if o.Maestro.TLSSecret != "" {
		volumes = append(volumes, corev1.Volume{
			Name: volumeTLS,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  o.Maestro.TLSSecret,
				DefaultMode: ptr.To[int32](0o440),
				Items: []corev1.KeyToPath{
					{Key: "ca.crt", Path: "ca.crt"},
					{Key: "tls.crt", Path: "tls.crt"},
					{Key: "tls.key", Path: "tls.key"},
				},
			}},
		})
	}
	containers := []corev1.Container{cli}
	if o.StatusReporterImage != "" {
		containers = append(containers, o.reporter(om.Name))
	}
	podLabels := map[string]string{
		LabelComponent: ComponentValue,
		LabelEventID:   om.Labels[LabelEventID],
		LabelWork:      om.Labels[LabelWork],
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: om,
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(o.BackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(seconds(o.ActiveDeadline)),
			TTLSecondsAfterFinished: ptr.To(int32(seconds(o.TTLAfterFinished))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					RestartPolicy:      corev1.RestartPolicyNever,
					ServiceAccountName: o.ServiceAccount,
					// Only the status-reporter talks to the Kubernetes API.
					AutomountServiceAccountToken: ptr.To(o.StatusReporterImage != ""),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true),
						// The image's user (distroless nonroot); Secret files
						// are mounted 0440 and group-owned by it.
						FSGroup:        ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: containers,
					Volumes:    volumes,
				},
			},
		},
	}, nil
}

// cliArgs are maestro-cli's flags for a run (the subcommand is in the
// container's command).
func (o Options) cliArgs(r run) []string {
	var args []string
	if r.op == OpApply {
		args = append(args, "--manifest-file="+ManifestDir+"/"+ConfigMapKey)
	}
	args = append(args,
		"--consumer="+r.consumer,
		"--name="+r.name,
		"--watch",
	)
	if r.op == OpApply {
		// Success must mean what the synthesised status says: Available.
		args = append(args, "--condition=Available")
	}
	args = append(args,
		"--timeout="+o.CLITimeout.String(),
		"--grpc-endpoint="+o.Maestro.GRPCEndpoint,
		"--http-endpoint="+o.Maestro.HTTPEndpoint,
		"--source-id="+o.Maestro.SourceID,
		"--results-path="+ResultsFile,
		// The status-reporter's format carries a reason; the delivery reads
		// it the same way from the termination message when no reporter runs.
		"--results-format=status-reporter",
	)
	return args
}

// reporter is HyperFleet's status-reporter sidecar, configured as its
// README says.
func (o Options) reporter(jobName string) corev1.Container {
	return corev1.Container{
		Name:  ContainerReporter,
		Image: o.StatusReporterImage,
		Env: []corev1.EnvVar{
			{Name: "JOB_NAME", Value: jobName},
			{Name: "JOB_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "RESULTS_PATH", Value: ResultsFile},
			{Name: "MAX_WAIT_TIME_SECONDS", Value: strconv.FormatInt(seconds(o.reporterWait()), 10)},
			{Name: "CONDITION_TYPE", Value: o.ReporterConditionType},
			{Name: "ADAPTER_CONTAINER_NAME", Value: ContainerCLI},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: volumeResults, MountPath: ResultsDir}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          containerSecurity(),
	}
}

func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// configMap holds the work for an apply run. It is owned by the Job, so
// the garbage collector removes it with the Job (after TTLAfterFinished).
func (o Options) configMap(job *batchv1.Job, work []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workHolderMeta(job),
		Data:       map[string]string{ConfigMapKey: string(work)},
	}
}

// secret holds the work for an apply run instead of a ConfigMap when the
// work carries a Secret (a pull secret, an IDP's client secret): its data
// must not sit in plain sight of everyone who may read ConfigMaps.
func (o Options) secret(job *batchv1.Job, work []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: workHolderMeta(job),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ConfigMapKey: work},
	}
}

// workHolderMeta names the object holding a run's work after its Job and
// makes the Job its owner.
func workHolderMeta(job *batchv1.Job) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        job.Name,
		Namespace:   job.Namespace,
		Labels:      job.Labels,
		Annotations: map[string]string{AnnotationConsumer: job.Annotations[AnnotationConsumer], AnnotationWorkName: job.Annotations[AnnotationWorkName]},
		// No blockOwnerDeletion: setting it needs update on jobs/finalizers,
		// which the adapter's Role does not grant.
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
		}},
	}
}

// holdsSecret reports whether a work carries a core/v1 Secret.
func holdsSecret(w *workv1.ManifestWork) bool {
	for _, m := range w.Spec.Workload.Manifests {
		var tm metav1.TypeMeta
		if json.Unmarshal(m.Raw, &tm) == nil && tm.APIVersion == "v1" && tm.Kind == "Secret" {
			return true
		}
	}
	return false
}

// holdsWorkInSecret reports whether a Job mounts its work from a Secret.
func holdsWorkInSecret(job *batchv1.Job) bool {
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == volumeManifest {
			return v.Secret != nil
		}
	}
	return false
}

// workDocument is the work as maestro-cli reads it from the ConfigMap:
// identity, labels, annotations and spec; nothing the server owns.
func (o Options) workDocument(w *workv1.ManifestWork) ([]byte, error) {
	doc := &workv1.ManifestWork{
		TypeMeta: metav1.TypeMeta{APIVersion: workv1.GroupVersion.String(), Kind: "ManifestWork"},
		ObjectMeta: metav1.ObjectMeta{
			Name: w.Name, Namespace: w.Namespace,
			Labels: w.Labels, Annotations: w.Annotations,
		},
		Spec: *w.Spec.DeepCopy(),
	}
	if doc.Spec.DeleteOption == nil {
		doc.Spec.DeleteOption = &workv1.DeleteOption{PropagationPolicy: o.Maestro.DeletePropagation}
	}
	return json.Marshal(doc)
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
