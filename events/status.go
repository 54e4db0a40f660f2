package events

import (
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// StatusEventType is the type of the status CloudEvents the adapter emits.
// HyperFleet has no standard one; this project's is documented in the README.
const StatusEventType = "com.redhat.hyperfleet.adapter.status"

// StatusData is the data of a status CloudEvent: the resource reference plus
// exactly the body of PUT .../statuses, so a bridge can forward it unchanged.
type StatusData = hyperfleet.StatusEnvelope

// NewStatusEvent builds the status CloudEvent for a report about resource.
// traceParent (may be empty) is the W3C trace context of the event's
// handling (its span when traces are on, else the input event's
// traceparent as it came), so that one trace spans Sentinel, the adapter
// and whoever consumes the status.
func NewStatusEvent(adapterName string, resource hyperfleet.ObjectRef, report hyperfleet.StatusReport, traceParent string) (cloudevents.Event, error) {
	ev := cloudevents.New(cloudevents.CloudEventsVersionV1)
	ev.SetID(uuid.Must(uuid.NewV7()).String())
	ev.SetType(StatusEventType)
	ev.SetSource("hyperfleet-adapter/" + adapterName)
	ev.SetTime(time.Now().UTC())
	ev.SetSubject(resource.Href)
	if traceParent != "" {
		ev.SetExtension("traceparent", traceParent)
	}
	if err := ev.SetData(cloudevents.ApplicationJSON, StatusData{Resource: resource, Report: report}); err != nil {
		return cloudevents.Event{}, fmt.Errorf("encode status event data: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("status event invalid: %w", err)
	}
	return ev, nil
}
