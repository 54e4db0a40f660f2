package handlers_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
)

func TestDNSLabel(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		in, want string
	}{
		{"hp-cluster-abc12", "hp-cluster-abc12"},
		{"Worker_Pool.1", "worker-pool-1"},
		{"--a--b--", "a-b"},
		{"  spaced  out  ", "spaced-out"},
		{"ünïcode-name", "n-code-name"},
		{strings.Repeat("x", 63), strings.Repeat("x", 63)},
	}
	for _, tt := range tests {
		if got := handlers.DNSLabel(tt.in); got != tt.want {
			t.Errorf("DNSLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}

	// Too long: cut to 54, then '-' and 8 hex digits of the whole name.
	got := handlers.DNSLabel(long)
	if len(got) != 63 || !strings.HasPrefix(got, strings.Repeat("a", 54)+"-") {
		t.Errorf("DNSLabel(70 a's) = %q (%d), want 54 a's, '-', hash", got, len(got))
	}
	if again := handlers.DNSLabel(long); again != got {
		t.Errorf("not deterministic: %q then %q", got, again)
	}
	// A cut that ends on '-' drops it rather than doubling it.
	dashy := strings.Repeat("b", 53) + "-" + strings.Repeat("c", 20)
	if got := handlers.DNSLabel(dashy); strings.Contains(got, "--") || !strings.HasPrefix(got, strings.Repeat("b", 53)+"-") || len(got) != 62 {
		t.Errorf("DNSLabel(dash at the cut) = %q", got)
	}
	// Nothing usable left: the hash alone is a label.
	for _, in := range []string{"", "___", strings.Repeat("-", 80)} {
		if got := handlers.DNSLabel(in); len(validation.IsDNS1123Label(got)) > 0 {
			t.Errorf("DNSLabel(%q) = %q is not a label", in, got)
		}
	}
}

func TestDNSLabelAlwaysValid(t *testing.T) {
	inputs := []string{
		"A", "9", "-x-", "x.y.z", "UPPER-lower", "with spaces and / slashes",
		strings.Repeat("Z", 200), strings.Repeat("a-", 40), strings.Repeat("é", 30) + "end",
		"trailing-" + strings.Repeat("9", 60) + "---",
	}
	for _, in := range inputs {
		got := handlers.DNSLabel(in)
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("DNSLabel(%q) = %q: %v", in, got, errs)
		}
	}
}

func TestDNSLabelCollisionResistance(t *testing.T) {
	// 2000 names sharing a 70-character prefix differ only past the cut.
	prefix := strings.Repeat("cluster-", 9)
	seen := make(map[string]string, 2000)
	for i := range 2000 {
		in := fmt.Sprintf("%s%04d", prefix, i)
		got := handlers.DNSLabel(in)
		if prev, dup := seen[got]; dup {
			t.Fatalf("%q and %q both give %q", prev, in, got)
		}
		seen[got] = in
	}
	// Case matters to the hash even though the readable part folds it.
	a, b := handlers.DNSLabel(strings.Repeat("Q", 70)), handlers.DNSLabel(strings.Repeat("q", 70))
	if a == b {
		t.Errorf("long names differing in case collide: %q", a)
	}
}

func TestWorkNames(t *testing.T) {
	cluster := loadResource(t, "cluster-gen1")
	np := loadResource(t, "nodepool-gen1")
	build := func(cfg handlers.Config, tg handlers.Target) string {
		t.Helper()
		works, err := newHandler(t, cfg).Build(tg)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return works[0].Name
	}

	// Pattern A, the default for cluster types; {adapter} is the name.
	if got := build(handlers.Config{Type: handlers.TypeIngress}, handlers.Target{Resource: cluster}); got != "hyperfleet-hp-cluster-abc12-ingress" {
		t.Errorf("pattern A = %q", got)
	}
	if got := build(handlers.Config{Type: handlers.TypeIngress, Name: "edge"}, handlers.Target{Resource: cluster}); got != "hyperfleet-hp-cluster-abc12-edge" {
		t.Errorf("pattern A with a name = %q", got)
	}
	// Pattern B, the default for node pools.
	if got := build(handlers.Config{Type: handlers.TypeNodePool}, handlers.Target{Resource: np, Cluster: cluster}); got != "hp-cluster-abc12-nodepool-worker-pool-1" {
		t.Errorf("pattern B = %q", got)
	}
	// Pattern B chosen for a cluster type.
	if got := build(handlers.Config{Type: handlers.TypeIngress, Naming: handlers.NamingPerResource}, handlers.Target{Resource: cluster}); got != "hp-cluster-abc12-ingress-hp-cluster-abc12" {
		t.Errorf("pattern B for a cluster = %q", got)
	}

	// A long, oddly spelt cluster name still gives a label, and two such
	// clusters that differ only at the end get different works.
	long1, long2 := *cluster, *cluster
	long1.Name = "Team_Platform." + strings.Repeat("very-long-", 6) + "one"
	long2.Name = "Team_Platform." + strings.Repeat("very-long-", 6) + "two"
	cfg := handlers.Config{Type: handlers.TypeIngress, Consumer: handlers.ConsumerRule{Source: handlers.ConsumerFixed, Arg: "mgmt-1"}}
	n1, n2 := build(cfg, handlers.Target{Resource: &long1}), build(cfg, handlers.Target{Resource: &long2})
	for _, n := range []string{n1, n2} {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("work name %q: %v", n, errs)
		}
		if !strings.HasPrefix(n, "hyperfleet-team-platform-very-long-") {
			t.Errorf("work name %q lost its readable prefix", n)
		}
	}
	if n1 == n2 {
		t.Errorf("distinct clusters share work name %q", n1)
	}

	// Node pool names inside manifests are normalised too.
	odd := *np
	odd.Name = "GPU_Pool"
	works, err := newHandler(t, handlers.Config{Type: handlers.TypeNodePool}).Build(handlers.Target{Resource: &odd, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	if got := works[0].Name; got != "hp-cluster-abc12-nodepool-gpu-pool" {
		t.Errorf("work name = %q", got)
	}
	if got := works[0].Spec.ManifestConfigs[0].ResourceIdentifier.Name; got != "gpu-pool" {
		t.Errorf("NodePool object name = %q", got)
	}
}

func TestNamespacePattern(t *testing.T) {
	cluster := loadResource(t, "cluster-gen1")
	works, err := newHandler(t, handlers.Config{Type: handlers.TypePullSecret, Namespace: "clusters-{cluster-name}", PullSecretFile: "testdata/pull-secret.json"}).
		Build(handlers.Target{Resource: cluster})
	if err != nil {
		t.Fatal(err)
	}
	if got := works[0].Spec.ManifestConfigs[0].ResourceIdentifier.Namespace; got != "clusters-hp-cluster-abc12" {
		t.Errorf("secret namespace = %q, want clusters-hp-cluster-abc12", got)
	}
}
