// Package helm_test renders the chart under hyperfleet-maestro-adapter/
// with Helm's own Go library (what `helm template` and `helm install` run),
// once per adapter type's values file, decodes every object strictly into
// its typed Kubernetes struct, and compares it with what the kustomize
// overlay of the same type renders (deploy/kustomize): settings, secrets,
// security contexts, probes, resources, volumes, RBAC rules, Service, PDB
// and HPA must be the same. The default delivery (maestro) is compared with
// overlays/<type>, which grant no RBAC; delivery=job with
// overlays-job/<type>, which add components/job-delivery's Role. With a test control plane (KUBECONFIG from
// deploy/local/kube/kube.sh env) a real kube-apiserver validates every
// object with a server-side dry run, under Pod Security "restricted".
package helm_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	chartDir      = "hyperfleet-maestro-adapter"
	kustomizeDir  = "../kustomize"
	namespace     = "hyperfleet-system"
	containerName = "adapter"
)

// scheme knows the kinds the chart may render and no other, so a stray
// kind fails decoding.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, rbacv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes JSON into typed objects and fails on unknown or duplicate
// fields, as kube-apiserver's fieldValidation=Strict does.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Strict: true})

// rendered is one adapter's objects, from the chart or from kustomize.
type rendered struct {
	from string // "helm namespace", "kustomize namespace"
	raw  []map[string]any

	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.Role
	roleBinding    *rbacv1.RoleBinding
	clusterRole    *rbacv1.ClusterRole
	clusterBinding *rbacv1.ClusterRoleBinding
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	configMaps     map[string]*corev1.ConfigMap // by name, kustomize's content hash removed
}

// hashSuffix is the content hash kustomize appends to generated ConfigMaps
// (ten characters of the alphabet its hash encoding uses, which no adapter
// type's name fits).
var hashSuffix = regexp.MustCompile(`-[bcdfghkmt2-9]{10}$`)

func decode(t *testing.T, from string, docs [][]byte, unhash bool) *rendered {
	t.Helper()
	r := &rendered{from: from, configMaps: map[string]*corev1.ConfigMap{}}
	for _, doc := range docs {
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if strings.TrimSpace(string(data)) == "null" {
			continue
		}
		obj, gvk, err := strict.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("%s: an object does not decode strictly into its Kubernetes type: %v\n%s", from, err, doc)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		r.raw = append(r.raw, raw)
		dup := func(have bool) {
			if have {
				t.Fatalf("%s: more than one %s", from, gvk.Kind)
			}
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dup(r.deployment != nil)
			r.deployment = o
		case *corev1.Service:
			dup(r.service != nil)
			r.service = o
		case *corev1.ServiceAccount:
			dup(r.serviceAccount != nil)
			r.serviceAccount = o
		case *rbacv1.Role:
			dup(r.role != nil)
			r.role = o
		case *rbacv1.RoleBinding:
			dup(r.roleBinding != nil)
			r.roleBinding = o
		case *rbacv1.ClusterRole:
			dup(r.clusterRole != nil)
			r.clusterRole = o
		case *rbacv1.ClusterRoleBinding:
			dup(r.clusterBinding != nil)
			r.clusterBinding = o
		case *policyv1.PodDisruptionBudget:
			dup(r.pdb != nil)
			r.pdb = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			dup(r.hpa != nil)
			r.hpa = o
		case *corev1.ConfigMap:
			name := o.Name
			if unhash {
				name = hashSuffix.ReplaceAllString(name, "")
			}
			r.configMaps[name] = o
		default:
			t.Fatalf("%s: unexpected %s", from, gvk)
		}
	}
	// RBAC depends on the delivery: the callers check it.
	for name, missing := range map[string]bool{
		"Deployment": r.deployment == nil, "Service": r.service == nil,
		"ServiceAccount": r.serviceAccount == nil, "PodDisruptionBudget": r.pdb == nil,
		"HorizontalPodAutoscaler": r.hpa == nil,
	} {
		if missing {
			t.Fatalf("%s renders no %s", from, name)
		}
	}
	return r
}

// adapterTypes are the kustomize overlays: one adapter type each.
func adapterTypes(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(kustomizeDir, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) < 6 {
		t.Fatalf("found only the overlays %v: has deploy/kustomize moved?", out)
	}
	return out
}

// renderChart runs the chart as `helm template --namespace ns -f
// values-<type>.yaml --set ...` would, and returns the rendered documents
// (or the error Helm gives, e.g. a schema violation).
func renderChart(t *testing.T, ns string, valueFiles []string, set []string) ([][]byte, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	opts := values.Options{Values: set}
	for _, f := range valueFiles {
		opts.ValueFiles = append(opts.ValueFiles, filepath.Join(chartDir, f))
	}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = "adapter"
	install.Namespace = ns
	install.Replace = true
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	manifest := rel.(*release.Release).Manifest
	split := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var docs [][]byte
	for _, k := range keys {
		docs = append(docs, []byte(split[k]))
	}
	return docs, nil
}

// helmFor renders values-<typ>.yaml with the --set values given.
func helmFor(t *testing.T, typ, ns string, set ...string) *rendered {
	t.Helper()
	docs, err := renderChart(t, ns, []string{"values-" + typ + ".yaml"}, set)
	if err != nil {
		t.Fatalf("helm template -f values-%s.yaml %v: %v", typ, set, err)
	}
	return decode(t, strings.TrimSpace(fmt.Sprintf("helm %s %s", typ, strings.Join(set, " "))), docs, false)
}

// jobDelivery are the --set values that make the chart render what
// overlays-job/<typ> renders: Job delivery, and that overlay's names (its
// -<typ>-job suffix, subscription and source id) with the type's
// ADAPTER_NAME.
func jobDelivery(typ string) []string {
	return []string{"delivery=job", "fullnameOverride=hyperfleet-maestro-adapter-" + typ + "-job",
		"adapter.subscriptionId=hyperfleet-adapter-" + typ + "-job", "adapter.sourceId=hyperfleet-adapter-" + typ + "-job"}
}

// kubernetesDelivery are the --set values for DELIVERY=kubernetes with the
// namespace adapter's cluster rules (README "Kubernetes delivery", RBAC),
// under names of their own (-<typ>-kube).
func kubernetesDelivery(typ string) []string {
	return []string{"delivery=kubernetes", "fullnameOverride=hyperfleet-maestro-adapter-" + typ + "-kube",
		"adapter.subscriptionId=hyperfleet-adapter-" + typ + "-kube", "adapter.sourceId=hyperfleet-adapter-" + typ + "-kube",
		"kubernetesDelivery.rules[0].apiGroups[0]=", "kubernetesDelivery.rules[0].resources={namespaces,configmaps}",
		"kubernetesDelivery.rules[0].verbs={get,list,watch,create,patch,delete}"}
}

// kustomizeFor builds overlays/<typ> (dir "overlays") or overlays-job/<typ>.
func kustomizeFor(t *testing.T, dir, typ string) *rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(kustomizeDir, dir, typ))
	if err != nil {
		t.Fatalf("kustomize build %s/%s: %v", dir, typ, err)
	}
	var docs [][]byte
	for _, res := range m.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	return decode(t, "kustomize "+dir+"/"+typ, docs, true)
}

// Every adapter type has a values file, and the chart's output for it
// decodes strictly into the expected objects, named as kustomize names
// them, in the release namespace, each labelled with its instance.
func TestValuesFilePerAdapterType(t *testing.T) {
	var files []string
	entries, err := os.ReadDir(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "values-") && strings.HasSuffix(n, ".yaml") {
			files = append(files, strings.TrimSuffix(strings.TrimPrefix(n, "values-"), ".yaml"))
		}
	}
	if types := adapterTypes(t); !slices.Equal(files, types) {
		t.Fatalf("values files for %v, want one per adapter type %v", files, types)
	}
	for _, typ := range files {
		t.Run(typ, func(t *testing.T) {
			r := helmFor(t, typ, namespace)
			instance := "hyperfleet-maestro-adapter-" + typ
			for _, raw := range r.raw {
				u := unstructured.Unstructured{Object: raw}
				// Named as the kustomize overlays name them: another type's
				// release in the same namespace does not clash.
				if n := u.GetName(); u.GetNamespace() != namespace || !strings.HasPrefix(n, "hyperfleet-maestro-adapter-") || !strings.HasSuffix(n, "-"+typ) {
					t.Errorf("%s %s in namespace %q: want hyperfleet-maestro-adapter-...-%s in %s", u.GetKind(), n, u.GetNamespace(), typ, namespace)
				}
				if l := u.GetLabels(); l["app.kubernetes.io/instance"] != instance || l["app.kubernetes.io/name"] != "hyperfleet-maestro-adapter" {
					t.Errorf("%s %s: labels %v", u.GetKind(), u.GetName(), l)
				}
			}
		})
	}
}

// `helm lint` has nothing to say about the chart with any type's values,
// nor with the job and kubernetes deliveries (info messages, e.g. a missing
// icon, aside).
func TestLint(t *testing.T) {
	cases := map[string][]string{}
	for _, typ := range adapterTypes(t) {
		cases[typ] = nil
	}
	cases["namespace/job"] = jobDelivery("namespace")
	cases["namespace/kubernetes"] = kubernetesDelivery("namespace")
	for name, set := range cases {
		typ, _, _ := strings.Cut(name, "/")
		t.Run(name, func(t *testing.T) {
			vals, err := (&values.Options{ValueFiles: []string{filepath.Join(chartDir, "values-"+typ+".yaml")}, Values: set}).MergeValues(getter.Providers{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lint.RunAll(chartDir, vals, namespace).Messages {
				t.Logf("helm lint: %s", m)
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// jobOverlays are the adapter types deploy/kustomize/overlays-job has an
// overlay for.
func jobOverlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(kustomizeDir, "overlays-job"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatal("no overlays-job/<type>: has deploy/kustomize moved?")
	}
	return out
}

// The chart renders what the kustomize overlay of the same type renders,
// field by field where it matters: with its default delivery (maestro) what
// overlays/<type> renders, with no RBAC at all; with delivery=job what
// overlays-job/<type> renders, with components/job-delivery's Role.
func TestChartMatchesKustomize(t *testing.T) {
	for _, typ := range adapterTypes(t) {
		t.Run(typ, func(t *testing.T) {
			h, k := helmFor(t, typ, namespace), kustomizeFor(t, "overlays", typ)
			for _, r := range []*rendered{h, k} {
				if r.role != nil || r.roleBinding != nil || r.clusterRole != nil || r.clusterBinding != nil {
					t.Errorf("%s renders RBAC; Maestro delivery needs no Kubernetes API rights", r.from)
				}
			}
			compareRendered(t, h, k)
		})
	}
	for _, typ := range jobOverlays(t) {
		t.Run("job/"+typ, func(t *testing.T) {
			h, k := helmFor(t, typ, namespace, jobDelivery(typ)...), kustomizeFor(t, "overlays-job", typ)
			for _, r := range []*rendered{h, k} {
				if r.role == nil || r.roleBinding == nil {
					t.Fatalf("%s renders no Role or RoleBinding for Job delivery", r.from)
				}
				if r.clusterRole != nil || r.clusterBinding != nil {
					t.Errorf("%s renders cluster-wide RBAC; Job delivery needs its namespace only", r.from)
				}
			}
			if got := settingsOf(t, h, container(t, h))["DELIVERY"]; got != "job" {
				t.Errorf("DELIVERY = %q, want job", got)
			}
			compareRendered(t, h, k)
			sameAs(t, "role rules", h.role.Rules, k.role.Rules)
			sameAs(t, "role binding", []any{h.roleBinding.RoleRef, h.roleBinding.Subjects}, []any{k.roleBinding.RoleRef, k.roleBinding.Subjects})
		})
	}
}

// sameAs fails the test, showing both, when the chart's got differs from
// want (kustomize's, or the README's).
func sameAs(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("%s differs:\n chart: %s\n want:  %s", what, gj, wj)
	}
}

// compareRendered compares everything but RBAC, which depends on the
// delivery.
func compareRendered(t *testing.T, h, k *rendered) {
	t.Helper()
	same := func(what string, got, want any) {
		t.Helper()
		sameAs(t, what, got, want)
	}
	// Names (kustomize's content hashes aside).
	same("object names", objectNames(h), objectNames(k))

	// Settings: the ConfigMap the container's envFrom names, and
	// the env entries (secretKeyRefs and file paths).
	hc, kc := container(t, h), container(t, k)
	same("settings", settingsOf(t, h, hc), settingsOf(t, k, kc))
	same("env", hc.Env, kc.Env)
	for name, cm := range k.configMaps {
		if name == k.deployment.Name {
			continue // the settings, compared above
		}
		hcm, ok := h.configMaps[name]
		if !ok {
			t.Errorf("kustomize renders ConfigMap %s, the chart does not", name)
			continue
		}
		same("ConfigMap "+name+" keys", keys(hcm.Data), keys(cm.Data))
		for key, want := range cm.Data {
			got := hcm.Data[key]
			if strings.HasSuffix(key, ".yaml") && key == "values.yaml" {
				// Free-form values: the same YAML, comments aside.
				var gv, wv any
				if err := yaml.Unmarshal([]byte(got), &gv); err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal([]byte(want), &wv); err != nil {
					t.Fatal(err)
				}
				same("ConfigMap "+name+" "+key, gv, wv)
				continue
			}
			same("ConfigMap "+name+" "+key, got, want)
		}
	}

	// The pod: everything but the labels and annotations (managed-by
	// and the chart's checksums differ by design) and the generated
	// ConfigMaps' hashed names.
	hp, kp := normalizedPod(h), normalizedPod(k)
	same("pod spec", hp, kp)
	same("pod selector labels", selectorLabels(h.deployment.Spec.Template.Labels), selectorLabels(k.deployment.Spec.Template.Labels))
	same("container security context", hc.SecurityContext, kc.SecurityContext)
	same("pod security context", h.deployment.Spec.Template.Spec.SecurityContext, k.deployment.Spec.Template.Spec.SecurityContext)
	same("probes", []*corev1.Probe{hc.LivenessProbe, hc.ReadinessProbe}, []*corev1.Probe{kc.LivenessProbe, kc.ReadinessProbe})
	same("resources", hc.Resources, kc.Resources)
	same("deployment selector", h.deployment.Spec.Selector, k.deployment.Spec.Selector)
	same("replicas and strategy", []any{h.deployment.Spec.Replicas, h.deployment.Spec.Strategy, h.deployment.Spec.RevisionHistoryLimit},
		[]any{k.deployment.Spec.Replicas, k.deployment.Spec.Strategy, k.deployment.Spec.RevisionHistoryLimit})

	// Service, PDB, HPA.
	same("service", h.service.Spec, k.service.Spec)
	same("pod disruption budget", h.pdb.Spec, k.pdb.Spec)
	same("horizontal pod autoscaler", h.hpa.Spec, k.hpa.Spec)
}

// objectNames lists kind/name of every object (ConfigMaps without
// kustomize's hash).
func objectNames(r *rendered) []string {
	var out []string
	for _, raw := range r.raw {
		u := unstructured.Unstructured{Object: raw}
		name := u.GetName()
		if u.GetKind() == "ConfigMap" {
			name = hashSuffix.ReplaceAllString(name, "")
		}
		out = append(out, u.GetKind()+"/"+name)
	}
	sort.Strings(out)
	return out
}

func container(t *testing.T, r *rendered) *corev1.Container {
	t.Helper()
	for i := range r.deployment.Spec.Template.Spec.Containers {
		if c := &r.deployment.Spec.Template.Spec.Containers[i]; c.Name == containerName {
			return c
		}
	}
	t.Fatalf("%s: no container %q", r.from, containerName)
	return nil
}

// settingsOf is the data of the ConfigMap the container takes its
// environment from.
func settingsOf(t *testing.T, r *rendered, c *corev1.Container) map[string]string {
	t.Helper()
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil {
		t.Fatalf("%s: envFrom %+v, want one configMapRef", r.from, c.EnvFrom)
	}
	cm, ok := r.configMaps[hashSuffix.ReplaceAllString(c.EnvFrom[0].ConfigMapRef.Name, "")]
	if !ok {
		t.Fatalf("%s: envFrom names ConfigMap %s, which is not rendered", r.from, c.EnvFrom[0].ConfigMapRef.Name)
	}
	return cm.Data
}

// normalizedPod is the pod spec with generated ConfigMap names unhashed and
// volumes and mounts in name order (kustomize's patches put an overlay's
// first; the order means nothing).
func normalizedPod(r *rendered) corev1.PodSpec {
	spec := *r.deployment.Spec.Template.Spec.DeepCopy()
	sort.Slice(spec.Volumes, func(i, j int) bool { return spec.Volumes[i].Name < spec.Volumes[j].Name })
	for i := range spec.Containers {
		m := spec.Containers[i].VolumeMounts
		sort.Slice(m, func(i, j int) bool { return m[i].Name < m[j].Name })
	}
	for i := range spec.Volumes {
		if cm := spec.Volumes[i].ConfigMap; cm != nil {
			cm.Name = hashSuffix.ReplaceAllString(cm.Name, "")
		}
	}
	for i := range spec.Containers {
		for j := range spec.Containers[i].EnvFrom {
			if ref := spec.Containers[i].EnvFrom[j].ConfigMapRef; ref != nil {
				ref.Name = hashSuffix.ReplaceAllString(ref.Name, "")
			}
		}
	}
	return spec
}

func selectorLabels(l map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of", "app.kubernetes.io/component"} {
		out[k] = l[k]
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Values the schema refuses fail the render with an error naming them;
// documented overrides change what they say.
func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		set     []string
		wantErr string
	}{
		{name: "no adapter type", wantErr: "/adapter/type"},
		{name: "unknown adapter type", set: []string{"adapter.type=carrier-pigeon"}, wantErr: "/adapter/type"},
		{name: "template without templates", set: []string{"adapter.type=template"}, wantErr: "/template/files"},
		{name: "bad duration", files: []string{"values-namespace.yaml"}, set: []string{"statusTimeout=soon"}, wantErr: "/statusTimeout"},
		{name: "misspelt value", files: []string{"values-namespace.yaml"}, set: []string{"replicas=3"}, wantErr: "'replicas' not allowed"},
		{name: "bad digest", files: []string{"values-namespace.yaml"}, set: []string{"image.digest=latest"}, wantErr: "/image/digest"},
		{name: "unknown trace protocol", files: []string{"values-namespace.yaml"}, set: []string{"tracing.protocol=thrift"}, wantErr: "/tracing/protocol"},
		// The in-process stand-in would report a simulated agent's status
		// as real.
		{name: "embedded delivery", files: []string{"values-namespace.yaml"}, set: []string{"delivery=embedded"}, wantErr: "/delivery"},
		{name: "kubernetes delivery without rules", files: []string{"values-namespace.yaml"}, set: []string{"delivery=kubernetes"}, wantErr: "/kubernetesDelivery/rules"},
		{name: "kubernetes delivery, unknown verb", files: []string{"values-namespace.yaml"},
			set: append(kubernetesDelivery("namespace"), "kubernetesDelivery.rules[0].verbs={escalate}"), wantErr: "/kubernetesDelivery/rules/0/verbs/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, namespace, tc.files, tc.set)
			if err == nil || !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want a schema error naming %s", err, tc.wantErr)
			}
		})
	}

	// --set adapter.type works without a values file (all but template).
	docs, err := renderChart(t, "team-a", nil, []string{"adapter.type=nodepool", "adapter.name=np-east",
		"image.digest=sha256:" + strings.Repeat("ab", 32), "tracing.otlpEndpoint=http://otel-collector:4317",
		"tracing.protocol=grpc", "settings.STATUS_WATCH=all", "settings.CONCURRENCY=8"})
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, "helm --set", docs, false)
	c := container(t, r)
	got := settingsOf(t, r, c)
	for k, want := range map[string]string{
		"ADAPTER_TYPE": "nodepool", "ADAPTER_NAME": "np-east", "HYPERFLEET_BROKER_TOPIC": "team-a-nodepools",
		"HYPERFLEET_BROKER_SUBSCRIPTION_ID": "hyperfleet-adapter-np-east", "MAESTRO_SOURCE_ID": "hyperfleet-adapter-np-east",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"STATUS_WATCH": "all", "CONCURRENCY": "8",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if want := "quay.io/openshift-hyperfleet/maestro-adapter@sha256:" + strings.Repeat("ab", 32); c.Image != want {
		t.Errorf("image %s, want %s", c.Image, want)
	}
	if r.deployment.Name != "hyperfleet-maestro-adapter-np-east" || r.deployment.Namespace != "team-a" {
		t.Errorf("deployment %s/%s", r.deployment.Namespace, r.deployment.Name)
	}

	// Job delivery's Jobs run the adapter's image, pinned as it is.
	digest := "sha256:" + strings.Repeat("cd", 32)
	j := helmFor(t, "namespace", namespace, append(jobDelivery("namespace"), "image.digest="+digest)...)
	if got, want := settingsOf(t, j, container(t, j))["JOB_IMAGE"], "quay.io/openshift-hyperfleet/maestro-adapter@"+digest; got != want {
		t.Errorf("JOB_IMAGE = %q, want %q (the adapter's pinned image)", got, want)
	}

	// A changed setting changes the pod template (checksum), so it rolls.
	before, _ := renderChart(t, namespace, []string{"values-namespace.yaml"}, nil)
	after, _ := renderChart(t, namespace, []string{"values-namespace.yaml"}, []string{"logLevel=debug"})
	b, a := decode(t, "before", before, false), decode(t, "after", after, false)
	if b.deployment.Spec.Template.Annotations["checksum/config"] == a.deployment.Spec.Template.Annotations["checksum/config"] {
		t.Error("changing logLevel left the pod template's checksum/config as it was: the Deployment would not roll")
	}
}

// delivery=kubernetes renders the RBAC README's "Kubernetes delivery"
// section documents for the namespace adapter (its Role on the work records,
// its ClusterRole from kubernetesDelivery.rules), bound to the adapter's
// ServiceAccount, and no Maestro settings or certificate.
func TestKubernetesDelivery(t *testing.T) {
	r := helmFor(t, "namespace", namespace, kubernetesDelivery("namespace")...)
	if r.role == nil || r.roleBinding == nil || r.clusterRole == nil || r.clusterBinding == nil {
		t.Fatalf("%s: want a Role, RoleBinding, ClusterRole and ClusterRoleBinding", r.from)
	}
	doc := readmeKubernetesRBAC(t)
	sameAs(t, "Role rules (chart vs README)", r.role.Rules, doc["Role"])
	sameAs(t, "ClusterRole rules (chart vs README)", r.clusterRole.Rules, doc["ClusterRole"])
	sa := []rbacv1.Subject{{Kind: "ServiceAccount", Name: r.deployment.Spec.Template.Spec.ServiceAccountName, Namespace: namespace}}
	sameAs(t, "RoleBinding", []any{r.roleBinding.RoleRef, r.roleBinding.Subjects},
		[]any{rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.role.Name}, sa})
	sameAs(t, "ClusterRoleBinding", []any{r.clusterBinding.RoleRef, r.clusterBinding.Subjects},
		[]any{rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.clusterRole.Name}, sa})
	if !strings.HasSuffix(r.clusterRole.Name, "-"+namespace) {
		t.Errorf("ClusterRole %s: want the release namespace in the name of a cluster-scoped object", r.clusterRole.Name)
	}

	c := container(t, r)
	settings := settingsOf(t, r, c)
	if settings["DELIVERY"] != "kubernetes" {
		t.Errorf("DELIVERY = %q, want kubernetes", settings["DELIVERY"])
	}
	for k := range settings {
		if strings.HasPrefix(k, "MAESTRO_") && k != "MAESTRO_SOURCE_ID" || strings.HasPrefix(k, "JOB_") {
			t.Errorf("setting %s with DELIVERY=kubernetes", k)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "MAESTRO_") {
			t.Errorf("env %s with DELIVERY=kubernetes", e.Name)
		}
	}
	// A Secret that need not exist would keep the pod from starting.
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Name == "maestro-client-tls" {
			t.Error("DELIVERY=kubernetes mounts Maestro's client certificate")
		}
	}
}

// readmeKubernetesRBAC is the RBAC the top-level README's "Kubernetes
// delivery" section documents (kind -> rules), so that chart and README
// cannot drift apart.
func readmeKubernetesRBAC(t *testing.T) map[string][]rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "- *RBAC.* In `KUBE_WORK_NAMESPACE`")
	if i < 0 {
		t.Fatal("README.md: no *RBAC.* item under Kubernetes delivery")
	}
	text = text[i:]
	start := strings.Index(text, "```yaml\n")
	end := strings.Index(text[start+1:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README.md: the *RBAC.* item has no yaml block")
	}
	out := map[string][]rbacv1.PolicyRule{}
	for _, part := range strings.Split(text[start+len("```yaml\n"):start+1+end], "\n  ---\n") {
		var doc struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.UnmarshalStrict([]byte(part), &doc); err != nil {
			t.Fatalf("README.md RBAC block: %v\n%s", err, part)
		}
		out[doc.Kind] = doc.Rules
	}
	if len(out["Role"]) == 0 || len(out["ClusterRole"]) == 0 {
		t.Fatalf("README.md RBAC block: want a Role and a ClusterRole, got %v", out)
	}
	return out
}

// TestServerSideDryRun has a real kube-apiserver validate and default every
// object of every adapter type's release, and of the namespace adapter's
// with the job and kubernetes deliveries (dry run, strict field
// validation) in a namespace enforcing Pod Security "restricted", and
// dry-runs a pod as the ReplicaSet controller would make it. Then it
// creates all of them in that one namespace (the releases do not clash) and
// asks the server what each delivery's ServiceAccount may do: nothing with
// Maestro delivery, what the Role grants with the others.
func TestServerSideDryRun(t *testing.T) {
	cfg := requireControlPlane(t)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(cs.Discovery())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "helmtest-" + hex.EncodeToString(suffix), Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})

	all := map[string]*rendered{}
	for _, typ := range adapterTypes(t) {
		all[typ] = helmFor(t, typ, ns.Name)
	}
	all["namespace/job"] = helmFor(t, "namespace", ns.Name, jobDelivery("namespace")...)
	all["namespace/kubernetes"] = helmFor(t, "namespace", ns.Name, kubernetesDelivery("namespace")...)
	outer := t
	create := func(t *testing.T, r *rendered, dryRun []string) {
		t.Helper()
		for _, raw := range r.raw {
			u := &unstructured.Unstructured{Object: raw}
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: the server does not serve %s: %v", r.from, gvk, err)
			}
			client := dyn.Resource(m.Resource).Namespace(ns.Name)
			if m.Scope.Name() == meta.RESTScopeNameRoot {
				// The kubernetes delivery's ClusterRole and binding: the
				// namespace's deletion does not take them along.
				client := dyn.Resource(m.Resource)
				if _, err := client.Create(ctx, u.DeepCopy(), metav1.CreateOptions{DryRun: dryRun, FieldValidation: "Strict"}); err != nil {
					t.Errorf("%s: create %s %s (dry run %v): %v", r.from, gvk.Kind, u.GetName(), dryRun, err)
				} else if len(dryRun) == 0 {
					// At the end of the whole test, not of this subtest: the
					// access reviews below need them.
					outer.Cleanup(func() { _ = client.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
				}
				continue
			}
			_, err = client.Create(ctx, u.DeepCopy(), metav1.CreateOptions{
				DryRun: dryRun, FieldValidation: "Strict"})
			if err != nil {
				t.Errorf("%s: create %s %s (dry run %v): %v", r.from, gvk.Kind, u.GetName(), dryRun, err)
			}
		}
	}
	for typ, r := range all {
		t.Run("dry-run/"+typ, func(t *testing.T) {
			create(t, r, []string{metav1.DryRunAll})
			pod := &corev1.Pod{
				ObjectMeta: *r.deployment.Spec.Template.ObjectMeta.DeepCopy(),
				Spec:       *r.deployment.Spec.Template.Spec.DeepCopy(),
			}
			pod.Name = r.deployment.Name + "-pod"
			if _, err := cs.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("a pod of Deployment %s is refused: %v", r.deployment.Name, err)
			}
		})
	}
	if w := warnings.take(); len(w) > 0 {
		t.Errorf("the server warned: %q", w)
	}
	if t.Failed() {
		return
	}
	for typ, r := range all {
		t.Run("create/"+typ, func(t *testing.T) { create(t, r, nil) })
	}
	if w := warnings.take(); len(w) > 0 {
		t.Errorf("the server warned: %q", w)
	}
	if t.Failed() {
		return
	}

	// What each delivery's ServiceAccount may do, as the server's RBAC
	// authorizer decides it.
	for _, c := range []struct {
		release         string
		group, resource string
		verb            string
		clusterWide     bool
		want            bool
	}{
		{"namespace", "batch", "jobs", "create", false, false},
		{"namespace", "", "secrets", "get", false, false},
		{"namespace", "", "configmaps", "create", false, false},
		{"namespace/job", "batch", "jobs", "create", false, true},
		{"namespace/job", "", "secrets", "create", false, true},
		{"namespace/job", "", "pods", "watch", false, true},
		{"namespace/job", "", "secrets", "get", false, false},
		{"namespace/job", "batch", "jobs", "delete", false, false},
		{"namespace/job", "batch", "jobs", "create", true, false},
		{"namespace/kubernetes", "", "secrets", "update", false, true},
		{"namespace/kubernetes", "", "namespaces", "create", true, true},
		{"namespace/kubernetes", "", "configmaps", "patch", true, true},
		{"namespace/kubernetes", "", "secrets", "get", true, false},
		{"namespace/kubernetes", "batch", "jobs", "create", false, false},
	} {
		r := all[c.release]
		attrs := &authorizationv1.ResourceAttributes{Group: c.group, Resource: c.resource, Verb: c.verb, Namespace: ns.Name}
		if c.clusterWide {
			attrs.Namespace = ""
		}
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + ns.Name + ":" + r.deployment.Spec.Template.Spec.ServiceAccountName,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns.Name, "system:authenticated"},
			ResourceAttributes: attrs,
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != c.want {
			t.Errorf("%s: may %s %s.%s (namespace %q) = %v, want %v", r.from, c.verb, c.resource, c.group, attrs.Namespace, got.Status.Allowed, c.want)
		}
	}
}

// requireControlPlane returns the local test control plane's client
// configuration: skipped without KUBECONFIG, failed under
// REQUIRE_INTEGRATION=1. It refuses any server that is not loopback, as
// maestro/jobs/kubetest does (that package lives in the adapter's module,
// which this one does not import, to keep the two dependency graphs apart).
func requireControlPlane(t *testing.T) *rest.Config {
	t.Helper()
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		msg := `no test control plane (KUBECONFIG unset); run: deploy/local/kube/kube.sh start && eval "$(deploy/local/kube/kube.sh env)"`
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatal("REQUIRE_INTEGRATION=1 but " + msg)
		}
		t.Skip(msg)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", path, err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("kubeconfig %s points at %s, not a loopback address; refusing to create objects in what may be a real cluster", path, cfg.Host)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

// warningRecorder is a rest.WarningHandler that keeps what the server
// warned about (PodSecurity's warn level answers with warnings).
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, fmt.Sprintf("%d %s", code, text))
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}
