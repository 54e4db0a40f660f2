package hyperfleet

import (
	"testing"
)

func TestRelativePath(t *testing.T) {
	good := map[string]string{
		"/api/hyperfleet/v1/clusters/a":              "clusters/a",
		"/api/hyperfleet/v1/clusters/a/nodepools/b/": "clusters/a/nodepools/b",
		"https://api.hyperfleet.com/v1/clusters/a":   "clusters/a",
	}
	for in, want := range good {
		if got, err := RelativePath(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "/api/hyperfleet/v1/", "/api/hyperfleet/v1/clusters/../../etc", "https://host"} {
		if _, err := RelativePath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
