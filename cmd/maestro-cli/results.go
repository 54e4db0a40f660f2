package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Results file formats.
const (
	// formatMaestro is the spike's StatusResult.
	formatMaestro = "maestro"
	// formatStatusReporter is what HyperFleet's status-reporter sidecar
	// reads (CONTRACTS.md §5).
	formatStatusReporter = "status-reporter"
	// maxStatusReporterSize is the status-reporter's limit on the file.
	maxStatusReporterSize = 1 << 20
)

// result is what one invocation reports, in both formats' terms.
type result struct {
	command  string
	name     string
	consumer string
	// status: a work state (Applied, Available, InProgress, Deleted,
	// Degraded, Failed) or Succeeded. Failed for every failure.
	status string
	// reason: set on failure (a reason constant).
	reason     string
	message    string
	exitCode   int
	succeeded  bool
	generation int64
	resources  []resourceStatus
	timestamp  time.Time
}

// statusResult is the spike's StatusResult (the maestro format). reason is
// an addition (set on failure): the spike's readers ignore it.
type statusResult struct {
	ManifestWorkName string           `json:"manifestWorkName"`
	Consumer         string           `json:"consumer"`
	Status           string           `json:"status"`
	Reason           string           `json:"reason,omitempty"`
	Message          string           `json:"message"`
	Timestamp        time.Time        `json:"timestamp"`
	Resources        []resourceStatus `json:"resources,omitempty"`
}

// adapterResult is the status-reporter's file (adapter-result.json).
type adapterResult struct {
	Status  string         `json:"status"` // success or failure
	Reason  string         `json:"reason"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func succeededResult(inv *invocation, out *outcome) result {
	r := baseResult(inv)
	r.status, r.message, r.exitCode, r.succeeded = out.status, out.message, out.code, true
	if out.work != nil {
		r.generation = out.work.Generation
		r.resources = resources(out.work)
		if r.name == "" {
			r.name = out.work.Name
		}
	}
	return r
}

func failedResult(inv *invocation, f *failure) result {
	r := baseResult(inv)
	r.status, r.reason, r.message, r.exitCode = stateFailed, f.reason, oneLine(f.Error()), f.code
	if f.work != nil {
		r.generation = f.work.Generation
		r.resources = resources(f.work)
	}
	return r
}

func baseResult(inv *invocation) result {
	return result{
		command:   inv.cmd.name,
		name:      inv.o.Name,
		consumer:  inv.o.Consumer,
		timestamp: time.Now().UTC().Truncate(time.Second),
	}
}

func (r result) encode(format string) ([]byte, error) {
	switch format {
	case formatStatusReporter:
		return r.statusReporter()
	default:
		return json.MarshalIndent(statusResult{
			ManifestWorkName: r.name,
			Consumer:         r.consumer,
			Status:           r.status,
			Reason:           r.reason,
			Message:          r.message,
			Timestamp:        r.timestamp,
			Resources:        r.resources,
		}, "", "  ")
	}
}

func (r result) statusReporter() ([]byte, error) {
	ar := adapterResult{Status: "success", Reason: r.status, Message: r.message}
	if !r.succeeded {
		ar.Status, ar.Reason = "failure", r.reason
	}
	details := map[string]any{
		"command":  r.command,
		"exitCode": r.exitCode,
		"state":    r.status,
	}
	if r.name != "" {
		details["manifestWorkName"] = r.name
	}
	if r.consumer != "" {
		details["consumer"] = r.consumer
	}
	if r.generation != 0 {
		details["generation"] = r.generation
	}
	if len(r.resources) > 0 {
		details["resources"] = r.resources
	}
	ar.Details = details
	data, err := json.MarshalIndent(ar, "", "  ")
	if err != nil || len(data) <= maxStatusReporterSize {
		return data, err
	}
	// Over the sidecar's limit: the per-manifest list goes first, then the
	// message is cut.
	delete(details, "resources")
	details["resourcesOmitted"] = fmt.Sprintf("%d resources left out to stay under %d bytes", len(r.resources), maxStatusReporterSize)
	if data, err = json.MarshalIndent(ar, "", "  "); err != nil || len(data) <= maxStatusReporterSize {
		return data, err
	}
	ar.Message = ar.Message[:min(len(ar.Message), maxStatusReporterSize/2)] + "…"
	return json.MarshalIndent(ar, "", "  ")
}

// writeResults writes r to path atomically (a temporary file in the same
// directory, renamed over it), so a reader never sees half a file. An
// empty path writes nothing.
func writeResults(path, format string, r result) error {
	if path == "" {
		return nil
	}
	data, err := r.encode(format)
	if err != nil {
		return fmt.Errorf("encoding the result: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--results-path %s: %w", path, err)
	}
	return nil
}
