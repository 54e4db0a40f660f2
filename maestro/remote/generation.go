package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// WorkGeneration implements maestro.GenerationReader: the pipeline's check,
// before every report, that no other replica has delivered a newer
// generation of the resource meanwhile. It reads the same REST resource as
// Get (Maestro's resource bundle, by the id the source client gives the
// work) but decodes only the work's annotations: Get's path decodes the
// whole bundle into generic maps and then converts it again
// (grpcsource.ToManifestWork), which the benchmark's profile showed as a
// fifth of the adapter's CPU per event. The read must go to Maestro: the
// watch learns of another replica's write only when the agent answers it.
func (b *Backend) WorkGeneration(ctx context.Context, consumer, name string) (gen int64, ok bool, err error) {
	err = b.whileUnreachable(ctx, fmt.Sprintf("reading the generation of work %s/%s", consumer, name), func() error {
		var err error
		gen, ok, err = b.readGeneration(ctx, consumer, name)
		return err
	})
	return gen, ok, err
}

// bundleAnnotations is the part of Maestro's resource bundle JSON that
// WorkGeneration needs; encoding/json skips the rest without building it.
type bundleAnnotations struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func (b *Backend) readGeneration(ctx context.Context, consumer, name string) (int64, bool, error) {
	id := workID(b.opts.SourceID, consumer, name)
	endpoint := strings.TrimRight(b.opts.HTTPEndpoint, "/") + "/api/maestro/v1/resource-bundles/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return 0, false, maestro.Classify(fmt.Errorf("reading work %s/%s: %w", consumer, name, err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	// A few KiB: compressing them costs Maestro and this process more CPU
	// (gzip on both sides, seen in the profile) than it saves on the wire.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, false, maestro.Classify(fmt.Errorf("reading work %s/%s: %w", consumer, name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained for connection reuse only
		return 0, false, apierrors.NewNotFound(common.ManifestWorkGR, name)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		// The same classes as Get's errors: 401/403 retried (credentials
		// rotate), other 4xx permanent, 5xx transient.
		return 0, false, maestro.Classify(fmt.Errorf("reading work %s/%s: %w", consumer, name,
			apierrors.NewGenericServerResponse(resp.StatusCode, http.MethodGet, common.ManifestWorkGR, name, strings.TrimSpace(string(body)), 0, false)))
	}
	var rb bundleAnnotations
	if err := json.NewDecoder(resp.Body).Decode(&rb); err != nil {
		return 0, false, maestro.Classify(fmt.Errorf("decoding work %s/%s from Maestro's REST API: %w", consumer, name, err))
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained for connection reuse only
	gen, err := strconv.ParseInt(rb.Metadata.Annotations[workmeta.AnnotationGeneration], 10, 64)
	return gen, err == nil, nil
}
