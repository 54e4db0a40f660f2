package jobs

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Observer is told about every call the delivery makes to the Kubernetes
// API (the informers' list and watch excepted), for metrics. Calls must not
// block. pipeline.Metrics implements it (as
// hyperfleet_adapter_kube_request_duration_seconds{verb,resource,result})
// without importing this package.
type Observer interface {
	// KubeRequest: verb (create, get) on resource (jobs, configmaps, secrets,
	// selfsubjectaccessreviews) took d and ended with result (RequestResult:
	// ok, already_exists, forbidden, ...).
	KubeRequest(verb, resource, result string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) KubeRequest(string, string, string, time.Duration) {}

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
