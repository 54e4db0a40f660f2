package events

import "sync"

// AttemptCounter counts deliveries per message in this process, for
// transports that do not count them (RabbitMQ classic queues only flag a
// redelivery; Pub/Sub counts only with a dead-letter policy). Entries go
// when the message is settled; the map is bounded and forgets arbitrary
// entries when full, so a count is a best-effort floor, never a
// correctness matter. Safe for concurrent use.
type AttemptCounter struct {
	mu     sync.Mutex
	counts map[string]int
	max    int
}

// NewAttemptCounter keeps at most max entries.
func NewAttemptCounter(max int) *AttemptCounter {
	return &AttemptCounter{counts: map[string]int{}, max: max}
}

// Seen records one more delivery of key and returns the count so far.
func (a *AttemptCounter) Seen(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.counts[key] + 1
	a.counts[key] = n
	for k := range a.counts {
		if len(a.counts) <= a.max {
			break
		}
		if k != key {
			delete(a.counts, k)
		}
	}
	return n
}

// Forget drops key once its message is settled.
func (a *AttemptCounter) Forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.counts, key)
}
