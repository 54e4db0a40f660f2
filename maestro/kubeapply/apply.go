// Apply: the work's record written first (guarded by its resourceVersion
// and the work's generation), then each manifest applied and the dropped
// objects deleted; the checks a work must pass first; error classes.

package kubeapply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// errLostRace is a write refused because another writer changed what was
// read: read again and decide again.
var errLostRace = errors.New("changed concurrently")

// Apply implements maestro.Delivery; see the package documentation.
func (d *Delivery) Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	desired, err := d.desired(work)
	if err != nil {
		return nil, err
	}
	consumer, name := desired.Namespace, desired.Name
	gen, guarded, err := maestro.DesiredGeneration(desired)
	if err != nil {
		return nil, err
	}
	manifests, err := d.resolve(desired)
	if err != nil {
		return nil, err
	}
	refs := make([]objectRef, len(manifests))
	for i, m := range manifests {
		refs[i] = m.ref
	}
	if err := d.waitInformers(ctx, refs); err != nil {
		return nil, err
	}
	log := d.log.With("consumer", consumer, "work", name, "generation", gen)
	secrets := d.cs.CoreV1().Secrets(d.opts.Namespace)
	recName := recordName(consumer, name)

	races := &maestro.LostRaces{Consumer: consumer, Name: name, Limit: d.opts.ConflictRetries,
		Initial: d.opts.RetryInitial, Max: d.opts.RetryMax, Log: log}
	again := func(why string, cause error) error { return races.Again(ctx, why, cause) }
outer:
	for {
		s, err := secrets.Get(ctx, recName, metav1.GetOptions{})
		var rec *record
		switch {
		case apierrors.IsNotFound(err):
			rec = &record{Work: *desired, Version: 1, Manifests: refs, Objects: refs}
			var created *corev1.Secret
			if created, err = d.secretOf(nil, rec); err == nil {
				s, err = secrets.Create(ctx, created, metav1.CreateOptions{FieldManager: d.opts.FieldManager})
			}
			if apierrors.IsAlreadyExists(err) {
				if err := again("created concurrently", err); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, classify(fmt.Errorf("creating the record of work %s/%s: %w", consumer, name, err))
			}
			log.DebugContext(ctx, "work record created")
		case err != nil:
			return nil, classify(fmt.Errorf("reading the record of work %s/%s: %w", consumer, name, err))
		default:
			if rec, err = decodeRecord(s); err != nil {
				return nil, failure.Permanent(err)
			}
			if have, ok := workmeta.ResourceGeneration(&rec.Work); guarded && ok && have > gen {
				return d.withStatus(s, rec), fmt.Errorf("work %s/%s is at generation %d, not applying generation %d: %w",
					consumer, name, have, gen, workmeta.ErrStaleGeneration)
			}
			if s.DeletionTimestamp != nil {
				log.InfoContext(ctx, "work is being deleted; waiting to create it anew")
				if err := d.waitGone(ctx, recName); err != nil {
					return nil, err
				}
				continue
			}
			same := upToDate(&rec.Work, desired)
			if same && rec.AppliedVersion == rec.Version && rec.Failure == nil && !d.anyMissing(rec.Manifests) {
				log.DebugContext(ctx, "work unchanged", "version", rec.Version)
				return d.withStatus(s, rec), nil
			}
			if !same {
				rec.Work = *desired
				rec.Version++
				rec.Failure = nil
				rec.Manifests = refs
				rec.Objects = union(rec.Objects, refs)
				if s, err = d.updateRecord(ctx, s, rec); err != nil {
					if errors.Is(err, errLostRace) {
						if err := again("record changed concurrently", err); err != nil {
							return nil, err
						}
						continue
					}
					return nil, err
				}
			}
		}

		// The record says what the cluster should hold; make it so.
		for i, m := range manifests {
			err := d.applyObject(ctx, m, workID(consumer, name), gen, guarded)
			switch {
			case err == nil:
				continue
			case errors.Is(err, workmeta.ErrStaleGeneration):
				return d.latest(ctx, recName, s, rec), fmt.Errorf("work %s/%s: %w", consumer, name, err)
			case errors.Is(err, errLostRace):
				// Read the record again: a newer generation may have won.
				if err := again(m.ref.String()+" changed concurrently", err); err != nil {
					return nil, err
				}
				continue outer
			case failure.IsPermanent(err):
				d.recordFailure(ctx, s, rec, i, err)
				return nil, fmt.Errorf("applying work %s/%s: manifest %d (%s): %w", consumer, name, i, m.ref, err)
			default:
				return nil, fmt.Errorf("applying work %s/%s: manifest %d (%s): %w", consumer, name, i, m.ref, err)
			}
		}
		dropped := minus(rec.Objects, refs)
		if err := d.prune(ctx, dropped, workID(consumer, name), gen, guarded, rec.Work.Spec.DeleteOption); err != nil {
			return nil, fmt.Errorf("applying work %s/%s: deleting the objects dropped from it: %w", consumer, name, err)
		}
		rec.AppliedVersion = rec.Version
		rec.Failure = nil
		rec.Objects = refs
		updated, err := d.updateRecord(ctx, s, rec)
		if errors.Is(err, errLostRace) {
			if err := again("record changed concurrently", err); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		log.DebugContext(ctx, "work applied", "version", rec.Version)
		return d.withStatus(updated, rec), nil
	}
}

// latest reads the record again for a refused Apply's answer.
func (d *Delivery) latest(ctx context.Context, recName string, s *corev1.Secret, rec *record) *workv1.ManifestWork {
	if fresh, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Get(ctx, recName, metav1.GetOptions{}); err == nil {
		if r, err := decodeRecord(fresh); err == nil {
			return d.withStatus(fresh, r)
		}
	}
	return d.withStatus(s, rec)
}

func (d *Delivery) updateRecord(ctx context.Context, s *corev1.Secret, rec *record) (*corev1.Secret, error) {
	next, err := d.secretOf(s, rec)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	updated, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: d.opts.FieldManager})
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: %w", errLostRace, err)
	case err != nil:
		return nil, classify(fmt.Errorf("writing the record of work %s/%s: %w", rec.Work.Namespace, rec.Work.Name, err))
	}
	return updated, nil
}

// recordFailure notes on the record why applying its version failed, so
// that Get and Watch report Applied=False and Degraded=True. A record that
// changed meanwhile belongs to another writer: left alone.
func (d *Delivery) recordFailure(ctx context.Context, s *corev1.Secret, rec *record, ordinal int, cause error) {
	rec.Failure = &applyFailure{Version: rec.Version, Ordinal: ordinal, Reason: "AppliedManifestFailed", Message: cause.Error()}
	if _, err := d.updateRecord(ctx, s, rec); err != nil {
		d.log.DebugContext(ctx, "work record: failure not recorded", "error", err)
	}
}

// waitGone waits, up to DeleteWait, for a deleted work's record to go.
func (d *Delivery) waitGone(ctx context.Context, recName string) error {
	deadline := time.Now().Add(d.opts.DeleteWait)
	for n := 1; ; n++ {
		_, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Get(ctx, recName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return classify(fmt.Errorf("waiting for work record %s to go: %w", recName, err))
		}
		if time.Now().After(deadline) {
			return failure.Transient(fmt.Errorf("work record %s is still being deleted after %s", recName, d.opts.DeleteWait))
		}
		if err := backoff.Sleep(ctx, backoff.Delay(d.opts.RetryInitial, d.opts.RetryMax, n)); err != nil {
			return failure.Transient(err)
		}
	}
}

// desired checks work and returns the copy to keep: server-owned fields
// cleared, manifests encoded, deleteOption defaulted.
func (d *Delivery) desired(work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	w, err := maestro.CheckWork(work)
	if err != nil {
		return nil, err
	}
	out := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels, Annotations: w.Annotations},
		Spec:       w.Spec,
	}
	for i := range out.Spec.Workload.Manifests {
		m := &out.Spec.Workload.Manifests[i]
		// Keep one encoding, so that an unchanged work compares equal.
		var v any
		if err := json.Unmarshal(m.Raw, &v); err == nil {
			m.Raw, _ = json.Marshal(v)
		}
	}
	if out.Spec.DeleteOption == nil {
		out.Spec.DeleteOption = d.opts.workDeleteOption()
	}
	return out, nil
}

// upToDate reports whether stored carries desired's labels, annotations
// and spec (manifests compared decoded).
func upToDate(stored, desired *workv1.ManifestWork) bool {
	if !reflect.DeepEqual(nonNil(stored.Labels), nonNil(desired.Labels)) || !reflect.DeepEqual(nonNil(stored.Annotations), nonNil(desired.Annotations)) {
		return false
	}
	return maestro.SameSpec(stored.Spec, desired.Spec)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// classify marks err Permanent when retrying the same request cannot help
// until someone changes the manifests, the RBAC or the cluster's APIs.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsMethodNotSupported(err):
		return failure.Permanent(err)
	}
	// NotFound (the object's namespace does not exist yet), timeouts, 5xx,
	// network errors, cancelled contexts: another try may succeed.
	return failure.Transient(err)
}
