package maestro

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// CallObserver is told how long each delivery call took and how it ended,
// for metrics. Result is "ok", "stale" (workmeta.ErrStaleGeneration) or "error".
type CallObserver interface {
	DeliveryCall(op, result string, d time.Duration)
}

// Instrument wraps d so that every Apply, Delete and Get is reported to
// obs. Watch is long-lived and not timed.
func Instrument(d Delivery, obs CallObserver) Delivery {
	return &instrumented{Delivery: d, obs: obs}
}

type instrumented struct {
	Delivery
	obs CallObserver
}

func (i *instrumented) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, workmeta.ErrStaleGeneration):
		result = "stale"
	case err != nil:
		result = "error"
	}
	i.obs.DeliveryCall(op, result, time.Since(start))
}

func (i *instrumented) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	start := time.Now()
	got, err := i.Delivery.Apply(ctx, w)
	i.observe("apply", start, err)
	return got, err
}

func (i *instrumented) Delete(ctx context.Context, consumer, name string) error {
	start := time.Now()
	err := i.Delivery.Delete(ctx, consumer, name)
	i.observe("delete", start, err)
	return err
}

func (i *instrumented) Get(ctx context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	start := time.Now()
	got, err := i.Delivery.Get(ctx, consumer, name)
	i.observeRead(start, err)
	return got, err
}

// observeRead times a read as a "get": a missing work is an answer, not a
// failure.
func (i *instrumented) observeRead(start time.Time, err error) {
	if apierrors.IsNotFound(err) {
		err = nil
	}
	i.observe("get", start, err)
}
