package hyperfleet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

const clusterHref = "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab"

// TestDirReaderStatuses: API_DIR replays read DIR/<href>/statuses.json, in
// the API's list form or as a bare array; no file is no report yet, unless
// the resource itself is missing.
func TestDirReaderStatuses(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "clusters", "019466a0-8f8e-7abc-9def-0123456789ab")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rel+".json", readSample(t, "cluster-get-response.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := DirReader{Dir: dir}
	ctx := context.Background()

	items, err := d.GetStatuses(ctx, clusterHref)
	if err != nil || len(items) != 0 {
		t.Fatalf("no statuses.json: %v, %v; want no reports", items, err)
	}

	for _, body := range []string{
		`{"kind":"AdapterStatusList","page":1,"size":1,"total":1,"items":[{"adapter":"landing-zone"}]}`,
		`[{"adapter":"landing-zone"}]`,
	} {
		if err := os.WriteFile(filepath.Join(rel, "statuses.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		items, err = d.GetStatuses(ctx, clusterHref)
		if err != nil || len(items) != 1 || string(items[0]) != `{"adapter":"landing-zone"}` {
			t.Fatalf("%s: %s, %v", body, items, err)
		}
	}

	if err := os.WriteFile(filepath.Join(rel, "statuses.json"), []byte(`"nope"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetStatuses(ctx, clusterHref); err == nil || !failure.IsPermanent(err) {
		t.Fatalf("bad statuses.json: err = %v, want a permanent error", err)
	}

	if _, err := d.GetStatuses(ctx, "/api/hyperfleet/v1/clusters/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing resource: err = %v, want ErrNotFound", err)
	}
}

func TestDirReader(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "clusters"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clusters", "019466a0-8f8e-7abc-9def-0123456789ab.json"), readSample(t, "cluster-get-response.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := DirReader{Dir: dir}
	res, err := r.GetResource(context.Background(), "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab")
	if err != nil || res.Name != "hp-cluster-abc12" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := r.GetResource(context.Background(), "/api/hyperfleet/v1/clusters/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
