package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Observer is told about every call the delivery makes to the Kubernetes
// API (the informers' list and watch excepted), for metrics. Calls must not
// block. It has the shape of maestro.CallObserver, so that the pipeline's
// metrics can implement both without importing this package.
type Observer interface {
	// KubeRequest: verb (create, get) on resource (jobs, configmaps, secrets,
	// selfsubjectaccessreviews) took d and ended with result (RequestResult:
	// ok, already_exists, forbidden, ...).
	KubeRequest(verb, resource, result string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) KubeRequest(string, string, string, time.Duration) {}

// Metrics is the Prometheus Observer:
// hyperfleet_adapter_kube_request_duration_seconds{verb,resource,result}.
type Metrics struct {
	duration *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the delivery's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyperfleet_adapter_kube_request_duration_seconds",
			Help: "Kubernetes API calls of the Job delivery, by verb, resource and result " +
				"(ok, already_exists, not_found, conflict, forbidden, invalid, timeout, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"verb", "resource", "result"}),
	}
	reg.MustRegister(m.duration)
	return m
}

// KubeRequest implements Observer.
func (m *Metrics) KubeRequest(verb, resource, result string, d time.Duration) {
	m.duration.WithLabelValues(verb, resource, result).Observe(d.Seconds())
}

// RequestResult classifies a Kubernetes API error for the result label: a small,
// fixed set, so the series stay few.
func RequestResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case apierrors.IsAlreadyExists(err):
		return "already_exists"
	case apierrors.IsNotFound(err):
		return "not_found"
	case apierrors.IsConflict(err):
		return "conflict"
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return "forbidden"
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return "invalid"
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}
