// SourceDelivery: the Delivery on an OCM ManifestWork source client, its
// options, constructor and client plumbing, Get and Delete, and how the
// source client's errors are classified. Apply is in source_apply.go (with
// source_diff.go and source_orphan.go), the watch hub in source_watch.go.

package maestro

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// What the OCM source client and Maestro say, copied rather than imported
// so this package does not depend on the SDK's cloudevents machinery.
const (
	// reasonPublishError is the StatusError reason the OCM source client
	// (sdk-go clients/errors.NewPublishError) gives every failed publish:
	// code 500, whatever the server's actual objection was. The server's
	// reason only survives in the message.
	reasonPublishError metav1.StatusReason = "PublishError"
	// msgVersionConflict is what Maestro (services/resource.go Update)
	// answers a patch carrying a generation that is no longer current.
	msgVersionConflict = "the resource version is not the latest"
	// msgUnderDeletion is Maestro's answer to a patch of a work it is
	// deleting.
	msgUnderDeletion = "the resource is under deletion"
	// msgCreateConflict is Maestro's answer (services.handleCreateError)
	// to a Create of a work another writer created after the client's own
	// existence check: the same race as the client's AlreadyExists.
	msgCreateConflict = "This Resource already exists"
	// msgBundleUpdateInvalid prefixes Maestro's refusal of an update that
	// fails ValidateManifestBundleUpdate: servers before mid-2026 refuse to
	// add, remove, reorder or rename manifests in place.
	msgBundleUpdateInvalid = "the new manifest bundle in the resource is invalid"
	// annotationCloudEventsResourceVersion, when present on a work, overrides
	// metadata.generation as the version a patch carries (sdk-go
	// getWorkResourceVersion). A stale copy would make every patch conflict.
	annotationCloudEventsResourceVersion = "cloudevents.open-cluster-management.io/resourceversion"
	// foreignKeyMarker marks labels and annotations the OCM SDK and Maestro
	// add on their own (log tracing, status sequence ids). Apply neither
	// owns nor removes them.
	foreignKeyMarker = "open-cluster-management.io/"
)

// SourceOptions tunes a SourceDelivery. Zero values take the defaults.
type SourceOptions struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ConflictRetries bounds how many times one Apply re-reads the work and
	// tries again after losing a race to another writer (Maestro refused
	// the patch as carrying a stale version, or the work appeared or
	// vanished between the read and the write). Default 5.
	ConflictRetries int
	// RetryInitial and RetryMax shape the exponential backoff between those
	// attempts and between reads while waiting for a deleted work to go.
	// Defaults 20ms and 1s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// DeleteWait bounds how long Apply waits for a work being deleted to
	// disappear before recreating it. Default 1m: the OCM agent confirms
	// deletions on a 2s loop, after deleting the resources on the cluster.
	DeleteWait time.Duration
	// DeletePropagation is written to spec.deleteOption of works that carry
	// none: Maestro ignores metav1.DeleteOptions, so the work itself must
	// say whether deleting it deletes its resources. Foreground (default)
	// or Orphan.
	DeletePropagation workv1.DeletePropagationPolicyType
	// IndependentNamespaces says the client's ManifestWorks(namespace)
	// returns an object of its own on every call (maestro/remote makes
	// grpcsource's do so), so calls need not be serialised by callMu.
	IndependentNamespaces bool
	// CacheSize bounds how many works Apply keeps in its watch-fed cache
	// (see workCache). Default 2048; beyond it a work costs one REST read
	// per Apply again.
	CacheSize int
}

// Validate reports the first option that cannot work.
func (o SourceOptions) Validate() error {
	switch {
	case o.ConflictRetries < 0:
		return fmt.Errorf("maestro source options: ConflictRetries must not be negative, got %d", o.ConflictRetries)
	case o.RetryInitial < 0:
		return fmt.Errorf("maestro source options: RetryInitial must not be negative, got %s", o.RetryInitial)
	case o.RetryMax < 0:
		return fmt.Errorf("maestro source options: RetryMax must not be negative, got %s", o.RetryMax)
	case o.RetryMax != 0 && o.RetryInitial > o.RetryMax:
		return fmt.Errorf("maestro source options: RetryInitial %s exceeds RetryMax %s", o.RetryInitial, o.RetryMax)
	case o.CacheSize < 0:
		return fmt.Errorf("maestro source options: CacheSize must not be negative, got %d", o.CacheSize)
	case o.DeleteWait < 0:
		return fmt.Errorf("maestro source options: DeleteWait must not be negative, got %s", o.DeleteWait)
	}
	switch o.DeletePropagation {
	case "", workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan:
	default:
		return fmt.Errorf("maestro source options: DeletePropagation must be %s or %s, got %q",
			workv1.DeletePropagationPolicyTypeForeground, workv1.DeletePropagationPolicyTypeOrphan, o.DeletePropagation)
	}
	return nil
}

func (o SourceOptions) withDefaults() SourceOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.ConflictRetries, o.RetryInitial, o.RetryMax, o.DeleteWait =
		ApplyRetryDefaults(o.ConflictRetries, o.RetryInitial, o.RetryMax, o.DeleteWait)
	if o.DeletePropagation == "" {
		o.DeletePropagation = workv1.DeletePropagationPolicyTypeForeground
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	return o
}

// SourceDelivery is the Delivery on top of an OCM ManifestWork client as a
// Maestro source sees it: the real Maestro gRPC source client
// (grpcsource.NewMaestroGRPCSourceWorkClient) or the embedded Store. The
// apply logic lives here once; the backends only move bytes.
//
// Close it to stop its watch.
type SourceDelivery struct {
	client workv1client.WorkV1Interface
	opts   SourceOptions
	log    *slog.Logger

	// callMu serializes ManifestWorks(namespace) with the call made on
	// what it returns. Maestro's grpcsource client has a single
	// ManifestWorkSourceClient whose namespace field ManifestWorks sets and
	// every method then reads: two goroutines working on different
	// consumers would otherwise write to, read from or delete each other's
	// works. The lock covers one client call, not a whole Apply, so applies
	// to different works interleave between calls.
	callMu sync.Mutex

	// cache answers Apply's read of the work while the watch is open.
	cache *workCache

	// The watch hub: one watch on the client, shared by every Watch caller.
	// grpcsource hands all callers watching the same namespace the same
	// watcher, whose events would be split between them, and stops it for
	// everyone when one caller stops it.
	ctx      context.Context
	cancel   context.CancelFunc
	hubMu    sync.Mutex
	watching bool
	subs     map[*hubSub]struct{}
	pumpDone chan struct{}
}

var _ Delivery = (*SourceDelivery)(nil)

// NewSourceDelivery returns a Delivery using client. It panics when opts
// fail Validate: callers wiring options from configuration validate them at
// start.
func NewSourceDelivery(client workv1client.WorkV1Interface, opts SourceOptions) *SourceDelivery {
	if client == nil {
		panic("maestro.NewSourceDelivery: nil client")
	}
	if err := opts.Validate(); err != nil {
		panic("maestro.NewSourceDelivery: " + err.Error())
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &SourceDelivery{
		client:   client,
		opts:     opts,
		log:      opts.Logger,
		cache:    newWorkCache(opts.CacheSize),
		ctx:      ctx,
		cancel:   cancel,
		subs:     map[*hubSub]struct{}{},
		pumpDone: make(chan struct{}),
	}
}

// works runs f on the client for namespace while holding callMu (see there).
func (d *SourceDelivery) works(namespace string, f func(workv1client.ManifestWorkInterface) error) error {
	if d.opts.IndependentNamespaces {
		return f(d.client.ManifestWorks(namespace))
	}
	d.callMu.Lock()
	defer d.callMu.Unlock()
	return f(d.client.ManifestWorks(namespace))
}

func (d *SourceDelivery) get(ctx context.Context, consumer, name string) (w *workv1.ManifestWork, err error) {
	err = d.works(consumer, func(c workv1client.ManifestWorkInterface) error {
		w, err = c.Get(ctx, name, metav1.GetOptions{})
		return err
	})
	return w, err
}

// Get implements Delivery.
func (d *SourceDelivery) Get(ctx context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	w, err := d.get(ctx, consumer, name)
	if err != nil {
		return nil, classify(fmt.Errorf("getting work %s/%s: %w", consumer, name, err))
	}
	return w, nil
}

// Delete implements Delivery. The work's spec.deleteOption, set at Apply,
// decides whether its resources go with it.
func (d *SourceDelivery) Delete(ctx context.Context, consumer, name string) error {
	d.cache.forget(consumer, name)
	err := d.works(consumer, func(c workv1client.ManifestWorkInterface) error {
		return c.Delete(ctx, name, metav1.DeleteOptions{})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("deleting work %s/%s: %w", consumer, name, err))
	}
	return nil
}

// Cached returns the work consumer/name as this process last knew it (a
// copy), without a round trip: its latest spec, metadata (the
// workmeta.AnnotationGeneration it was built from) and status as written by this
// process or seen on the watch. ok is false when the cache does not know
// the work or cannot vouch for it (the watch is not open); read it with Get
// then.
func (d *SourceDelivery) Cached(consumer, name string) (w *workv1.ManifestWork, ok bool) {
	return d.cache.get(consumer, name)
}

func isPublishError(err error, msg string) bool {
	return apierrors.ReasonForError(err) == reasonPublishError && strings.Contains(err.Error(), msg)
}

func isVersionConflict(err error) bool     { return isPublishError(err, msgVersionConflict) }
func isUnderDeletion(err error) bool       { return isPublishError(err, msgUnderDeletion) }
func isBundleUpdateRefused(err error) bool { return isPublishError(err, msgBundleUpdateInvalid) }

// classify marks err Permanent when retrying the same request cannot help
// and Transient otherwise.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err), refusedCredentials(err):
		// Credentials rotate (the token file is re-read on every call): a
		// refusal now may pass on the next try, and MAX_ATTEMPTS bounds a
		// lasting one.
		return failure.Transient(fmt.Errorf("%w: %w", ErrAuthentication, err))
	case apierrors.IsNotFound(err), apierrors.IsAlreadyExists(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err),
		apierrors.IsRequestEntityTooLargeError(err):
		return failure.Permanent(err)
	case isBundleUpdateRefused(err):
		// Maestro validated the manifests and refused them.
		return failure.Permanent(err)
	}
	// PublishError (connection down, server trouble, lost races beyond the
	// retry bound), timeouts, 5xx, network errors, a cancelled context and
	// anything unknown: another attempt later may succeed.
	return failure.Transient(err)
}

// refusedCredentials reports a gRPC refusal of the credentials after the
// OCM source client has flattened it into a PublishError's message.
func refusedCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "code = Unauthenticated") || strings.Contains(msg, "code = PermissionDenied")
}

// sleep waits d between tries; a wait cut short by ctx is transient.
func sleep(ctx context.Context, d time.Duration) error {
	return failure.Transient(backoff.Sleep(ctx, d))
}
