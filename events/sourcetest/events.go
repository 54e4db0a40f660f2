package sourcetest

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// WatermillUUIDHeader is the only header/attribute the HyperFleet broker
// library sets: the event id (watermill's message UUID).
const WatermillUUIDHeader = "_watermill_message_uuid"

// EnvRequireIntegration, set to 1 (CI sets it), turns a missing integration
// dependency from a skip into a failure.
const EnvRequireIntegration = "REQUIRE_INTEGRATION"

// SentinelEvent returns a Sentinel reconcile event for a new cluster in the
// structured JSON form Sentinel publishes as the message body (see
// testdata/wire-rabbitmq-delivery.json), and its CloudEvent id.
func SentinelEvent(generation int64) (body []byte, id string) {
	id = uuid.Must(uuid.NewV7()).String()
	cluster := uuid.Must(uuid.NewV7()).String()
	ev := map[string]any{
		"specversion":     "1.0",
		"id":              id,
		"source":          "hyperfleet-sentinel",
		"type":            "com.redhat.hyperfleet.cluster.reconcile",
		"datacontenttype": "application/json",
		"data": map[string]any{
			"generation": generation,
			"href":       "/api/hyperfleet/v1/clusters/" + cluster,
			"id":         cluster,
			"kind":       "Cluster",
		},
	}
	body, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("sourcetest: marshal event: %v", err))
	}
	return body, id
}

// EventID reads the CloudEvent id from a structured-mode body; empty when
// the body is not one.
func EventID(body []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return ""
	}
	return ev.ID
}

// Unavailable reports that an integration dependency (a broker, a database)
// cannot be reached. With REQUIRE_INTEGRATION=1 the test fails: CI must not
// pass by skipping. Otherwise it is skipped, saying why and how to run it.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv(EnvRequireIntegration) == "1" {
		t.Fatalf("%s is required (%s=1) but not reachable: %v", what, EnvRequireIntegration, err)
	}
	t.Skipf("skipping: %s is not reachable (%v); start it, or set %s=1 to make this a failure", what, err, EnvRequireIntegration)
}

// StatusEvent builds a status CloudEvent as the adapter emits it.
func StatusEvent(t testing.TB) cloudevents.Event {
	t.Helper()
	cluster := uuid.Must(uuid.NewV7()).String()
	ref := hyperfleet.ObjectRef{ID: cluster, Kind: hyperfleet.KindCluster, Href: "/api/hyperfleet/v1/clusters/" + cluster}
	report := hyperfleet.StatusReport{
		Adapter:            "maestro",
		ObservedGeneration: 3,
		ObservedTime:       time.Now().UTC().Truncate(time.Second),
		Conditions: []hyperfleet.Condition{
			{Type: hyperfleet.ConditionApplied, Status: hyperfleet.True, Reason: "Applied"},
			{Type: hyperfleet.ConditionAvailable, Status: hyperfleet.True, Reason: "Available"},
			{Type: hyperfleet.ConditionHealth, Status: hyperfleet.True, Reason: "Healthy"},
		},
	}
	ev, err := events.NewStatusEvent("maestro", ref, report, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err != nil {
		t.Fatalf("NewStatusEvent: %v", err)
	}
	return ev
}
