package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// statusPageSize is the largest page the API serves (its list parameters
// refuse a size over 100).
const statusPageSize = 100

// maxStatusPages bounds the pages read for one resource: a resource has
// one report per adapter, so more than this means a misbehaving server.
const maxStatusPages = 20

var _ hyperfleet.StatusReader = (*Client)(nil)

// GetStatuses implements hyperfleet.StatusReader with GET {href}/statuses, page by
// page, each call with the client's retry rules.
func (c *Client) GetStatuses(ctx context.Context, href string) ([]json.RawMessage, error) {
	rel, err := hyperfleet.RelativePath(href)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	var items []json.RawMessage
	for page := 1; page <= maxStatusPages; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "size": {strconv.Itoa(statusPageSize)}}
		var list hyperfleet.AdapterStatusList
		status, err := c.do(ctx, http.MethodGet, hyperfleet.APIPrefix+rel+"/statuses?"+q.Encode(), nil, &list)
		if err != nil {
			return nil, err
		}
		if status == http.StatusNotFound {
			return nil, fmt.Errorf("GET %s/statuses: %w", href, hyperfleet.ErrNotFound)
		}
		items = append(items, list.Items...)
		if len(list.Items) == 0 || len(items) >= list.Total {
			return items, nil
		}
	}
	return nil, failure.Permanent(fmt.Errorf("GET %s/statuses: more than %d pages of %d reports", href, maxStatusPages, statusPageSize))
}
