package pipeline

import "time"

// Observer is told what the pipeline does, for metrics. Calls must not
// block.
type Observer interface {
	// Received: a message arrived from the source.
	Received()
	// Handled: an event finished with outcome after d (all tries).
	Handled(o Outcome, d time.Duration)
	// Phase: one phase of one try took d (read_resource, build, deliver,
	// await_status, report).
	Phase(name string, d time.Duration)
	// InFlight: events being handled changed by delta.
	InFlight(delta int)
	Retried()
	DeadLettered()
	StatusPublished()
}

// Phases, as passed to Observer.Phase.
const (
	PhaseReadResource = "read_resource"
	PhaseBuild        = "build"
	PhaseDeliver      = "deliver"
	PhaseAwaitStatus  = "await_status"
	PhaseReport       = "report"
)

type nopObserver struct{}

func (nopObserver) Received()                      {}
func (nopObserver) Handled(Outcome, time.Duration) {}
func (nopObserver) Phase(string, time.Duration)    {}
func (nopObserver) InFlight(int)                   {}
func (nopObserver) Retried()                       {}
func (nopObserver) DeadLettered()                  {}
func (nopObserver) StatusPublished()               {}
