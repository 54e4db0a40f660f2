// SourceDelivery's Apply: the guarded create-or-patch loop (generation
// guard, stale-patch re-read, recreate when Maestro refuses to change the
// manifest set in place), its reads and writes, and the copy of the work it
// sends.

package maestro

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// Apply implements Delivery.
//
// A desired work without the workmeta.AnnotationGeneration annotation is applied
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
	want, guarded, err := DesiredGeneration(desired)
	if err != nil {
		return nil, err
	}
	log := d.log.With("consumer", ns, "work", name, "generation", want)

	recreated := false
	races := &LostRaces{Consumer: ns, Name: name, Limit: d.opts.ConflictRetries,
		Initial: d.opts.RetryInitial, Max: d.opts.RetryMax, Log: log}
	// again counts one more lost race and waits before the next attempt.
	again := func(why string, cause error) error { return races.Again(ctx, why, cause) }

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

		if have, ok := workmeta.ResourceGeneration(stored); guarded && ok && have > want {
			return stored, fmt.Errorf("work %s/%s is at generation %d, not applying generation %d: %w",
				ns, name, have, want, workmeta.ErrStaleGeneration)
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
	err = d.works(desired.Namespace, func(c workv1client.ManifestWorkInterface) error {
		if u, ok := c.(VersionedUpdater); ok {
			patched, err = u.UpdateVersioned(ctx, patchedWork(stored, desired))
			return err
		}
		data, err := mergePatch(stored, desired)
		if err != nil {
			return failure.Permanent(fmt.Errorf("building patch for work %s/%s: %w", desired.Namespace, desired.Name, err))
		}
		// The patch is built on stored: a client that reads the work to
		// apply the patch to may take stored (its version makes Maestro
		// refuse the patch if the work has changed since).
		ctx := withKnownStored(ctx, desired.Namespace, desired.Name, stored)
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
		if err := sleep(ctx, backoff.Delay(d.opts.RetryInitial, d.opts.RetryMax, i)); err != nil {
			return failure.Transient(fmt.Errorf("work %s/%s is still being deleted after %s (is its agent running?): %w",
				ns, name, d.opts.DeleteWait, err))
		}
	}
}

// desired checks work and returns the copy to send: server-owned fields
// cleared, manifests encoded, deleteOption defaulted.
func (d *SourceDelivery) desired(work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	w, err := CheckWork(work)
	if err != nil {
		return nil, err
	}
	out := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels, Annotations: w.Annotations},
		Spec:       w.Spec,
	}
	if out.Spec.DeleteOption == nil {
		out.Spec.DeleteOption = &workv1.DeleteOption{PropagationPolicy: d.opts.DeletePropagation}
	}
	return out, nil
}
