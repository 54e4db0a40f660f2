package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

const clusterHref = "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab"

// TestGetStatusesPagesAndRetries: the client follows the API's pages until
// it has total reports, and retries a 503 within the call like GetResource.
func TestGetStatusesPagesAndRetries(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != clusterHref+"/statuses" {
			t.Errorf("path %s", r.URL.Path)
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if r.URL.Query().Get("size") != "100" {
			t.Errorf("size %q, want 100", r.URL.Query().Get("size"))
		}
		// 150 reports: a first page of 100, a second of 50.
		n := 100
		if page == 2 {
			n = 50
		}
		list := hyperfleet.AdapterStatusList{Kind: "AdapterStatusList", Page: page, Size: n, Total: 150}
		for i := range n {
			list.Items = append(list.Items, json.RawMessage(fmt.Sprintf(`{"adapter":"a%d-%d","observed_generation":1}`, page, i)))
		}
		_ = json.NewEncoder(w).Encode(list)
	}), "")
	items, err := c.GetStatuses(context.Background(), clusterHref)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 150 || calls.Load() != 3 {
		t.Fatalf("%d items in %d calls, want 150 in 3 (one retried 503, two pages)", len(items), calls.Load())
	}
	var last struct{ Adapter string }
	_ = json.Unmarshal(items[149], &last)
	if last.Adapter != "a2-49" {
		t.Fatalf("last item %s", items[149])
	}
}

func TestGetStatusesNotFound(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}), "")
	_, err := c.GetStatuses(context.Background(), clusterHref)
	if !errors.Is(err, hyperfleet.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
