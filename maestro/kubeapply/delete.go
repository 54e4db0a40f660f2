// Delete: the record is deleted and kept, by its finalizer, until the
// worker (finalize) has deleted the work's objects.

package kubeapply

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Delete implements maestro.Delivery: the record is deleted, and stays,
// marked deleting, until the worker has deleted its objects.
func (d *Delivery) Delete(ctx context.Context, consumer, name string) error {
	recName := recordName(consumer, name)
	secrets := d.cs.CoreV1().Secrets(d.opts.Namespace)
	s, err := secrets.Get(ctx, recName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("deleting work %s/%s: %w", consumer, name, err))
	}
	if s.DeletionTimestamp != nil {
		return nil
	}
	uid := s.UID
	err = secrets.Delete(ctx, recName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return classify(fmt.Errorf("deleting work %s/%s: %w", consumer, name, err))
	}
	d.queue.Add(recName)
	return nil
}

// finalize deletes a deleted work's objects (but those orphaned) and,
// once the caches show none left, releases the record.
func (d *Delivery) finalize(ctx context.Context, s *corev1.Secret, rec *record) error {
	work := workID(rec.Work.Namespace, rec.Work.Name)
	left := 0
	for _, ref := range rec.Objects {
		if orphaned(rec.Work.Spec.DeleteOption, ref) {
			continue
		}
		live := d.cached(ref)
		if live == nil || live.GetAnnotations()[AnnotationWork] != work {
			continue
		}
		left++
		if live.GetDeletionTimestamp() != nil {
			continue
		}
		// Read from the cache, which may lag: only the UID is checked. No
		// newer generation of a deleted work writes its objects (Apply
		// waits for the record to go).
		if err := d.deleteObject(ctx, d.resource(ref), live, false); err != nil {
			return err
		}
	}
	if left > 0 {
		return nil // the objects' informers bring the work back here
	}
	next := s.DeepCopy()
	var kept []string
	for _, f := range next.Finalizers {
		if f != FinalizerObjects {
			kept = append(kept, f)
		}
	}
	next.Finalizers = kept
	_, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: d.opts.FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("releasing the record of deleted work %s: %w", work, err))
	}
	return nil
}
