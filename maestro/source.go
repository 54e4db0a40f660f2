package maestro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/retry"
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

// openWatchTimeout bounds opening the watch, which lists every work.
const openWatchTimeout = 30 * time.Second

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
	if o.ConflictRetries == 0 {
		o.ConflictRetries = 5
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = 20 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = time.Second
	}
	if o.RetryInitial > o.RetryMax {
		o.RetryInitial = o.RetryMax
	}
	if o.DeleteWait == 0 {
		o.DeleteWait = time.Minute
	}
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

// Apply implements Delivery.
//
// A desired work without the AnnotationGeneration annotation is applied
// without the generation guard (last writer wins); handlers always set it.
//
// The work is read, then created or merge-patched. The patch carries the
// Maestro version (metadata.generation) that was read, so Maestro refuses
// it if another writer got there first; Apply then reads again and decides
// again, up to ConflictRetries times. When Maestro refuses to change the
// manifest set in place (servers built before Maestro commit 36077c4 of
// 2026-02-11, the one go.mod pins among them), the work is deleted, Apply
// waits for the agent to confirm, and creates it anew. Before the delete,
// the resources the new set keeps are orphaned (see orphanKept), so that
// the target's objects (the landing-zone Namespace and all in it) survive
// and the recreated work adopts them.
//
// The returned work's generation is the Maestro version the write produced;
// its status is what was last known, so judge it by ObservedGeneration.
func (d *SourceDelivery) Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	desired, err := d.desired(work)
	if err != nil {
		return nil, err
	}
	ns, name := desired.Namespace, desired.Name
	want, guarded, err := desiredGeneration(desired)
	if err != nil {
		return nil, err
	}
	log := d.log.With("consumer", ns, "work", name, "generation", want)

	attempts := 0
	recreated := false
	// again counts one more lost race and waits before the next attempt.
	again := func(why string, cause error) error {
		attempts++
		if attempts > d.opts.ConflictRetries {
			return events.Transient(fmt.Errorf("applying work %s/%s: %s, still after %d attempts: %w",
				ns, name, why, attempts, cause))
		}
		log.DebugContext(ctx, "applying work: retrying", "reason", why, "attempt", attempts, "error", cause)
		if err := sleep(ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, attempts)); err != nil {
			return fmt.Errorf("applying work %s/%s: %w", ns, name, err)
		}
		return nil
	}

	for {
		stored, err := d.read(ctx, ns, name)
		if apierrors.IsNotFound(err) {
			created, err := d.create(ctx, desired)
			switch {
			case err == nil:
				log.DebugContext(ctx, "work created", "maestroGeneration", created.Generation)
				d.cache.wrote(created)
				return created, nil
			case apierrors.IsAlreadyExists(err) || isPublishError(err, msgCreateConflict):
				// Another applier created it after our read.
				if err := again("created concurrently", err); err != nil {
					return nil, err
				}
				continue
			default:
				return nil, classify(fmt.Errorf("creating work %s/%s: %w", ns, name, err))
			}
		}
		if err != nil {
			return nil, classify(fmt.Errorf("reading work %s/%s: %w", ns, name, err))
		}

		if have, ok := ResourceGeneration(stored); guarded && ok && have > want {
			return stored, fmt.Errorf("work %s/%s is at generation %d, not applying generation %d: %w",
				ns, name, have, want, ErrStaleGeneration)
		}

		if stored.DeletionTimestamp != nil {
			d.cache.forget(ns, name)
			// Maestro refuses to patch a work it is deleting, and Create
			// says AlreadyExists until the agent confirms: wait it out.
			log.InfoContext(ctx, "work is being deleted; waiting to recreate it")
			if err := d.waitGone(ctx, ns, name); err != nil {
				return nil, err
			}
			continue
		}

		if upToDate(stored, desired) {
			log.DebugContext(ctx, "work unchanged", "maestroGeneration", stored.Generation)
			return stored, nil
		}

		patched, err := d.patch(ctx, stored, desired)
		if err != nil {
			// Whatever the refusal, what the cache held is in doubt:
			// the next attempt reads the work afresh.
			d.cache.forget(ns, name)
		}
		switch {
		case err == nil:
			log.DebugContext(ctx, "work patched", "maestroGeneration", patched.Generation)
			d.cache.wrote(patched)
			return patched, nil
		case isVersionConflict(err):
			if err := again("changed concurrently", err); err != nil {
				return nil, err
			}
		case apierrors.IsNotFound(err) || isUnderDeletion(err):
			// Deleted, or being deleted, since we read it.
			if err := again("deleted concurrently", err); err != nil {
				return nil, err
			}
		case isBundleUpdateRefused(err) && manifestSetChanged(stored, desired):
			if recreated {
				// Another writer recreated the work with another manifest
				// set after we did: a lost race like any other, bounded.
				if err := again("recreated concurrently", err); err != nil {
					return nil, err
				}
			}
			log.InfoContext(ctx, "Maestro refuses to change the manifest set in place; deleting and recreating the work, orphaning the resources it keeps",
				"error", err)
			if err := d.orphanKept(ctx, stored, desired); errors.Is(err, errLostRace) {
				if err := again("changed while orphaning its resources", err); err != nil {
					return nil, err
				}
				continue
			} else if err != nil {
				return nil, err
			}
			if err := d.Delete(ctx, ns, name); err != nil {
				return nil, err
			}
			if err := d.waitGone(ctx, ns, name); err != nil {
				return nil, err
			}
			recreated = true
		default:
			return nil, classify(fmt.Errorf("patching work %s/%s: %w", ns, name, err))
		}
	}
}

// read returns the work as Apply knows it: from the cache while the watch
// keeps that current, otherwise over REST (which then fills the cache).
func (d *SourceDelivery) read(ctx context.Context, ns, name string) (*workv1.ManifestWork, error) {
	if w, ok := d.cache.get(ns, name); ok {
		return w, nil
	}
	w, err := d.get(ctx, ns, name)
	if err == nil && w.DeletionTimestamp == nil {
		d.cache.read(w)
	}
	return w, err
}

// Cached returns the work consumer/name as this process last knew it (a
// copy), without a round trip: its latest spec, metadata (the
// AnnotationGeneration it was built from) and status as written by this
// process or seen on the watch. ok is false when the cache does not know
// the work or cannot vouch for it (the watch is not open); read it with Get
// then.
func (d *SourceDelivery) Cached(consumer, name string) (w *workv1.ManifestWork, ok bool) {
	return d.cache.get(consumer, name)
}

func (d *SourceDelivery) create(ctx context.Context, desired *workv1.ManifestWork) (created *workv1.ManifestWork, err error) {
	// The work did not exist when Apply read it: a client that checks
	// first need not read it again (Maestro refuses a duplicate anyway).
	ctx = withKnownStored(ctx, desired.Namespace, desired.Name, nil)
	err = d.works(desired.Namespace, func(c workv1client.ManifestWorkInterface) error {
		created, err = c.Create(ctx, desired.DeepCopy(), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	if created.Generation == 0 {
		// The OCM source client answers Create with the request as sent
		// (version 0); Maestro stores it as version 1.
		created.Generation = 1
		created.ResourceVersion = "1"
	}
	return created, nil
}

func (d *SourceDelivery) patch(ctx context.Context, stored, desired *workv1.ManifestWork) (patched *workv1.ManifestWork, err error) {
	data, err := mergePatch(stored, desired)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("building patch for work %s/%s: %w", desired.Namespace, desired.Name, err))
	}
	// The patch is built on stored: a client that reads the work to apply
	// the patch to may take stored (its version makes Maestro refuse the
	// patch if the work has changed since).
	ctx = withKnownStored(ctx, desired.Namespace, desired.Name, stored)
	err = d.works(desired.Namespace, func(c workv1client.ManifestWorkInterface) error {
		patched, err = c.Patch(ctx, desired.Name, types.MergePatchType, data, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	if stored.Generation != 0 && patched.Generation == stored.Generation {
		// The OCM source client answers Patch with the version the patch
		// carried; Maestro bumps its version on every accepted update (the
		// stored payload includes the CloudEvent id, so no two are equal).
		patched.Generation = stored.Generation + 1
		patched.ResourceVersion = strconv.FormatInt(patched.Generation, 10)
	}
	return patched, nil
}

// waitGone polls until the work is gone, or was created anew by another
// writer (the caller then reads it and decides again), up to DeleteWait.
func (d *SourceDelivery) waitGone(ctx context.Context, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DeleteWait)
	defer cancel()
	for i := 1; ; i++ {
		w, err := d.get(ctx, ns, name)
		if apierrors.IsNotFound(err) || (err == nil && w.DeletionTimestamp == nil) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return classify(fmt.Errorf("waiting for work %s/%s to be deleted: %w", ns, name, err))
		}
		if err := sleep(ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, i)); err != nil {
			return events.Transient(fmt.Errorf("work %s/%s is still being deleted after %s (is its agent running?): %w",
				ns, name, d.opts.DeleteWait, err))
		}
	}
}

// errLostRace marks an orphaning step that another writer overtook (the
// work changed, or went, meanwhile): Apply reads it again and decides again.
var errLostRace = errors.New("the work changed meanwhile")

// orphanKept prepares stored for a delete that must not take with it the
// resources desired keeps: it patches spec.deleteOption (guarded by
// stored's version, like every write) so that those resources are orphaned,
// and waits until the agent has applied that generation.
//
// The OCM work agent decides ownership when it applies, not when it
// deletes: applying a generation it removes the work's owner reference
// (its AppliedManifestWork's) from each resource the delete option orphans
// (helper.OwnedByTheWork: Orphan orphans all, SelectivelyOrphan those its
// rules name by group, resource, namespace and name). Deleting the work
// then deletes only the resources that still carry the owner reference
// (helper.DeleteAppliedResources); the others stay and the recreated work
// adopts them (the agent's apply merges its owner reference back in). So
// the delete may only come after the agent's Applied condition has
// observed the orphaning generation; until then, deleting would delete
// everything.
//
// Resources that desired no longer has are not orphaned: they are deleted,
// as an in-place change of the manifest set would delete them. Orphaning
// only some needs each resource's plural name, which the agent reports per
// manifest (status.resourceStatus); when one is unknown, everything is
// orphaned instead (a removed manifest's resource then stays on the cluster).
func (d *SourceDelivery) orphanKept(ctx context.Context, stored, desired *workv1.ManifestWork) error {
	ns, name := stored.Namespace, stored.Name
	want := orphanOption(stored, desired)
	if want == nil {
		return nil // nothing kept, or the work orphans all already
	}
	log := d.log.With("consumer", ns, "work", name)
	target := stored
	if !reflect.DeepEqual(stored.Spec.DeleteOption, want) {
		orphaning := &workv1.ManifestWork{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels: copyMap(stored.Labels), Annotations: copyMap(stored.Annotations)},
			Spec: *stored.Spec.DeepCopy(),
		}
		// As in every patch: the version it carries is stored's generation.
		delete(orphaning.Annotations, annotationCloudEventsResourceVersion)
		orphaning.Spec.DeleteOption = want
		patched, err := d.patch(ctx, stored, orphaning)
		switch {
		case isVersionConflict(err) || apierrors.IsNotFound(err) || isUnderDeletion(err):
			return fmt.Errorf("orphaning the resources of work %s/%s: %w: %w", ns, name, errLostRace, err)
		case err != nil:
			return classify(fmt.Errorf("orphaning the resources of work %s/%s: %w", ns, name, err))
		}
		target = patched
		log.InfoContext(ctx, "work's delete option set to orphan the resources the new manifest set keeps; waiting for the agent to apply it",
			"deleteOption", want.PropagationPolicy, "maestroGeneration", target.Generation)
	}
	return d.waitAgentApplied(ctx, ns, name, target.Generation)
}

// waitAgentApplied polls until the agent's Applied condition has observed
// generation gen of the work, up to DeleteWait.
func (d *SourceDelivery) waitAgentApplied(ctx context.Context, ns, name string, gen int64) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DeleteWait)
	defer cancel()
	for i := 1; ; i++ {
		w, err := d.get(ctx, ns, name)
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("work %s/%s: %w: deleted", ns, name, errLostRace)
		case err != nil && ctx.Err() == nil:
			return classify(fmt.Errorf("waiting for the agent to orphan the resources of work %s/%s: %w", ns, name, err))
		case err == nil && (w.DeletionTimestamp != nil || w.Generation > gen):
			return fmt.Errorf("work %s/%s: %w: now at Maestro generation %d, deleting %v", ns, name, errLostRace,
				w.Generation, w.DeletionTimestamp != nil)
		case err == nil && appliedAt(w, gen):
			return nil
		}
		if err := sleep(ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, i)); err != nil {
			return events.Transient(fmt.Errorf("the agent has not applied the delete option orphaning the resources of work %s/%s "+
				"within %s (is its agent running?); not deleting the work, which would delete them: %w", ns, name, d.opts.DeleteWait, err))
		}
	}
}

// appliedAt reports whether the agent's Applied condition (True or False)
// has observed generation gen.
func appliedAt(w *workv1.ManifestWork, gen int64) bool {
	for _, c := range w.Status.Conditions {
		if c.Type == workv1.WorkApplied {
			return c.ObservedGeneration >= gen
		}
	}
	return false
}

// orphanOption is the delete option under which deleting stored leaves the
// resources desired keeps (see orphanKept), or nil when no change is needed:
// desired keeps none of them, or stored orphans all already.
func orphanOption(stored, desired *workv1.ManifestWork) *workv1.DeleteOption {
	if o := stored.Spec.DeleteOption; o != nil && o.PropagationPolicy == workv1.DeletePropagationPolicyTypeOrphan {
		return nil
	}
	keeps := map[objectIdentity]bool{}
	for _, id := range objects(desired) {
		keeps[id] = true
	}
	var rules []workv1.OrphaningRule
	all := true
	for _, id := range objects(stored) {
		if !keeps[id] {
			all = false
			continue
		}
		rule, ok := orphaningRule(stored, id)
		if !ok {
			return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
		}
		rules = append(rules, rule)
	}
	switch {
	case len(rules) == 0:
		return nil
	case all:
		return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
	}
	if o := stored.Spec.DeleteOption; o != nil && o.SelectivelyOrphan != nil {
		// The work's own rules still hold.
		rules = append(append([]workv1.OrphaningRule(nil), o.SelectivelyOrphan.OrphaningRules...), rules...)
	}
	return &workv1.DeleteOption{
		PropagationPolicy: workv1.DeletePropagationPolicyTypeSelectivelyOrphan,
		SelectivelyOrphan: &workv1.SelectivelyOrphan{OrphaningRules: rules},
	}
}

// objectIdentity names the object a manifest is about, whatever version of
// its API group the manifest is written in.
type objectIdentity struct{ group, kind, namespace, name string }

func objects(w *workv1.ManifestWork) []objectIdentity {
	ids := identities(w)
	out := make([]objectIdentity, len(ids))
	for i, id := range ids {
		group, _, found := strings.Cut(id.apiVersion, "/")
		if !found {
			group = "" // the core group: "v1"
		}
		out[i] = objectIdentity{group, id.kind, id.namespace, id.name}
	}
	return out
}

// orphaningRule names the resource of the object id as the agent reported
// it (its plural name comes from the agent's REST mapper).
func orphaningRule(w *workv1.ManifestWork, id objectIdentity) (workv1.OrphaningRule, bool) {
	for _, m := range w.Status.ResourceStatus.Manifests {
		r := m.ResourceMeta
		if r.Group == id.group && r.Kind == id.kind && r.Namespace == id.namespace && r.Name == id.name && r.Resource != "" {
			return workv1.OrphaningRule{Group: r.Group, Resource: r.Resource, Namespace: r.Namespace, Name: r.Name}, true
		}
	}
	return workv1.OrphaningRule{}, false
}

// desired validates work and returns the copy to send: server-owned fields
// cleared, manifests encoded, deleteOption defaulted.
func (d *SourceDelivery) desired(work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	if work == nil {
		return nil, events.Permanentf("applying work: nil work")
	}
	if work.Name == "" {
		return nil, events.Permanentf("applying work: metadata.name is empty")
	}
	if work.Namespace == "" {
		return nil, events.Permanentf("applying work %s: metadata.namespace (the consumer name) is empty", work.Name)
	}
	out := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:        work.Name,
			Namespace:   work.Namespace,
			Labels:      work.Labels,
			Annotations: work.Annotations,
		},
		Spec: *work.Spec.DeepCopy(),
	}
	out.Labels = copyMap(out.Labels)
	out.Annotations = copyMap(out.Annotations)
	if len(out.Spec.Workload.Manifests) == 0 {
		return nil, events.Permanentf("applying work %s/%s: spec.workload.manifests is empty", work.Namespace, work.Name)
	}
	for i := range out.Spec.Workload.Manifests {
		m := &out.Spec.Workload.Manifests[i]
		if m.Raw == nil && m.Object != nil {
			raw, err := json.Marshal(m.Object)
			if err != nil {
				return nil, events.Permanentf("applying work %s/%s: encoding manifest %d: %w", work.Namespace, work.Name, i, err)
			}
			m.Raw, m.Object = raw, nil
		}
		if err := CheckManifest(m.Raw); err != nil {
			return nil, events.Permanentf("applying work %s/%s: manifest %d: %w", work.Namespace, work.Name, i, err)
		}
	}
	if out.Spec.DeleteOption == nil {
		out.Spec.DeleteOption = &workv1.DeleteOption{PropagationPolicy: d.opts.DeletePropagation}
	}
	return out, nil
}

// CheckManifest reports what makes raw unfit as a manifest of a
// ManifestWork: not a Kubernetes object, no apiVersion, kind or name, or a
// generateName (Maestro cannot track an object whose name it does not know).
func CheckManifest(raw []byte) error {
	if raw == nil {
		return errors.New("empty")
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	switch {
	case u.GetAPIVersion() == "":
		return errors.New("apiVersion is empty")
	case u.GetKind() == "":
		return errors.New("kind is empty")
	case u.GetName() == "":
		return fmt.Errorf("%s has no metadata.name", u.GetKind())
	case u.GetGenerateName() != "":
		return fmt.Errorf("%s %s: metadata.generateName is not allowed in a ManifestWork", u.GetKind(), u.GetName())
	}
	return nil
}

// desiredGeneration reads AnnotationGeneration of the work being applied.
func desiredGeneration(w *workv1.ManifestWork) (gen int64, ok bool, err error) {
	v, ok := w.Annotations[AnnotationGeneration]
	if !ok {
		return 0, false, nil
	}
	gen, err = strconv.ParseInt(v, 10, 64)
	if err != nil || gen < 0 {
		return 0, false, events.Permanentf("applying work %s/%s: annotation %s=%q is not a generation",
			w.Namespace, w.Name, AnnotationGeneration, v)
	}
	return gen, true, nil
}

// upToDate reports whether stored already carries desired's labels,
// annotations and spec. Manifests are compared decoded: Maestro stores them
// as JSON objects and hands back its own encoding.
func upToDate(stored, desired *workv1.ManifestWork) bool {
	if !ownedEqual(desired.Labels, stored.Labels) || !ownedEqual(desired.Annotations, stored.Annotations) {
		return false
	}
	a, errA := decoded(stored.Spec)
	b, errB := decoded(desired.Spec)
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

func decoded(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(raw, &out)
	return out, err
}

// ownedEqual compares the keys Apply owns: all of desired's, and any of
// stored's that the SDK or Maestro did not add.
func ownedEqual(desired, stored map[string]string) bool {
	for k, v := range desired {
		if sv, ok := stored[k]; !ok || sv != v {
			return false
		}
	}
	for k := range stored {
		if _, ok := desired[k]; !ok && !strings.Contains(k, foreignKeyMarker) {
			return false
		}
	}
	return true
}

// withForeign returns desired plus stored's foreign keys, so that a merge
// patch keeps them, except the resource version annotation.
func withForeign(desired, stored map[string]string) map[string]string {
	out := copyMap(desired)
	for k, v := range stored {
		if _, ok := desired[k]; ok || !strings.Contains(k, foreignKeyMarker) || k == annotationCloudEventsResourceVersion {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// mergePatch builds the JSON merge patch taking stored to desired, the way
// Maestro's grpcsource.ToWorkPatch does: it sets metadata.generation (and
// the deprecated resourceVersion) to the stored values, which is what makes
// the OCM source client publish it with that version (getWorkResourceVersion
// falls back to metadata.generation), so Maestro refuses it if the work has
// changed since. Without them the client would carry whatever version it
// reads itself just before publishing: last writer wins.
func mergePatch(stored, desired *workv1.ManifestWork) ([]byte, error) {
	oldData, err := json.Marshal(&workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Labels: stored.Labels, Annotations: stored.Annotations},
		Spec:       stored.Spec,
	})
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(&workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			UID:             stored.UID,
			ResourceVersion: stored.ResourceVersion,
			Generation:      stored.Generation,
			Labels:          withForeign(desired.Labels, stored.Labels),
			Annotations:     withForeign(desired.Annotations, stored.Annotations),
		},
		Spec: desired.Spec,
	})
	if err != nil {
		return nil, err
	}
	return jsonpatch.CreateMergePatch(oldData, newData)
}

// manifestIdentity is what Maestro's ValidateManifestBundleUpdate holds
// immutable per manifest position.
type manifestIdentity struct{ apiVersion, kind, namespace, name string }

func identities(w *workv1.ManifestWork) []manifestIdentity {
	out := make([]manifestIdentity, 0, len(w.Spec.Workload.Manifests))
	for _, m := range w.Spec.Workload.Manifests {
		var u unstructured.Unstructured
		_ = u.UnmarshalJSON(m.Raw) // validated by desired; a broken stored one compares unequal
		out = append(out, manifestIdentity{u.GetAPIVersion(), u.GetKind(), u.GetNamespace(), u.GetName()})
	}
	return out
}

func manifestSetChanged(stored, desired *workv1.ManifestWork) bool {
	return !reflect.DeepEqual(identities(stored), identities(desired))
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
		return events.Transient(fmt.Errorf("%w: %w", ErrAuthentication, err))
	case apierrors.IsNotFound(err), apierrors.IsAlreadyExists(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err),
		apierrors.IsRequestEntityTooLargeError(err):
		return events.Permanent(err)
	case isBundleUpdateRefused(err):
		// Maestro validated the manifests and refused them.
		return events.Permanent(err)
	}
	// PublishError (connection down, server trouble, lost races beyond the
	// retry bound), timeouts, 5xx, network errors, a cancelled context and
	// anything unknown: another attempt later may succeed.
	return events.Transient(err)
}

// refusedCredentials reports a gRPC refusal of the credentials after the
// OCM source client has flattened it into a PublishError's message.
func refusedCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "code = Unauthenticated") || strings.Contains(msg, "code = PermissionDenied")
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sleep waits d between tries; a wait cut short by ctx is transient.
func sleep(ctx context.Context, d time.Duration) error {
	return events.Transient(retry.Sleep(ctx, d))
}

// Watch implements Delivery. All callers share one watch on the client,
// opened by the first call; Maestro replays every work as Modified when it
// opens (and again after reconnecting), so the first subscriber sees the
// current state, later ones see changes from when they subscribed. Each
// event is handed to each subscriber in turn: a subscriber that does not
// read holds up the others, as Maestro's own watch does.
func (d *SourceDelivery) Watch(ctx context.Context) (<-chan WorkEvent, error) {
	d.hubMu.Lock()
	defer d.hubMu.Unlock()
	if d.ctx.Err() != nil {
		return nil, events.Permanentf("watching works: delivery is closed")
	}
	if !d.watching {
		w, err := d.openWatch()
		if err != nil {
			return nil, err
		}
		d.watching = true
		go d.pump(w)
	}
	sub := &hubSub{ctx: ctx, ch: make(chan WorkEvent)}
	d.subs[sub] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
		d.hubMu.Lock()
		delete(d.subs, sub)
		d.hubMu.Unlock()
		sub.close()
	}()
	return sub.ch, nil
}

// openWatch watches every consumer's works: grpcsource takes
// metav1.NamespaceAll for that. FieldSelector is ignored there; none is set.
// The watch outlives the call; the context only bounds the listing
// grpcsource does when it opens (a hung listing would hold callMu).
func (d *SourceDelivery) openWatch() (w watch.Interface, err error) {
	ctx, cancel := context.WithTimeout(d.ctx, openWatchTimeout)
	defer cancel()
	err = d.works(metav1.NamespaceAll, func(c workv1client.ManifestWorkInterface) error {
		w, err = c.Watch(ctx, metav1.ListOptions{})
		return err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("watching works: %w", err))
	}
	return w, nil
}

// pump forwards the client's watch to the subscribers until Close, and
// reopens it if it ends early.
func (d *SourceDelivery) pump(w watch.Interface) {
	defer close(d.pumpDone)
	for n := 1; ; {
		d.cache.setLive(true)
		d.forward(w)
		d.cache.setLive(false)
		w.Stop()
		go drain(w)
		if d.ctx.Err() != nil {
			return
		}
		d.log.Warn("work watch ended; reopening it")
		for {
			if sleep(d.ctx, retry.Delay(d.opts.RetryInitial, d.opts.RetryMax, n)) != nil {
				return
			}
			var err error
			if w, err = d.openWatch(); err == nil {
				break
			}
			n++
			d.log.Warn("reopening the work watch failed", "error", err)
		}
	}
}

func (d *SourceDelivery) forward(w watch.Interface) {
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-d.ctx.Done():
			return
		case ev, ok = <-w.ResultChan():
			if !ok {
				return
			}
		}
		work, isWork := ev.Object.(*workv1.ManifestWork)
		switch {
		case ev.Type == watch.Error || ev.Type == watch.Bookmark:
			d.log.Debug("work watch: ignoring event", "type", ev.Type, "object", fmt.Sprintf("%T", ev.Object))
			continue
		case !isWork:
			d.log.Warn("work watch: ignoring an object that is not a ManifestWork", "type", fmt.Sprintf("%T", ev.Object))
			continue
		case ev.Type == watch.Added:
			// Maestro sends no Added; a client that does means the same.
			ev.Type = watch.Modified
		}
		d.cache.observe(WorkEvent{Type: ev.Type, Work: work})
		d.broadcast(WorkEvent{Type: ev.Type, Work: work})
	}
}

func (d *SourceDelivery) broadcast(ev WorkEvent) {
	d.hubMu.Lock()
	subs := make([]*hubSub, 0, len(d.subs))
	for s := range d.subs {
		subs = append(subs, s)
	}
	d.hubMu.Unlock()
	for i, s := range subs {
		e := ev
		if i > 0 {
			// Each subscriber gets its own copy to read or keep.
			e.Work = ev.Work.DeepCopy()
		}
		s.send(d.ctx, e)
	}
}

// drain keeps reading a stopped watch for a moment. grpcsource's watcher
// checks "stopped" and then sends on its unbuffered channel without a way
// out, so a send that raced Stop would block every watcher of the source
// forever if nobody read it.
func drain(w watch.Interface) {
	const quiet = 200 * time.Millisecond
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
			t.Reset(quiet)
		case <-t.C:
			return
		}
	}
}

// Close stops the watch and ends every Watch channel. The client itself is
// the caller's to close.
func (d *SourceDelivery) Close() error {
	d.hubMu.Lock()
	watching := d.watching
	d.cancel()
	d.hubMu.Unlock()
	if watching {
		<-d.pumpDone
	}
	return nil
}

// hubSub is one Watch caller.
type hubSub struct {
	ctx context.Context
	// mu makes send and close exclusive: ch is closed only when no send is
	// in flight, and a send in flight gives way when ctx ends.
	mu     sync.Mutex
	closed bool
	ch     chan WorkEvent
}

func (s *hubSub) send(hubCtx context.Context, ev WorkEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- ev:
	case <-s.ctx.Done():
	case <-hubCtx.Done():
	}
}

func (s *hubSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}
