package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// workObject returns w ready to print: type set, the SDK's bookkeeping
// left as it is (it is what Maestro holds).
func workObject(w *workv1.ManifestWork) *workv1.ManifestWork {
	out := w.DeepCopy()
	out.APIVersion, out.Kind = workGVK.GroupVersion().String(), workGVK.Kind
	return out
}

// printObject writes v as JSON or YAML.
func (inv *invocation) printObject(v any) error {
	var data []byte
	var err error
	if inv.g.Output == "json" {
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	} else {
		data, err = yaml.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encoding the output: %w", err)
	}
	_, err = inv.stdout.Write(data)
	return err
}

const tableHeader = "CONSUMER\tNAME\tGENERATION\tSTATE\tAPPLIED\tAVAILABLE\tMANIFESTS\tAGE"

func tableRow(w *workv1.ManifestWork, now time.Time) string {
	cond := func(typ string) string {
		if c := current(w, typ); c != nil {
			return string(c.Status)
		}
		return "-"
	}
	age := "-"
	if !w.CreationTimestamp.IsZero() {
		age = duration.HumanDuration(now.Sub(w.CreationTimestamp.Time))
	}
	return fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s", w.Namespace, w.Name, w.Generation, stateOf(w),
		cond(workv1.WorkApplied), cond(workv1.WorkAvailable), len(w.Spec.Workload.Manifests), age)
}

// printWork prints one work: a table row, or the object.
func (inv *invocation) printWork(w *workv1.ManifestWork) error {
	if inv.g.Output != "table" {
		return inv.printObject(workObject(w))
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tableHeader)
	fmt.Fprintln(tw, tableRow(w, time.Now()))
	return tw.Flush()
}

func (inv *invocation) printList(recs []remote.Record) error {
	if inv.g.Output != "table" {
		list := &workv1.ManifestWorkList{
			TypeMeta: metav1.TypeMeta{APIVersion: workGVK.GroupVersion().String(), Kind: "ManifestWorkList"},
			Items:    []workv1.ManifestWork{},
		}
		for _, r := range recs {
			list.Items = append(list.Items, *workObject(r.Work))
		}
		return inv.printObject(list)
	}
	if len(recs) == 0 {
		_, err := fmt.Fprintln(inv.stdout, "No works found.")
		return err
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tableHeader)
	now := time.Now()
	for _, r := range recs {
		fmt.Fprintln(tw, tableRow(r.Work, now))
	}
	return tw.Flush()
}

func (inv *invocation) printDeletions(ds []deletion) error {
	if inv.g.Output != "table" {
		return inv.printObject(map[string]any{"deletions": ds})
	}
	if len(ds) == 0 {
		_, err := fmt.Fprintln(inv.stdout, "No works to delete.")
		return err
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tNAME\tRESULT")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Consumer, d.Name, d.Result)
	}
	return tw.Flush()
}

// describe prints a work for a person, kubectl-describe style.
func describe(out io.Writer, rec *remote.Record, sourceID string) {
	w := rec.Work
	now := time.Now()
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), duration.HumanDuration(now.Sub(t)))
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	field("Name", w.Name)
	field("Consumer", w.Namespace)
	field("Source", sourceID)
	field("Resource ID", rec.ID)
	field("Generation", fmt.Sprint(w.Generation))
	field("State", stateOf(w))
	field("Created", ago(rec.CreatedAt))
	field("Updated", ago(rec.UpdatedAt))
	if rec.DeletedAt != nil {
		field("Deleting since", ago(*rec.DeletedAt))
	}
	field("Labels", keyValues(w.Labels))
	field("Annotations", keyValues(w.Annotations))
	if w.Spec.DeleteOption != nil {
		field("Delete option", string(w.Spec.DeleteOption.PropagationPolicy))
	} else {
		field("Delete option", "-")
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "Conditions:")
	if len(w.Status.Conditions) == 0 {
		fmt.Fprintln(out, "  (none: the agent has not reported)")
	} else {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tOBSERVED\tREASON\tAGE\tMESSAGE")
		for _, c := range w.Status.Conditions {
			obs := fmt.Sprint(c.ObservedGeneration)
			if c.ObservedGeneration < w.Generation {
				obs += " (stale)"
			}
			age := "-"
			if !c.LastTransitionTime.IsZero() {
				age = duration.HumanDuration(now.Sub(c.LastTransitionTime.Time))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, obs, c.Reason, age, oneLine(c.Message))
		}
		_ = tw.Flush()
	}

	fmt.Fprintf(out, "Manifests (%d):\n", len(w.Spec.Workload.Manifests))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tAPIVERSION\tKIND\tNAMESPACE\tNAME\tAPPLIED\tAVAILABLE\tDEGRADED")
	type fb struct {
		ord    int
		values []string
	}
	var feedbacks []fb
	for i, m := range w.Spec.Workload.Manifests {
		obj := &unstructured.Unstructured{}
		_ = obj.UnmarshalJSON(m.Raw)
		applied, available, degraded := "-", "-", "-"
		if mc := manifestCondition(w, obj, i); mc != nil {
			get := func(typ string) string {
				if c := meta.FindStatusCondition(mc.Conditions, typ); c != nil {
					return string(c.Status)
				}
				return "-"
			}
			applied, available, degraded = get(workv1.ManifestApplied), get(workv1.ManifestAvailable), get(workv1.ManifestDegraded)
			if v := feedbackMap(mc.StatusFeedbacks); len(v) > 0 {
				var vals []string
				for k, x := range v {
					vals = append(vals, fmt.Sprintf("%s=%v", k, x))
				}
				sort.Strings(vals)
				feedbacks = append(feedbacks, fb{ord: i, values: vals})
			}
		}
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "-"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i, obj.GetAPIVersion(), obj.GetKind(), ns, obj.GetName(), applied, available, degraded)
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "Status feedback:")
	if len(feedbacks) == 0 {
		fmt.Fprintln(out, "  (none)")
	}
	for _, f := range feedbacks {
		fmt.Fprintf(out, "  #%d: %s\n", f.ord, strings.Join(f.values, ", "))
	}
	if len(w.Spec.ManifestConfigs) > 0 {
		fmt.Fprintln(out, "Manifest configs:")
		for _, c := range w.Spec.ManifestConfigs {
			id := c.ResourceIdentifier
			var rules []string
			for _, r := range c.FeedbackRules {
				rule := string(r.Type)
				for _, p := range r.JsonPaths {
					rule += fmt.Sprintf(" %s=%s", p.Name, p.Path)
				}
				rules = append(rules, rule)
			}
			fmt.Fprintf(out, "  %s/%s %s/%s: feedback %s\n", id.Group, id.Resource, id.Namespace, id.Name, strings.Join(rules, "; "))
		}
	}
}

// manifestCondition finds the agent's status of manifest i.
func manifestCondition(w *workv1.ManifestWork, obj *unstructured.Unstructured, i int) *workv1.ManifestCondition {
	for j := range w.Status.ResourceStatus.Manifests {
		mc := &w.Status.ResourceStatus.Manifests[j]
		rm := mc.ResourceMeta
		if rm.Kind == obj.GetKind() && rm.Name == obj.GetName() && rm.Namespace == obj.GetNamespace() {
			return mc
		}
	}
	for j := range w.Status.ResourceStatus.Manifests {
		if mc := &w.Status.ResourceStatus.Manifests[j]; int(mc.ResourceMeta.Ordinal) == i && mc.ResourceMeta.Kind == "" {
			return mc
		}
	}
	return nil
}

func keyValues(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}
