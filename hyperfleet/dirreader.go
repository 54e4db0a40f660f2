package hyperfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// DirReader reads resources from a directory laid out like the API:
// DIR/<href without the /api/hyperfleet/v1/ prefix>.json, in the API's own
// JSON. It backs local replays (--api-dir).
type DirReader struct{ Dir string }

var _ ResourceReader = DirReader{}

// GetResource implements ResourceReader.
func (d DirReader) GetResource(_ context.Context, href string) (*Resource, error) {
	rel, err := RelativePath(href)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	file := d.Dir + "/" + rel + ".json"
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", file, ErrNotFound)
	}
	if err != nil {
		return nil, failure.Permanent(err)
	}
	return ParseResource(data, file)
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
