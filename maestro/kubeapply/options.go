package kubeapply

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// The environment variables that set Options in the adapter; Validate's
// errors name them.
const (
	EnvNamespace         = "KUBE_WORK_NAMESPACE"
	EnvFieldManager      = "KUBE_FIELD_MANAGER"
	EnvDeletePropagation = "KUBE_DELETE_PROPAGATION"
)

// Options configures a Delivery. Zero durations take the defaults.
type Options struct {
	// Namespace holds the work records (one Secret per work). Required.
	Namespace string
	// FieldManager names the adapter in server-side apply (the objects'
	// managedFields) and labels everything the delivery writes
	// (LabelDeliveredBy), which is how its informers find its objects.
	// Replicas of one adapter share it; different adapters must not.
	// Required; a valid label value (at most 63 characters).
	FieldManager string
	// DeletePropagation says what deleting a work (or dropping a manifest
	// from it) does to its objects: Foreground (default) and Background
	// delete them with that propagation policy (Foreground: an object is
	// gone only once its own dependents are, so the work is too);
	// Orphan leaves them. Works that carry no spec.deleteOption get one
	// saying so: Orphan, or Foreground for both others.
	DeletePropagation metav1.DeletionPropagation
	// ConflictRetries bounds how many times one Apply reads again and
	// retries after losing a race to another writer (of the record or of an
	// object). Default 5.
	ConflictRetries int
	// RetryInitial and RetryMax shape the backoff between those attempts.
	// Defaults 20ms and 1s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// DeleteWait bounds how long Apply waits for a work being deleted to be
	// gone before creating it anew. Default 1m.
	DeleteWait time.Duration
	// SyncTimeout bounds the wait for an informer's first list (the work
	// records at New, a kind's objects when a work first uses it).
	// Default 30s.
	SyncTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate reports the first option that cannot work.
func (o Options) Validate() error {
	switch {
	case strings.TrimSpace(o.Namespace) == "":
		return fmt.Errorf("%s: not set, and not running in a pod whose namespace could be read (the namespace of the work records)", EnvNamespace)
	case o.FieldManager == "":
		return fmt.Errorf("%s: the field manager is required", EnvFieldManager)
	case o.ConflictRetries < 0:
		return fmt.Errorf("kubernetes delivery options: ConflictRetries must not be negative, got %d", o.ConflictRetries)
	case o.RetryInitial < 0 || o.RetryMax < 0 || o.DeleteWait < 0 || o.SyncTimeout < 0:
		return fmt.Errorf("kubernetes delivery options: durations must not be negative")
	case o.RetryMax != 0 && o.RetryInitial > o.RetryMax:
		return fmt.Errorf("kubernetes delivery options: RetryInitial %s exceeds RetryMax %s", o.RetryInitial, o.RetryMax)
	}
	if errs := validation.IsValidLabelValue(o.FieldManager); len(errs) > 0 {
		return fmt.Errorf("%s: %q is not a valid label value: %s", EnvFieldManager, o.FieldManager, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("%s: %q is not a namespace name: %s", EnvNamespace, o.Namespace, strings.Join(errs, "; "))
	}
	switch o.DeletePropagation {
	case "", metav1.DeletePropagationForeground, metav1.DeletePropagationBackground, metav1.DeletePropagationOrphan:
	default:
		return fmt.Errorf("%s: %q, want %s, %s or %s", EnvDeletePropagation, o.DeletePropagation,
			metav1.DeletePropagationForeground, metav1.DeletePropagationBackground, metav1.DeletePropagationOrphan)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.ConflictRetries, o.RetryInitial, o.RetryMax, o.DeleteWait =
		maestro.ApplyRetryDefaults(o.ConflictRetries, o.RetryInitial, o.RetryMax, o.DeleteWait)
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 30 * time.Second
	}
	if o.DeletePropagation == "" {
		o.DeletePropagation = metav1.DeletePropagationForeground
	}
	return o
}

// workDeleteOption is the spec.deleteOption of works that carry none.
func (o Options) workDeleteOption() *workv1.DeleteOption {
	if o.DeletePropagation == metav1.DeletePropagationOrphan {
		return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}
	}
	return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}
}
