package hyperfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"

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

// statusPageSize is the largest page the API serves (its list parameters
// refuse a size over 100).
const statusPageSize = 100

// maxStatusPages bounds the pages read for one resource: a resource has
// one report per adapter, so more than this means a misbehaving server.
const maxStatusPages = 20

var _ StatusReader = (*Client)(nil)

// GetStatuses implements StatusReader with GET {href}/statuses, page by
// page, each call with the client's retry rules.
func (c *Client) GetStatuses(ctx context.Context, href string) ([]json.RawMessage, error) {
	rel, err := RelativePath(href)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	var items []json.RawMessage
	for page := 1; page <= maxStatusPages; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "size": {strconv.Itoa(statusPageSize)}}
		var list AdapterStatusList
		status, err := c.do(ctx, http.MethodGet, APIPrefix+rel+"/statuses?"+q.Encode(), nil, &list)
		if err != nil {
			return nil, err
		}
		if status == http.StatusNotFound {
			return nil, fmt.Errorf("GET %s/statuses: %w", href, ErrNotFound)
		}
		items = append(items, list.Items...)
		if len(list.Items) == 0 || len(items) >= list.Total {
			return items, nil
		}
	}
	return nil, failure.Permanent(fmt.Errorf("GET %s/statuses: more than %d pages of %d reports", href, maxStatusPages, statusPageSize))
}

var _ StatusReader = DirReader{}

// GetStatuses implements StatusReader: DIR/<href below the API
// prefix>/statuses.json holds the API's answer (an AdapterStatusList, or a
// bare JSON array of reports). A missing file means no adapter reported
// yet, as long as the resource's own file exists.
func (d DirReader) GetStatuses(_ context.Context, href string) ([]json.RawMessage, error) {
	rel, err := RelativePath(href)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	file := d.Dir + "/" + rel + "/statuses.json"
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(d.Dir + "/" + rel + ".json"); serr != nil {
			return nil, fmt.Errorf("%s.json: %w", d.Dir+"/"+rel, ErrNotFound)
		}
		return nil, nil
	}
	if err != nil {
		return nil, failure.Permanent(err)
	}
	items, err := ParseStatuses(data, file)
	if err != nil {
		return nil, err
	}
	return items, nil
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
