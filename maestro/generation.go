package maestro

import (
	"context"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// GenerationReader is implemented by a Delivery that can tell which
// resource generation (workmeta.AnnotationGeneration) a stored work carries more
// cheaply than Get can return the whole work. The pipeline asks this just
// before every report, to learn whether another replica has delivered a
// newer generation meanwhile; on a real Maestro that read must go to the
// server (the watch only learns of another replica's write once the agent
// has answered it), and decoding the whole work was a fifth of the
// adapter's CPU per event.
type GenerationReader interface {
	// WorkGeneration returns the generation the stored work carries; ok is
	// false when it carries none that parses. A missing work is an error
	// for which apierrors.IsNotFound is true, as from Get.
	WorkGeneration(ctx context.Context, consumer, name string) (gen int64, ok bool, err error)
}

// WorkGeneration reads the resource generation of the stored work
// consumer/name through d's GenerationReader, or through Get when d has
// none.
func WorkGeneration(ctx context.Context, d Delivery, consumer, name string) (gen int64, ok bool, err error) {
	if r, is := d.(GenerationReader); is {
		return r.WorkGeneration(ctx, consumer, name)
	}
	w, err := d.Get(ctx, consumer, name)
	if err != nil {
		return 0, false, err
	}
	gen, ok = workmeta.ResourceGeneration(w)
	return gen, ok, nil
}

// WorkGeneration implements GenerationReader, timed as a "get".
func (i *instrumented) WorkGeneration(ctx context.Context, consumer, name string) (int64, bool, error) {
	start := time.Now()
	gen, ok, err := WorkGeneration(ctx, i.Delivery, consumer, name)
	i.observeRead(start, err)
	return gen, ok, err
}

// Classify gives err the failure class a delivery error of its kind has
// (see SourceDelivery): for backends that reach Maestro by other paths
// than the source client.
func Classify(err error) error { return classify(err) }
