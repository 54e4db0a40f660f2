package kubeapply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

// Labels, annotations and names of what the delivery writes.
const (
	// LabelDeliveredBy (value: the field manager) is on every work record
	// and every object applied: the informers select on it.
	LabelDeliveredBy = "hyperfleet.io/delivered-by"
	// AnnotationWork (value: consumer/name) says which work an object
	// belongs to. The generation guard compares generations only between
	// writes of the same work.
	AnnotationWork = "hyperfleet.io/work"
	// AnnotationConsumer and AnnotationWorkName are on work records, for
	// people reading them with kubectl.
	AnnotationConsumer = "hyperfleet.io/consumer"
	AnnotationWorkName = "hyperfleet.io/work-name"
	// FinalizerObjects keeps a deleted work's record until its objects are
	// gone, so that the work is reported Deleted only then, and a restart
	// meanwhile finds what is left to delete.
	FinalizerObjects = "hyperfleet.io/work-objects"
	// SecretType is the type of the work records' Secrets.
	SecretType corev1.SecretType = "hyperfleet.io/manifestwork"
	// recordKey is the Secret's data key holding the record.
	recordKey = "record"
)

// record is what the delivery keeps about one work, in a Secret (the
// manifests may hold secrets, e.g. the pull secret adapter's).
type record struct {
	// Work is the work as applied: name, namespace (the consumer),
	// labels, annotations and spec. Its status is computed, not stored.
	Work workv1.ManifestWork `json:"work"`
	// Version counts the changes of Work: the work's metadata.generation.
	Version int64 `json:"version"`
	// AppliedVersion is the Version whose manifests were all applied.
	AppliedVersion int64 `json:"appliedVersion,omitempty"`
	// Failure is why applying Version failed, if it did.
	Failure *applyFailure `json:"failure,omitempty"`
	// Manifests are the objects of Work's manifests, in order.
	Manifests []objectRef `json:"manifests"`
	// Objects are every object of the work that may exist on the cluster:
	// Manifests and those dropped from the set but not yet deleted. Deleting
	// the work deletes these.
	Objects []objectRef `json:"objects"`
}

type applyFailure struct {
	Version int64  `json:"version"`
	Ordinal int    `json:"ordinal"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// objectRef names one object and the API resource serving it.
type objectRef struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Resource  string `json:"resource"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// resource names ref as the agent's manifest configs and delete options do.
func (r objectRef) resource() feedback.Resource {
	return feedback.Resource{Group: r.Group, Resource: r.Resource, Namespace: r.Namespace, Name: r.Name}
}

func (r objectRef) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

func (r objectRef) String() string {
	gr := schema.GroupResource{Group: r.Group, Resource: r.Resource}.String()
	if r.Namespace == "" {
		return gr + " " + r.Name
	}
	return gr + " " + r.Namespace + "/" + r.Name
}

// objectKey identifies an object whatever version of its API it is read in.
type objectKey struct {
	group, resource, namespace, name string
}

func (r objectRef) key() objectKey { return objectKey{r.Group, r.Resource, r.Namespace, r.Name} }

func containsRef(refs []objectRef, r objectRef) bool {
	return slices.ContainsFunc(refs, func(x objectRef) bool { return x.key() == r.key() })
}

// union is a followed by b's objects not in a.
func union(a, b []objectRef) []objectRef {
	out := slices.Clone(a)
	for _, r := range b {
		if !containsRef(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// minus is a's objects not in b.
func minus(a, b []objectRef) []objectRef {
	var out []objectRef
	for _, r := range a {
		if !containsRef(b, r) {
			out = append(out, r)
		}
	}
	return out
}

// recordName is the work record's Secret name: a hash, because consumer
// and work names together can exceed a name's length and "a.b"+"c" must
// not meet "a"+"b.c".
func recordName(consumer, name string) string {
	sum := sha256.Sum256([]byte(consumer + "\x00" + name))
	return "hf-work-" + hex.EncodeToString(sum[:16])
}

// workID is the AnnotationWork value of a work's objects.
func workID(consumer, name string) string { return consumer + "/" + name }

func decodeRecord(s *corev1.Secret) (*record, error) {
	var r record
	if err := json.Unmarshal(s.Data[recordKey], &r); err != nil {
		return nil, fmt.Errorf("work record %s/%s is unreadable: %w", s.Namespace, s.Name, err)
	}
	return &r, nil
}

// secretOf returns the Secret holding rec, based on base (nil: a new one).
func (d *Delivery) secretOf(base *corev1.Secret, rec *record) (*corev1.Secret, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding work record: %w", err)
	}
	s := &corev1.Secret{}
	if base != nil {
		s = base.DeepCopy()
	} else {
		consumer, name := rec.Work.Namespace, rec.Work.Name
		s.ObjectMeta = metav1.ObjectMeta{
			Name:        recordName(consumer, name),
			Namespace:   d.opts.Namespace,
			Labels:      map[string]string{LabelDeliveredBy: d.opts.FieldManager},
			Annotations: map[string]string{AnnotationConsumer: consumer, AnnotationWorkName: name},
			Finalizers:  []string{FinalizerObjects},
		}
		s.Type = SecretType
	}
	s.Data = map[string][]byte{recordKey: raw}
	return s, nil
}

// workOf is the work rec describes, as stored in s, without status.
func workOf(s *corev1.Secret, rec *record) *workv1.ManifestWork {
	w := rec.Work.DeepCopy()
	w.Status = workv1.ManifestWorkStatus{}
	w.Generation = rec.Version
	w.UID = s.UID
	w.ResourceVersion = s.ResourceVersion
	w.CreationTimestamp = s.CreationTimestamp
	w.DeletionTimestamp = s.DeletionTimestamp
	return w
}
