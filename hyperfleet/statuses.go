package hyperfleet

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// StatusReader returns every adapter's status report for the resource at
// href (GET {href}/statuses), each as the API returns it: adapter,
// observed_generation, conditions, data, created_time, last_report_time.
// No report yet is an empty list; a missing resource an error wrapping
// ErrNotFound. Implementations are safe for concurrent use.
type StatusReader interface {
	GetStatuses(ctx context.Context, href string) ([]json.RawMessage, error)
}

// AdapterStatusList is the API's answer to GET .../statuses.
type AdapterStatusList struct {
	Kind  string            `json:"kind"`
	Page  int               `json:"page"`
	Size  int               `json:"size"`
	Total int               `json:"total"`
	Items []json.RawMessage `json:"items"`
}

// ParseStatuses decodes GET .../statuses' answer, or a bare array of
// reports (as recordings carry them); origin names where it came from.
func ParseStatuses(data []byte, origin string) ([]json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err == nil {
		return items, nil
	}
	var list AdapterStatusList
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, failure.Permanent(fmt.Errorf("%s: not an adapter status list: %w", origin, err))
	}
	return list.Items, nil
}
