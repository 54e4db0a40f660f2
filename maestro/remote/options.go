package remote

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Environment variables the adapter reads these options from. Validate names
// them, so that an error says which setting to fix.
const (
	EnvGRPCEndpoint             = "MAESTRO_GRPC_ENDPOINT"
	EnvHTTPEndpoint             = "MAESTRO_HTTP_ENDPOINT"
	EnvSourceID                 = "MAESTRO_SOURCE_ID"
	EnvCAFile                   = "MAESTRO_CA_FILE"
	EnvClientCertFile           = "MAESTRO_CLIENT_CERT_FILE"
	EnvClientKeyFile            = "MAESTRO_CLIENT_KEY_FILE"
	EnvTokenFile                = "MAESTRO_TOKEN_FILE"
	EnvInsecureSkipVerify       = "MAESTRO_INSECURE_SKIP_VERIFY"
	EnvInsecure                 = "MAESTRO_INSECURE"
	EnvServerHealthinessTimeout = "MAESTRO_SERVER_HEALTHINESS_TIMEOUT"
	EnvDialTimeout              = "MAESTRO_DIAL_TIMEOUT"
	EnvRequestTimeout           = "MAESTRO_REQUEST_TIMEOUT"
	EnvUnavailableTimeout       = "MAESTRO_UNAVAILABLE_TIMEOUT"
	EnvDeletePropagation        = "MAESTRO_DELETE_PROPAGATION"
	EnvConsumerWait             = "CONSUMER_WAIT"
)

// Defaults of the timings.
const (
	// DefaultServerHealthinessTimeout is what Maestro's own clients use:
	// twice the server's default heartbeat interval (10s).
	DefaultServerHealthinessTimeout = 20 * time.Second
	DefaultDialTimeout              = 10 * time.Second
	DefaultRequestTimeout           = 30 * time.Second
	// DefaultUnavailableTimeout covers a Maestro restart: the OCM SDK waits
	// 5-10s before its first reconnect attempt.
	DefaultUnavailableTimeout = 30 * time.Second
)

// Options configures a Backend.
//
// Transport security: the gRPC connection uses TLS when any of CAFile,
// ClientCertFile/ClientKeyFile, TokenFile or InsecureSkipVerify is set
// (without CAFile the system roots verify the server), and plaintext
// otherwise, as a local Maestro serves it, which needs Insecure: works
// carry Secrets. The REST connection uses TLS when HTTPEndpoint is https,
// with the same CA and client certificate; a token goes over http only
// with Insecure.
type Options struct {
	// GRPCEndpoint is Maestro's gRPC server for source clients, host:port
	// (port 8090 in Maestro's deployments).
	GRPCEndpoint string
	// HTTPEndpoint is Maestro's REST API base URL, e.g. http://maestro:8000.
	// Reads (Get, the watch's resync) and the consumer check go there.
	HTTPEndpoint string
	// SourceID names this adapter to Maestro. Works belong to their source:
	// two processes with the same SourceID share (and may update) the same
	// works; different SourceIDs never see each other's.
	SourceID string

	// CAFile verifies the servers' certificates (PEM).
	CAFile string
	// ClientCertFile and ClientKeyFile (PEM), both or neither, authenticate
	// this client over mTLS. They are re-read when they change, so rotated
	// certificates are used from the next connection on.
	ClientCertFile string
	ClientKeyFile  string
	// TokenFile holds a bearer token sent with every gRPC call and REST
	// request. It is re-read when it changes. It needs TLS: gRPC then uses
	// TLS, and an http:// HTTPEndpoint is refused.
	TokenFile string
	// InsecureSkipVerify turns off server certificate verification. For
	// test setups only.
	InsecureSkipVerify bool
	// Insecure allows connections in clear: plaintext gRPC (none of the
	// TLS settings above) and TokenFile's token over an http:// HTTPEndpoint.
	// For a local Maestro only (MAESTRO_INSECURE).
	Insecure bool

	// ServerHealthinessTimeout: when Maestro's heartbeat has not arrived
	// for this long, the client drops the connection and reconnects.
	// Default DefaultServerHealthinessTimeout.
	ServerHealthinessTimeout time.Duration
	// DialTimeout bounds establishing one connection (TCP and TLS), gRPC
	// or REST. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds one REST request. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// UnavailableTimeout is how long one Apply, Delete or Get keeps
	// retrying, with backoff, while Maestro cannot be reached, before it
	// fails with a transient error naming the endpoint. It lets a Maestro
	// restart pass without spending the pipeline's attempts. Default
	// DefaultUnavailableTimeout; it must not exceed the caller's patience
	// (the pipeline has no per-attempt deadline, so this is that deadline).
	UnavailableTimeout time.Duration

	// ConsumerWait is how long a consumer Maestro does not know is waited
	// for: Apply fails with a Transient error wrapping
	// ErrConsumerNotRegistered for this long after the first check that
	// found it missing, then with a Permanent one. Zero (the default, what
	// a one-shot command wants): Permanent at once.
	ConsumerWait time.Duration

	// DeletePropagation is written to spec.deleteOption of every work that
	// carries none: Foreground (default; deleting the work deletes its
	// resources on the cluster) or Orphan (they stay). Maestro ignores
	// metav1.DeleteOptions, so the work itself must say.
	DeletePropagation workv1.DeletePropagationPolicyType
	// Source tunes the apply logic (conflict retries, delete wait). Its
	// DeletePropagation is replaced by the one above; its Logger defaults
	// to Logger.
	Source maestro.SourceOptions

	// Logger defaults to slog.Default(). The Maestro client's own log lines
	// go to it with component=maestro-client.
	Logger *slog.Logger
}

// Validate reports every setting that cannot work, each prefixed with the
// environment variable that sets it.
func (o Options) Validate() error { return o.validate(true) }

// validate is Validate; without needGRPC the gRPC endpoint may be unset
// (a Reader does not use it).
func (o Options) validate(needGRPC bool) error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}

	switch {
	case o.GRPCEndpoint == "" && needGRPC:
		bad(EnvGRPCEndpoint, "not set (want host:port of Maestro's gRPC server, e.g. maestro-grpc:8090)")
	case o.GRPCEndpoint != "" && !hostPort(o.GRPCEndpoint):
		bad(EnvGRPCEndpoint, "%q is not host:port", o.GRPCEndpoint)
	}

	var httpsREST bool
	if o.HTTPEndpoint == "" {
		bad(EnvHTTPEndpoint, "not set (want the REST API base URL, e.g. http://maestro:8000)")
	} else if u, err := url.Parse(o.HTTPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(EnvHTTPEndpoint, "%q is not an http:// or https:// URL", o.HTTPEndpoint)
	} else {
		httpsREST = u.Scheme == "https"
		if u.User != nil {
			bad(EnvHTTPEndpoint, "must not carry credentials; use %s", EnvTokenFile)
		}
	}

	switch {
	case o.SourceID == "":
		bad(EnvSourceID, "not set")
	case strings.ContainsAny(o.SourceID, "'\"\\ \t\n"):
		// It is quoted into Maestro's search expressions.
		bad(EnvSourceID, "%q contains quotes or blanks", o.SourceID)
	}

	readable := func(env, path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			bad(env, "%v", err)
			return
		}
		_ = f.Close()
	}
	readable(EnvCAFile, o.CAFile)
	readable(EnvClientCertFile, o.ClientCertFile)
	readable(EnvClientKeyFile, o.ClientKeyFile)
	readable(EnvTokenFile, o.TokenFile)
	if (o.ClientCertFile == "") != (o.ClientKeyFile == "") {
		if o.ClientCertFile == "" {
			bad(EnvClientCertFile, "not set, but %s is: set both for mTLS, or neither", EnvClientKeyFile)
		} else {
			bad(EnvClientKeyFile, "not set, but %s is: set both for mTLS, or neither", EnvClientCertFile)
		}
	}
	if o.TokenFile != "" && o.HTTPEndpoint != "" && !httpsREST && !o.Insecure {
		bad(EnvTokenFile, "set, but %s is not https: the token would travel in clear; use https, or set %s=true for a local Maestro", EnvHTTPEndpoint, EnvInsecure)
	}
	if needGRPC && o.GRPCEndpoint != "" && !o.tls() && !o.Insecure {
		bad(EnvGRPCEndpoint, "plaintext gRPC: none of %s, %s, %s is set, so works (and the Secrets in them) would travel in clear; set them, or %s=true for a local Maestro",
			EnvCAFile, EnvClientCertFile, EnvTokenFile, EnvInsecure)
	}

	for _, d := range []struct {
		env string
		v   time.Duration
	}{
		{EnvServerHealthinessTimeout, o.ServerHealthinessTimeout},
		{EnvDialTimeout, o.DialTimeout},
		{EnvRequestTimeout, o.RequestTimeout},
		{EnvUnavailableTimeout, o.UnavailableTimeout},
		{EnvConsumerWait, o.ConsumerWait},
	} {
		if d.v < 0 {
			bad(d.env, "%s is negative", d.v)
		}
	}

	switch o.DeletePropagation {
	case "", workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan:
	default:
		bad(EnvDeletePropagation, "%q, want %s or %s", o.DeletePropagation,
			workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan)
	}
	if err := o.Source.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("maestro backend: %w", errors.Join(errs...))
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ServerHealthinessTimeout == 0 {
		o.ServerHealthinessTimeout = DefaultServerHealthinessTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.UnavailableTimeout == 0 {
		o.UnavailableTimeout = DefaultUnavailableTimeout
	}
	if o.DeletePropagation == "" {
		o.DeletePropagation = workv1.DeletePropagationPolicyTypeForeground
	}
	o.Source.DeletePropagation = o.DeletePropagation
	if o.Source.Logger == nil {
		o.Source.Logger = o.Logger
	}
	return o
}

func hostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != ""
}

// httpsREST reports whether the REST connection uses TLS.
func (o Options) httpsREST() bool { return strings.HasPrefix(o.HTTPEndpoint, "https://") }

// tls reports whether the gRPC connection uses TLS.
func (o Options) tls() bool {
	return o.CAFile != "" || o.ClientCertFile != "" || o.TokenFile != "" || o.InsecureSkipVerify
}
