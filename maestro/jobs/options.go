package jobs

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Environment variables the adapter reads these options from. Validate names
// them, so that an error says which setting to fix.
const (
	EnvNamespace           = "JOB_NAMESPACE"
	EnvImage               = "JOB_IMAGE"
	EnvServiceAccount      = "JOB_SERVICE_ACCOUNT"
	EnvCPURequest          = "JOB_CPU_REQUEST"
	EnvCPULimit            = "JOB_CPU_LIMIT"
	EnvMemoryRequest       = "JOB_MEMORY_REQUEST"
	EnvMemoryLimit         = "JOB_MEMORY_LIMIT"
	EnvActiveDeadline      = "JOB_ACTIVE_DEADLINE"
	EnvCLITimeout          = "JOB_CLI_TIMEOUT"
	EnvTTLAfterFinished    = "JOB_TTL_AFTER_FINISHED"
	EnvBackoffLimit        = "JOB_BACKOFF_LIMIT"
	EnvStatusReporterImage = "JOB_STATUS_REPORTER_IMAGE"
	EnvMaestroTLSSecret    = "JOB_MAESTRO_TLS_SECRET"
	EnvDeleteWait          = "JOB_DELETE_WAIT"
	EnvRequestTimeout      = "JOB_REQUEST_TIMEOUT"
	// The Maestro settings are the adapter's own (maestro/remote reads the
	// same variables).
	EnvGRPCEndpoint       = "MAESTRO_GRPC_ENDPOINT"
	EnvHTTPEndpoint       = "MAESTRO_HTTP_ENDPOINT"
	EnvSourceID           = "MAESTRO_SOURCE_ID"
	EnvInsecureSkipVerify = "MAESTRO_INSECURE_SKIP_VERIFY"
	EnvInsecure           = "MAESTRO_INSECURE"
	EnvDeletePropagation  = "MAESTRO_DELETE_PROPAGATION"
)

// Defaults. The resources and the CLI timeout are the spike's Job template's;
// backoffLimit 0 is what the status-reporter expects (one pod, one verdict).
const (
	DefaultImage            = "quay.io/openshift-hyperfleet/maestro-adapter:latest"
	DefaultCPURequest       = "50m"
	DefaultCPULimit         = "200m"
	DefaultMemoryRequest    = "64Mi"
	DefaultMemoryLimit      = "256Mi"
	DefaultCLITimeout       = 5 * time.Minute
	DefaultActiveDeadline   = 10 * time.Minute
	DefaultTTLAfterFinished = time.Hour
	DefaultDeleteWait       = 30 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
)

// Options configures a Delivery. The zero value of a field means its
// default; Namespace and the Maestro endpoints have none.
type Options struct {
	// Namespace is where Jobs and ConfigMaps are created: the adapter's own
	// namespace, which its Role covers.
	Namespace string
	// Image runs maestro-cli (the adapter's image ships it).
	Image string
	// ServiceAccount the Job's pod runs as; empty: the namespace's default.
	// With a status-reporter it needs get on jobs, update on jobs/status and
	// get/list on pods (the status-reporter's README has the Role).
	ServiceAccount string
	// CPURequest, CPULimit, MemoryRequest, MemoryLimit size the maestro-cli
	// container (Kubernetes quantities, e.g. 50m, 64Mi).
	CPURequest, CPULimit, MemoryRequest, MemoryLimit string
	// CLITimeout is maestro-cli's --timeout: how long it waits for the agent
	// to report the work applied (or gone) before it gives up and says so.
	CLITimeout time.Duration
	// ActiveDeadline is the Job's activeDeadlineSeconds: past it, the Job
	// controller kills the pod and fails the Job (DeadlineExceeded). It must
	// leave the CLI and the status-reporter time to report first: at least
	// CLITimeout + 30s.
	ActiveDeadline time.Duration
	// TTLAfterFinished is the Job's ttlSecondsAfterFinished: how long a
	// finished Job (and, through its owner reference, its ConfigMap) stays.
	// While it stays, an event for the same work and generation follows it
	// instead of running maestro-cli again.
	TTLAfterFinished time.Duration
	// BackoffLimit is the Job's backoffLimit. Default 0.
	BackoffLimit int32
	// StatusReporterImage, when set, adds HyperFleet's status-reporter as a
	// sidecar; the outcome is then read from the condition it writes on the
	// Job. Empty: the outcome is read from the Job's conditions and
	// maestro-cli's container status (OOM kill, exit code, and its
	// termination message: the error line the kubelet copies from the log,
	// or a results document when the message is one).
	StatusReporterImage string
	// ReporterConditionType is the condition the status-reporter writes on
	// the Job (its CONDITION_TYPE). Default Available.
	ReporterConditionType string

	// Maestro is what maestro-cli connects to.
	Maestro MaestroOptions

	// DeleteWait bounds how long Delete follows the delete Job for its
	// outcome, so that a failed deletion reaches the report as an error.
	// When it runs out, Delete returns nil and Watch reports the deletion
	// once the Job succeeds.
	DeleteWait time.Duration
	// RequestTimeout bounds one call to the Kubernetes API, and the wait for
	// a Job just created to show up in the informer's cache.
	RequestTimeout time.Duration

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer is told about every Kubernetes API call. Default: none.
	Observer Observer
}

// MaestroOptions is the part of the adapter's Maestro configuration a Job
// needs.
type MaestroOptions struct {
	// GRPCEndpoint (host:port) and HTTPEndpoint (base URL) of the Maestro
	// server, as the adapter's MAESTRO_GRPC_ENDPOINT/MAESTRO_HTTP_ENDPOINT.
	GRPCEndpoint string
	HTTPEndpoint string
	// SourceID is the adapter's Maestro source id: the Job's maestro-cli
	// acts as the adapter, on the same works.
	SourceID string
	// TLSSecret names a Secret in Namespace with ca.crt, tls.crt and
	// tls.key (the layout cert-manager and `kubectl create secret tls`
	// produce). It is mounted into the Job and maestro-cli uses it for mTLS.
	TLSSecret string
	// InsecureSkipVerify: TLS without verifying Maestro's certificate.
	InsecureSkipVerify bool
	// Insecure lets the Job's maestro-cli talk to Maestro in clear
	// (plaintext gRPC), which it needs without TLSSecret: a local Maestro
	// only. The Job gets MAESTRO_INSECURE=true.
	Insecure bool
	// DeletePropagation goes into spec.deleteOption of works that carry
	// none: Foreground (default) or Orphan.
	DeletePropagation workv1.DeletePropagationPolicyType
}

// Validate reports every setting that cannot work, each prefixed with the
// environment variable that sets it.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	if o.Namespace == "" {
		bad(EnvNamespace, "not set, and not running in a pod whose namespace could be read")
	} else if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		bad(EnvNamespace, "%q is not a namespace name: %s", o.Namespace, strings.Join(msgs, "; "))
	}
	if strings.TrimSpace(o.Image) == "" || strings.ContainsAny(o.Image, " \t\n") {
		bad(EnvImage, "%q is not an image reference", o.Image)
	}
	if strings.ContainsAny(o.StatusReporterImage, " \t\n") {
		bad(EnvStatusReporterImage, "%q is not an image reference", o.StatusReporterImage)
	}
	if o.ServiceAccount != "" {
		if msgs := validation.IsDNS1123Subdomain(o.ServiceAccount); len(msgs) > 0 {
			bad(EnvServiceAccount, "%q is not a service account name: %s", o.ServiceAccount, strings.Join(msgs, "; "))
		}
	}
	if o.Maestro.TLSSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(o.Maestro.TLSSecret); len(msgs) > 0 {
			bad(EnvMaestroTLSSecret, "%q is not a Secret name: %s", o.Maestro.TLSSecret, strings.Join(msgs, "; "))
		}
	}
	quantities := map[string]resource.Quantity{}
	for _, q := range []struct{ env, v string }{
		{EnvCPURequest, o.CPURequest}, {EnvCPULimit, o.CPULimit},
		{EnvMemoryRequest, o.MemoryRequest}, {EnvMemoryLimit, o.MemoryLimit},
	} {
		parsed, err := resource.ParseQuantity(q.v)
		if err != nil || parsed.Sign() <= 0 {
			bad(q.env, "%q is not a positive quantity (e.g. 50m, 64Mi)", q.v)
			continue
		}
		quantities[q.env] = parsed
	}
	for _, pair := range [][2]string{{EnvCPURequest, EnvCPULimit}, {EnvMemoryRequest, EnvMemoryLimit}} {
		req, okr := quantities[pair[0]]
		lim, okl := quantities[pair[1]]
		if okr && okl && req.Cmp(lim) > 0 {
			bad(pair[0], "%s is more than %s %s", req.String(), pair[1], lim.String())
		}
	}
	if o.CLITimeout < time.Second {
		bad(EnvCLITimeout, "%s, want at least 1s", o.CLITimeout)
	}
	if o.ActiveDeadline < o.CLITimeout+reportMargin {
		bad(EnvActiveDeadline, "%s leaves maestro-cli (timeout %s) and the status-reporter no time to report; want at least %s",
			o.ActiveDeadline, o.CLITimeout, o.CLITimeout+reportMargin)
	}
	if o.TTLAfterFinished < 0 {
		bad(EnvTTLAfterFinished, "%s is negative", o.TTLAfterFinished)
	}
	if o.BackoffLimit < 0 {
		bad(EnvBackoffLimit, "%d is negative", o.BackoffLimit)
	}
	if o.DeleteWait < 0 {
		bad(EnvDeleteWait, "%s is negative", o.DeleteWait)
	}
	if o.RequestTimeout <= 0 {
		bad(EnvRequestTimeout, "%s, want > 0", o.RequestTimeout)
	}

	m := o.Maestro
	if m.GRPCEndpoint == "" {
		bad(EnvGRPCEndpoint, "not set (want host:port of Maestro's gRPC server, e.g. maestro-grpc:8090)")
	} else if host, port, err := net.SplitHostPort(m.GRPCEndpoint); err != nil || host == "" || port == "" {
		bad(EnvGRPCEndpoint, "%q is not host:port", m.GRPCEndpoint)
	}
	if m.HTTPEndpoint == "" {
		bad(EnvHTTPEndpoint, "not set (want the REST API base URL, e.g. http://maestro:8000)")
	} else if u, err := url.Parse(m.HTTPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(EnvHTTPEndpoint, "%q is not an http:// or https:// URL", m.HTTPEndpoint)
	} else if u.User != nil {
		bad(EnvHTTPEndpoint, "must not carry credentials: it is written into the Job's arguments")
	}
	if m.TLSSecret == "" && !m.InsecureSkipVerify && !m.Insecure {
		bad(EnvInsecure, "not set, and %s is not either: the Jobs' maestro-cli would send works (and the Secrets in them) over plaintext gRPC; set %s, or %s=true for a local Maestro",
			EnvMaestroTLSSecret, EnvMaestroTLSSecret, EnvInsecure)
	}
	switch {
	case m.SourceID == "":
		bad(EnvSourceID, "not set")
	case strings.ContainsAny(m.SourceID, "'\"\\ \t\n"):
		bad(EnvSourceID, "%q contains quotes or blanks", m.SourceID)
	}
	switch m.DeletePropagation {
	case workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan:
	default:
		bad(EnvDeletePropagation, "%q, want %s or %s", m.DeletePropagation,
			workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan)
	}
	if len(errs) > 0 {
		return fmt.Errorf("job delivery: %w", errors.Join(errs...))
	}
	return nil
}

// reportMargin is the least time between maestro-cli giving up (CLITimeout)
// and the Job controller killing the pod (ActiveDeadline): the CLI writes its
// results and the status-reporter its condition in between.
const reportMargin = 30 * time.Second

// reporterWait is the status-reporter's MAX_WAIT_TIME_SECONDS: a little
// longer than the CLI may take, shorter than the Job may live.
func (o Options) reporterWait() time.Duration { return o.CLITimeout + reportMargin/2 }

func (o Options) withDefaults() Options {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.CPURequest == "" {
		o.CPURequest = DefaultCPURequest
	}
	if o.CPULimit == "" {
		o.CPULimit = DefaultCPULimit
	}
	if o.MemoryRequest == "" {
		o.MemoryRequest = DefaultMemoryRequest
	}
	if o.MemoryLimit == "" {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.CLITimeout == 0 {
		o.CLITimeout = DefaultCLITimeout
	}
	if o.ActiveDeadline == 0 {
		o.ActiveDeadline = DefaultActiveDeadline
	}
	if o.TTLAfterFinished == 0 {
		o.TTLAfterFinished = DefaultTTLAfterFinished
	}
	if o.ReporterConditionType == "" {
		o.ReporterConditionType = "Available"
	}
	if o.DeleteWait == 0 {
		o.DeleteWait = DefaultDeleteWait
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Maestro.DeletePropagation == "" {
		o.Maestro.DeletePropagation = workv1.DeletePropagationPolicyTypeForeground
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}
