package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// DefaultMaxBodyBytes bounds a message body. Sentinel events are a few
// hundred bytes; anything near this size is not a Sentinel event.
const DefaultMaxBodyBytes = 1 << 20

// reconcileType matches every spelling of the reconcile type that Sentinels
// have sent or documented: lower-cased kind (current), CamelCase kind
// (v0.1/v0.2), and an optional ".v1" suffix (AsyncAPI docs).
var reconcileType = regexp.MustCompile(`^(?i)com\.redhat\.hyperfleet\.([a-z][a-z0-9]*)\.reconcile(\.v1)?$`)

// Decoder validates broker messages into Events.
type Decoder struct {
	// MaxBodyBytes bounds the body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int
	kinds        map[string]string // lower-cased kind -> canonical spelling
	childKinds   map[string]bool   // canonical kinds that must name an owner
}

// NewDecoder accepts Cluster and NodePool events plus any extra kinds
// registered here (canonical spelling, e.g. "Ingress").
func NewDecoder(extraKinds ...string) *Decoder {
	d := &Decoder{
		kinds:      map[string]string{},
		childKinds: map[string]bool{hyperfleet.KindNodePool: true},
	}
	for _, k := range append([]string{hyperfleet.KindCluster, hyperfleet.KindNodePool}, extraKinds...) {
		if k = strings.TrimSpace(k); k != "" {
			d.kinds[strings.ToLower(k)] = k
		}
	}
	return d
}

// Decode turns a message in any of the three wire forms into a validated
// Event:
//
//   - binary mode (CloudEvents SDK publishers): attributes in ce-* (or
//     cloudEvents:/cloudEvents_ for AMQP bindings) headers, data in the body;
//   - structured mode: content-type application/cloudevents+json, the whole
//     event JSON in the body;
//   - the HyperFleet broker's form: the whole event JSON in the body with no
//     content-type and no ce- headers (what Sentinel sends).
//
// The CloudEvents SDK reads the CloudEvent (readCloudEvent), so whatever
// the CloudEvents spec forbids is refused too: a time that is not RFC 3339,
// a source that is not a URI reference, an extension whose name is not
// alphanumeric or whose value is an object, an array or out of int32 range.
// Decode bounds the body before and checks the HyperFleet part after: spec
// version 1.0, the reconcile type, and the data (decodeData). Every error
// is Permanent and names the field or the part of the message and the
// problem: a message that fails here will fail the same way on every
// redelivery.
func (d *Decoder) Decode(m *Message) (Event, error) {
	limit := d.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if len(m.Body) > limit {
		return Event{}, failure.Permanentf("body: %d bytes exceeds the limit of %d bytes", len(m.Body), limit)
	}
	if !utf8.Valid(m.Body) {
		return Event{}, failure.Permanentf("body: not valid UTF-8")
	}
	ce, err := readCloudEvent(m)
	if err != nil {
		return Event{}, err
	}
	return d.build(ce)
}

func (d *Decoder) build(ce *event.Event) (Event, error) {
	if sv := ce.SpecVersion(); sv != event.CloudEventsVersionV1 {
		return Event{}, fieldErr("specversion", "%q is not supported, want 1.0", sv)
	}
	ev := Event{
		ID:     strings.TrimSpace(ce.ID()),
		Type:   ce.Type(),
		Source: ce.Source(),
	}
	if tp, ok := ce.Extensions()["traceparent"]; ok {
		if ev.TraceParent, ok = tp.(string); !ok {
			return Event{}, fieldErr("traceparent", "must be a string, got %v", tp)
		}
	}
	if ev.ID == "" {
		return Event{}, fieldErr("id", "missing")
	}
	if ev.Type == "" {
		return Event{}, fieldErr("type", "missing")
	}
	match := reconcileType.FindStringSubmatch(ev.Type)
	if match == nil {
		return Event{}, fieldErr("type", "%q is not a HyperFleet reconcile event (want com.redhat.hyperfleet.<kind>.reconcile)", ev.Type)
	}
	typeKind := strings.ToLower(match[1])
	if ct := ce.DataContentType(); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Event{}, fieldErr("datacontenttype", "%q is not JSON", ct)
		}
	}
	if err := d.decodeData(&ev, ce.Data()); err != nil {
		return Event{}, err
	}
	if strings.ToLower(ev.Kind) != typeKind {
		return Event{}, fieldErr("data.kind", "%q does not match the kind %q in type %q", ev.Kind, match[1], ev.Type)
	}
	return ev, nil
}

func (d *Decoder) decodeData(ev *Event, data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return fieldErr("data", "missing")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fieldErr("data", "not a JSON object: %v", err)
	}
	var err error
	if ev.ResourceID, err = stringField(fields, "id", "data.id"); err != nil {
		return err
	}
	kind, err := stringField(fields, "kind", "data.kind")
	if err != nil {
		return err
	}
	canonical, ok := d.kinds[strings.ToLower(kind)]
	if !ok {
		return fieldErr("data.kind", "%q is not a registered kind (known: %s)", kind, d.knownKinds())
	}
	ev.Kind = canonical
	if ev.Href, err = stringField(fields, "href", "data.href"); err != nil {
		return err
	}
	if _, err := hyperfleet.RelativePath(ev.Href); err != nil {
		return fieldErr("data.href", "%v", err)
	}
	if ev.Generation, err = generationField(fields["generation"]); err != nil {
		return err
	}
	if raw, ok := fields["owner_references"]; ok && string(raw) != "null" {
		var owner hyperfleet.ObjectRef
		if err := json.Unmarshal(raw, &owner); err != nil {
			return fieldErr("data.owner_references", "not an object with string id, kind and href: %v", err)
		}
		ev.Owner = &owner
	}
	if d.childKinds[ev.Kind] && (ev.Owner == nil || strings.TrimSpace(ev.Owner.ID) == "") {
		return fieldErr("data.owner_references.id", "missing: a %s must name its owning cluster", ev.Kind)
	}
	return nil
}

func (d *Decoder) knownKinds() string {
	var ks []string
	for _, k := range d.kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func stringField(fields map[string]json.RawMessage, key, name string) (string, error) {
	raw, ok := fields[key]
	if !ok || string(raw) == "null" {
		return "", fieldErr(name, "missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr(name, "must be a string, got %s", jsonKind(raw))
	}
	if strings.TrimSpace(s) == "" {
		return "", fieldErr(name, "empty")
	}
	return s, nil
}

// generationField accepts only a JSON integer >= 1: the HyperFleet API
// rejects string generations in status reports, so one must never be echoed.
func generationField(raw json.RawMessage) (int64, error) {
	if raw == nil || string(raw) == "null" {
		return 0, fieldErr("data.generation", "missing")
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, fieldErr("data.generation", "must be a JSON integer, got %s", jsonKind(raw))
	}
	g, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fieldErr("data.generation", "must be a JSON integer, got %s", string(raw))
	}
	if g < 1 {
		return 0, fieldErr("data.generation", "%d is not a valid generation (want >= 1)", g)
	}
	return g, nil
}

func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string " + truncate(string(raw), 40)
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "the number " + truncate(string(raw), 40)
	}
}

func firstRune(b []byte) string {
	r, _ := utf8.DecodeRune(b)
	return string(r)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// String renders the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s %s gen=%d id=%s", e.Kind, e.ResourceID, e.Generation, e.ID)
}
