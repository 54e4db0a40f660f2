package pipeline

// What became of each message (Outcome) and the counts of those outcomes
// (Stats), for the closing summary and the metrics.

import (
	"fmt"
	"sort"
	"sync"
)

// Outcome is what became of one message.
type Outcome string

// Outcomes, as counted in Stats and metrics.
const (
	// Reconciled: works applied (or deleted) and the status report published.
	Reconciled Outcome = "reconciled"
	// Skipped: this adapter type does not handle the resource's kind.
	Skipped Outcome = "skipped"
	// Gone: the API no longer has the resource; nothing to do or report.
	Gone Outcome = "gone"
	// Superseded: a newer generation was already delivered, or the event was
	// coalesced into a newer one for the same resource.
	Superseded Outcome = "superseded"
	// PreconditionsNotMet: the adapter's preconditions do not hold for the
	// resource; nothing was delivered and a report saying so was published.
	PreconditionsNotMet Outcome = "preconditions_not_met"
	// Failed: dead-lettered, with the reason.
	Failed Outcome = "failed"
	// Requeued: given back to the source (shutdown).
	Requeued Outcome = "requeued"
)

// Stats counts messages by outcome.
type Stats struct {
	mu     sync.Mutex
	counts map[Outcome]int
}

func (s *Stats) add(o Outcome) {
	s.mu.Lock()
	s.counts[o]++
	s.mu.Unlock()
}

// Counts returns a copy of the counts.
func (s *Stats) Counts() map[Outcome]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Outcome]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Total is the number of messages settled.
func (s *Stats) Total() int {
	n := 0
	for _, v := range s.Counts() {
		n += v
	}
	return n
}

// String renders the counts in a fixed order for the closing summary.
func (s *Stats) String() string {
	c := s.Counts()
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	out := fmt.Sprintf("%d events", s.Total())
	for _, k := range keys {
		out += fmt.Sprintf(", %s %d", k, c[Outcome(k)])
	}
	return out
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }
