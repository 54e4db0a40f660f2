package maestrotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bundle is a work as Maestro's REST API shows it (a resource bundle):
// what an operator sees, independent of any source client.
type Bundle struct {
	ID           string `json:"id"`
	ConsumerName string `json:"consumer_name"`
	Version      int64  `json:"version"`
	CreatedAt    string `json:"created_at"`
	DeletedAt    string `json:"deleted_at"` // set while Maestro waits for the agent to confirm a deletion
	Metadata     struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Manifests []struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	} `json:"manifests"`
	Status struct {
		Conditions []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

// ManifestNames are the names of the bundle's manifests, in order.
func (b Bundle) ManifestNames() []string {
	var out []string
	for _, m := range b.Manifests {
		out = append(out, m.Metadata.Name)
	}
	return out
}

// ConditionAt reports whether condition typ is True for the bundle's
// current version.
func (b Bundle) ConditionAt(typ string) bool {
	for _, c := range b.Status.Conditions {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue && c.ObservedGeneration == b.Version
		}
	}
	return false
}

// Bundles lists a source's works through Maestro's REST API at
// httpEndpoint, by work name, failing the test when it cannot.
func Bundles(t testing.TB, httpEndpoint, sourceID string) map[string]Bundle {
	t.Helper()
	u := strings.TrimRight(httpEndpoint, "/") + "/api/maestro/v1/resource-bundles?size=400&search=" + url.QueryEscape("source='"+sourceID+"'")
	resp, err := http.Get(u) //nolint:noctx // test helper
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	var list struct {
		Items []Bundle `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	out := map[string]Bundle{}
	for _, b := range list.Items {
		out[b.Metadata.Name] = b
	}
	return out
}
