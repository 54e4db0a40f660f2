package handlers_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  handlers.Config
		want []string // substrings of the error; nil = valid
	}{
		{"minimal namespace", handlers.Config{Type: "namespace"}, nil},
		{"named template", handlers.Config{Type: "template", Name: "np-cfg", TemplateDir: "x", Kinds: []string{"NodePool"}}, nil},
		{"unknown type", handlers.Config{Type: "dns"}, []string{"Type", `"dns" is not an adapter type`, "namespace, nodepool"}},
		{"empty type", handlers.Config{}, []string{"Type"}},
		{"bad name", handlers.Config{Type: "idp", Name: "My_IDP"}, []string{"Name", `"My_IDP"`}},
		{"bad naming", handlers.Config{Type: "idp", Naming: "C"}, []string{"Naming", `"C"`}},
		{"pattern A for node pools", handlers.Config{Type: "nodepool", Naming: handlers.NamingPerAdapter}, []string{"Naming", "every NodePool of a cluster would share one work"}},
		{"pattern A for template node pools", handlers.Config{Type: "template", TemplateDir: "x", Kinds: []string{"Cluster", "NodePool"}, Naming: handlers.NamingPerAdapter}, []string{"Naming", "NodePool"}},
		{"bad consumer", handlers.Config{Type: "idp", Consumer: handlers.ConsumerRule{Source: handlers.ConsumerFixed, Arg: "UP"}}, []string{"Consumer", `"UP"`}},
		{"unknown placeholder", handlers.Config{Type: "namespace", Namespace: "lz-{cluster-uuid}"}, []string{"Namespace", "{cluster-uuid}"}},
		{"empty namespace", handlers.Config{Type: "namespace", Namespace: "--"}, []string{"Namespace", "empty name"}},
		{"template without dir", handlers.Config{Type: "template"}, []string{"TemplateDir", "required"}},
		{"dir on another type", handlers.Config{Type: "idp", TemplateDir: "x"}, []string{"TemplateDir", "only used by type template"}},
		{"kinds on another type", handlers.Config{Type: "ingress", Kinds: []string{"Cluster"}}, []string{"Kinds"}},
		{"pull secret on another type", handlers.Config{Type: "idp", PullSecretFile: "f"}, []string{"PullSecretFile"}},
		{"negative replicas", handlers.Config{Type: "ingress", IngressReplicas: -1}, []string{"IngressReplicas", "-1"}},
		{"blank kind", handlers.Config{Type: "template", TemplateDir: "x", Kinds: []string{" "}}, []string{"Kinds", "entry 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNamingPatternUnmarshal(t *testing.T) {
	for in, want := range map[string]handlers.NamingPattern{"A": handlers.NamingPerAdapter, "b": handlers.NamingPerResource, "per-adapter": handlers.NamingPerAdapter, "": ""} {
		var p handlers.NamingPattern
		if err := p.UnmarshalText([]byte(in)); err != nil || p != want {
			t.Errorf("UnmarshalText(%q) = %q, %v; want %q", in, p, err, want)
		}
	}
	var p handlers.NamingPattern
	if err := p.UnmarshalText([]byte("per-cluster")); err == nil || !strings.Contains(err.Error(), "per-cluster") {
		t.Errorf("UnmarshalText(per-cluster) = %v, want an error naming it", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badJSON := write("bad.json", `{"auths": {"quay.io": {"auth": "c2VjcmV0LXZhbHVl"`)
	noAuths := write("noauths.json", `{"credsStore": "s3cr3t-store"}`)
	tplDir := filepath.Join(dir, "tpl")
	if err := os.Mkdir(tplDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tplDir, "broken.yaml"), []byte("a: 1\nb: {{ .Resource.Name \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyDir, "README.md"), []byte("# not a template\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		cfg    handlers.Config
		want   []string
		forbid []string
	}{
		{"missing pull secret file", handlers.Config{Type: "pullsecret", PullSecretFile: filepath.Join(dir, "nope.json")}, []string{"PullSecretFile", "nope.json"}, nil},
		{"pull secret not JSON", handlers.Config{Type: "pullsecret", PullSecretFile: badJSON}, []string{"PullSecretFile", "bad.json", "not valid JSON"}, []string{"c2VjcmV0", "quay"}},
		{"pull secret without auths", handlers.Config{Type: "pullsecret", PullSecretFile: noAuths}, []string{"noauths.json", `no "auths"`}, []string{"s3cr3t"}},
		{"missing template dir", handlers.Config{Type: "template", TemplateDir: filepath.Join(dir, "none")}, []string{"TemplateDir", "none"}, nil},
		{"template parse error", handlers.Config{Type: "template", TemplateDir: tplDir}, []string{"TemplateDir", "broken.yaml:2"}, nil},
		{"nothing to render", handlers.Config{Type: "template", TemplateDir: emptyDir}, []string{"no *.yaml"}, nil},
		{"invalid config", handlers.Config{Type: "nope"}, []string{"Type"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := handlers.New(tt.cfg)
			if err == nil {
				t.Fatalf("New = %v, want an error", h.Type())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, f := range tt.forbid {
				if strings.Contains(err.Error(), f) {
					t.Errorf("error %q reveals %q", err, f)
				}
			}
		})
	}
}

func TestHandles(t *testing.T) {
	tests := []struct {
		cfg     handlers.Config
		yes, no []string
	}{
		{handlers.Config{Type: "namespace"}, []string{"Cluster"}, []string{"NodePool", "cluster", ""}},
		{handlers.Config{Type: "idp"}, []string{"Cluster"}, []string{"NodePool"}},
		{handlers.Config{Type: "ingress"}, []string{"Cluster"}, []string{"NodePool"}},
		{handlers.Config{Type: "pullsecret"}, []string{"Cluster"}, []string{"NodePool"}},
		{handlers.Config{Type: "nodepool"}, []string{"NodePool"}, []string{"Cluster"}},
		{handlers.Config{Type: "template", TemplateDir: "testdata/templates"}, []string{"Cluster"}, []string{"NodePool"}},
		{handlers.Config{Type: "template", TemplateDir: "testdata/templates", Kinds: []string{"NodePool", "Widget"}}, []string{"NodePool", "Widget"}, []string{"Cluster"}},
	}
	for _, tt := range tests {
		h := newHandler(t, tt.cfg)
		if h.Type() != tt.cfg.Type {
			t.Errorf("Type() = %q, want %q", h.Type(), tt.cfg.Type)
		}
		for _, k := range tt.yes {
			if !h.Handles(k) {
				t.Errorf("%s: Handles(%q) = false", tt.cfg.Type, k)
			}
		}
		for _, k := range tt.no {
			if h.Handles(k) {
				t.Errorf("%s: Handles(%q) = true", tt.cfg.Type, k)
			}
		}
	}
}

// TestBuildErrors covers targets every type refuses, permanently.
func TestBuildErrors(t *testing.T) {
	cluster := loadResource(t, "cluster-gen1")
	np := loadResource(t, "nodepool-gen1")
	other := *cluster
	other.ID = "019466a0-0000-7000-8000-000000000000"
	noGen := *cluster
	noGen.Generation = 0
	badID := *cluster
	badID.ID = "id with spaces"

	tests := []struct {
		name string
		cfg  handlers.Config
		tg   handlers.Target
		want []string
	}{
		{"no resource", handlers.Config{Type: "idp"}, handlers.Target{}, []string{"no resource"}},
		{"invalid resource", handlers.Config{Type: "idp"}, handlers.Target{Resource: &noGen}, []string{"generation 0"}},
		{"kind not handled", handlers.Config{Type: "idp"}, handlers.Target{Resource: np, Cluster: cluster}, []string{"does not handle NodePool"}},
		{"node pool kind not handled", handlers.Config{Type: "nodepool"}, handlers.Target{Resource: cluster}, []string{"does not handle Cluster"}},
		{"node pool without cluster", handlers.Config{Type: "nodepool"}, handlers.Target{Resource: np}, []string{"needs its cluster"}},
		{"node pool of another cluster", handlers.Config{Type: "nodepool"}, handlers.Target{Resource: np, Cluster: &other}, []string{"belongs to cluster 019466a0-8f8e"}},
		{"cluster with another cluster", handlers.Config{Type: "idp"}, handlers.Target{Resource: cluster, Cluster: &other}, []string{"as its own cluster"}},
		{"id not a label value", handlers.Config{Type: "idp"}, handlers.Target{Resource: &badID}, []string{`"id with spaces"`, "hyperfleet.io/resource-id"}},
		{"consumer label missing", handlers.Config{Type: "idp", Consumer: handlers.ConsumerRule{Source: handlers.ConsumerLabel, Arg: "mgmt"}}, handlers.Target{Resource: cluster}, []string{"label:mgmt", `no label "mgmt"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newHandler(t, tt.cfg).Build(tt.tg)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			if !failure.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestTypeSpecificErrors covers what each built-in type needs from spec.
func TestTypeSpecificErrors(t *testing.T) {
	cluster := loadResource(t, "cluster-gen1")
	np := loadResource(t, "nodepool-gen1")
	withSpec := func(r *hyperfleet.Resource, edit func(spec map[string]any)) *hyperfleet.Resource {
		c := *loadResource(t, map[string]string{hyperfleet.KindCluster: "cluster-gen1", hyperfleet.KindNodePool: "nodepool-gen1"}[r.Kind])
		edit(c.Spec)
		return &c
	}
	tests := []struct {
		name string
		cfg  handlers.Config
		tg   handlers.Target
		want []string
	}{
		{"ingress without base domain", handlers.Config{Type: "ingress"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) { delete(s, "dns") })}, []string{"spec.dns.baseDomain"}},
		{"ingress base domain not a string", handlers.Config{Type: "ingress"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) { s["dns"] = map[string]any{"baseDomain": 7.0} })}, []string{"spec.dns.baseDomain is a number"}},
		{"ingress base domain invalid", handlers.Config{Type: "ingress"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) { s["dns"] = map[string]any{"baseDomain": "bad_domain!"} })}, []string{"not a DNS name"}},
		{"idp not a list", handlers.Config{Type: "idp"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) { s["identityProviders"] = map[string]any{} })}, []string{"spec.identityProviders is a object, want a list"}},
		{"idp without type", handlers.Config{Type: "idp"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) { s["identityProviders"] = []any{map[string]any{"name": "x"}} })}, []string{"identityProviders[0] needs a name and a type"}},
		{"idp duplicate", handlers.Config{Type: "idp"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) {
				s["identityProviders"] = []any{map[string]any{"name": "x", "type": "HTPasswd"}, map[string]any{"name": "x", "type": "GitHub"}}
			})}, []string{"[0] and [1] are both named \"x\""}},
		{"node pool without count", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { delete(s, "autoscaling"); delete(s, "nodeCount") })}, []string{"spec.nodeCount is missing"}},
		{"node pool fractional count", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { delete(s, "autoscaling"); s["nodeCount"] = 2.5 })}, []string{"spec.nodeCount", "2.5 is not an integer"}},
		{"node pool autoscaling without bounds", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { s["autoscaling"] = map[string]any{"enabled": true} })}, []string{"minNodes or maxNodes is missing"}},
		{"node pool inverted bounds", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["autoscaling"] = map[string]any{"enabled": true, "minNodes": 5.0, "maxNodes": 2.0}
			})}, []string{"5..2"}},
		{"node pool unknown platform", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { s["platform"] = map[string]any{"type": "vsphere"} })}, []string{`spec.platform.type "vsphere" is not a NodePool platform of HyperShift API`}},
		// The pinned HyperShift API accepts OpenStack only behind a feature gate.
		{"node pool openstack", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { s["platform"] = map[string]any{"type": "openstack"} })}, []string{`spec.platform.type "openstack"`}},
		{"node pool platform field hypershift lacks", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["platform"] = map[string]any{"type": "aws", "aws": map[string]any{"instanceType": "m5.large", "diskSize": 100.0}}
			})}, []string{"spec.platform.aws", `unknown field "diskSize"`}},
		{"node pool platform field of the wrong type", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["platform"] = map[string]any{"type": "aws", "aws": map[string]any{"instanceType": 5.0}}
			})}, []string{"spec.platform.aws", "instanceType"}},
		{"node pool none with settings", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["platform"] = map[string]any{"type": "none", "none": map[string]any{"x": 1.0}}
			})}, []string{"spec.platform.none", "takes no settings"}},
		{"node pool management field hypershift lacks", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["management"] = map[string]any{"upgradeType": "Replace", "maxUnavailable": 1.0}
			})}, []string{"spec.management", `unknown field "maxUnavailable"`}},
		// The HyperFleet API's own node pool sample asks for a CPU target,
		// which HyperShift's autoscaler cannot hold.
		{"node pool autoscaling CPU target", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) {
				s["autoscaling"] = map[string]any{"enabled": true, "minNodes": 1.0, "maxNodes": 10.0, "targetCPUUtilization": 80.0}
			})}, []string{"spec.autoscaling.targetCPUUtilization cannot be expressed"}},
		{"node pool count beyond int32", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: cluster, Resource: withSpec(np, func(s map[string]any) { delete(s, "autoscaling"); s["nodeCount"] = 1e10 })}, []string{"spec.nodeCount", "out of range"}},
		{"idp field openshift lacks", handlers.Config{Type: "idp"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) {
				s["identityProviders"] = []any{map[string]any{"name": "gh", "type": "GitHub", "github": map[string]any{"clientID": "x", "organisations": []any{"o"}}}}
			})}, []string{"spec.identityProviders[0]", `unknown field "organisations"`}},
		{"idp value of the wrong type", handlers.Config{Type: "idp"},
			handlers.Target{Resource: withSpec(cluster, func(s map[string]any) {
				s["identityProviders"] = []any{map[string]any{"name": "gh", "type": "GitHub", "github": map[string]any{"clientID": 7.0}}}
			})}, []string{"spec.identityProviders[0]", "clientID"}},
		{"node pool without release", handlers.Config{Type: "nodepool"},
			handlers.Target{Cluster: withSpec(cluster, func(s map[string]any) { delete(s, "release") }), Resource: np}, []string{"no release image"}},
		{"pull secret missing", handlers.Config{Type: "pullsecret"},
			handlers.Target{Resource: cluster}, []string{"no pull secret", "spec.pullSecret is not set", "no PullSecretFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newHandler(t, tt.cfg).Build(tt.tg)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			if !failure.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestDeletingDoesNotNeedAValidSpec: a resource being deleted still gets
// its work (by name and consumer, without manifests) when its spec no
// longer builds, so that cleanup is never blocked by the spec.
func TestDeletingDoesNotNeedAValidSpec(t *testing.T) {
	broken := map[string]func(spec map[string]any){
		handlers.TypePullSecret: func(s map[string]any) { delete(s, "pullSecret") },
		handlers.TypeIngress:    func(s map[string]any) { delete(s, "dns") },
		handlers.TypeIDP:        func(s map[string]any) { s["identityProviders"] = "oops" },
		handlers.TypeTemplate:   func(s map[string]any) { delete(s, "release") },
	}
	tplDir := templateDir(t, map[string]string{"a.yaml": configMapDoc + "data:\n  x: {{ required \"spec.release.version is required\" .Resource.Spec.release.version }}\n"})
	cfgs := map[string]handlers.Config{
		handlers.TypePullSecret: {Type: handlers.TypePullSecret},
		handlers.TypeIngress:    {Type: handlers.TypeIngress},
		handlers.TypeIDP:        {Type: handlers.TypeIDP},
		handlers.TypeTemplate:   {Type: handlers.TypeTemplate, TemplateDir: tplDir},
	}
	for typ, edit := range broken {
		h := newHandler(t, cfgs[typ])
		live := loadResource(t, "cluster-gen2")
		edit(live.Spec)
		if _, err := h.Build(handlers.Target{Resource: live}); err == nil {
			t.Errorf("%s: live build with a broken spec succeeded", typ)
		}
		del := loadResource(t, "cluster-deleting-gen3")
		edit(del.Spec)
		works, err := h.Build(handlers.Target{Resource: del})
		if err != nil {
			t.Errorf("%s: deleting build: %v", typ, err)
			continue
		}
		intact, err := newHandler(t, cfgs[typ]).Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
		if typ == handlers.TypePullSecret {
			intact, err = newHandler(t, handlers.Config{Type: typ, PullSecretFile: "testdata/pull-secret.json"}).Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(works) != 1 || works[0].Name != intact[0].Name || works[0].Namespace != intact[0].Namespace {
			t.Errorf("%s: deleting work %s/%s, want %s/%s", typ, works[0].Namespace, works[0].Name, intact[0].Namespace, intact[0].Name)
		}
		if n := len(works[0].Spec.Workload.Manifests); n != 0 {
			t.Errorf("%s: deleting work has %d manifests, want none", typ, n)
		}
	}

	// Where the work lives must still be known: a consumer error fails.
	del := loadResource(t, "cluster-deleting-gen3")
	_, err := newHandler(t, handlers.Config{Type: handlers.TypeIDP, Consumer: handlers.ConsumerRule{Source: handlers.ConsumerLabel, Arg: "mgmt"}}).Build(handlers.Target{Resource: del})
	if err == nil || !failure.IsPermanent(err) {
		t.Errorf("deleting with an unresolvable consumer = %v, want a permanent error", err)
	}
}
