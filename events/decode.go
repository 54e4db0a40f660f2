package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
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
// Every error is Permanent and names the field and the problem: a message
// that fails here will fail the same way on every redelivery.
func (d *Decoder) Decode(m *Message) (Event, error) {
	limit := d.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if len(m.Body) > limit {
		return Event{}, Permanentf("body: %d bytes exceeds the limit of %d bytes", len(m.Body), limit)
	}
	if !utf8.Valid(m.Body) {
		return Event{}, Permanentf("body: not valid UTF-8")
	}
	if attrs, ok := binaryAttributes(m.Attributes); ok {
		return d.fromBinary(attrs, m.Body)
	}
	if ct := header(m.Attributes, "content-type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && mt != "application/cloudevents+json" && mt != "application/json" {
			return Event{}, Permanentf("content-type: %q is neither a structured CloudEvent nor JSON, and no ce- attributes are present", ct)
		}
	}
	return d.fromStructured(m.Body)
}

// wireEvent is a structured-mode CloudEvent. Data stays raw so that its
// integers can be told from strings and floats.
type wireEvent struct {
	SpecVersion     *string         `json:"specversion"`
	ID              *string         `json:"id"`
	Type            *string         `json:"type"`
	Source          *string         `json:"source"`
	DataContentType *string         `json:"datacontenttype"`
	TraceParent     *string         `json:"traceparent"`
	Data            json.RawMessage `json:"data"`
	DataBase64      *string         `json:"data_base64"`
}

func (d *Decoder) fromStructured(body []byte) (Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Event{}, Permanentf("body: empty")
	}
	if body[0] != '{' {
		return Event{}, Permanentf("body: not a JSON object (starts with %q)", firstRune(body))
	}
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return Event{}, Permanentf("body: not valid CloudEvent JSON: %v", err)
	}
	attrs := map[string]string{}
	for name, v := range map[string]*string{"specversion": w.SpecVersion, "id": w.ID, "type": w.Type,
		"source": w.Source, "datacontenttype": w.DataContentType, "traceparent": w.TraceParent} {
		if v != nil {
			attrs[name] = *v
		}
	}
	data := []byte(w.Data)
	if w.DataBase64 != nil {
		if len(w.Data) > 0 {
			return Event{}, fieldErr("data_base64", "present together with data")
		}
		raw, err := base64.StdEncoding.DecodeString(*w.DataBase64)
		if err != nil {
			return Event{}, fieldErr("data_base64", "not valid base64: %v", err)
		}
		data = raw
	}
	return d.build(attrs, data)
}

func (d *Decoder) fromBinary(attrs map[string]string, body []byte) (Event, error) {
	if ct := attrs["datacontenttype"]; ct == "" {
		// The content-type header carries datacontenttype in binary mode.
		attrs["datacontenttype"] = attrs["content-type"]
	}
	return d.build(attrs, body)
}

func (d *Decoder) build(attrs map[string]string, data []byte) (Event, error) {
	if sv := attrs["specversion"]; sv != "1.0" {
		if sv == "" {
			return Event{}, fieldErr("specversion", "missing")
		}
		return Event{}, fieldErr("specversion", "%q is not supported, want 1.0", sv)
	}
	ev := Event{
		ID:          strings.TrimSpace(attrs["id"]),
		Type:        attrs["type"],
		Source:      attrs["source"],
		TraceParent: attrs["traceparent"],
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
	if ct := attrs["datacontenttype"]; ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Event{}, fieldErr("datacontenttype", "%q is not JSON", ct)
		}
	}
	if err := d.decodeData(&ev, data); err != nil {
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

// binaryAttributes collects CloudEvents attributes from transport headers.
// It reports false unless specversion is among them: that is how binary
// mode is told apart from the other two forms.
func binaryAttributes(headers map[string]string) (map[string]string, bool) {
	attrs := map[string]string{}
	for k, v := range headers {
		lk := strings.ToLower(k)
		for _, prefix := range []string{"ce-", "ce_", "cloudevents:", "cloudevents_"} {
			if strings.HasPrefix(lk, prefix) {
				attrs[lk[len(prefix):]] = v
				break
			}
		}
		if lk == "content-type" || lk == "content_type" {
			attrs["content-type"] = v
		}
	}
	_, ok := attrs["specversion"]
	return attrs, ok
}

func header(headers map[string]string, name string) string {
	for k, v := range headers {
		if strings.EqualFold(k, name) || strings.EqualFold(strings.ReplaceAll(k, "_", "-"), name) {
			return v
		}
	}
	return ""
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

// PeekID returns the CloudEvent id of a message that may not decode, for
// naming it in errors and dead-letter reasons: the ce-id attribute, or the
// top-level "id" of a JSON body. It returns "" when there is none.
func PeekID(m *Message) string {
	if attrs, ok := binaryAttributes(m.Attributes); ok {
		return attrs["id"]
	}
	if len(m.Body) > DefaultMaxBodyBytes {
		return ""
	}
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(m.Body, &probe) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(probe.ID, &id) != nil || !utf8.ValidString(id) {
		return ""
	}
	return truncate(id, 100)
}

// Structured returns the message as one structured-mode CloudEvent JSON
// document, whatever its wire form: what `adapter record` writes, so a
// recording replays the same from any broker.
func Structured(m *Message) ([]byte, error) {
	attrs, ok := binaryAttributes(m.Attributes)
	if !ok {
		return bytes.TrimSpace(m.Body), nil
	}
	doc := map[string]any{}
	for k, v := range attrs {
		if k == "content-type" {
			continue
		}
		doc[k] = v
	}
	if _, set := doc["datacontenttype"]; !set && attrs["content-type"] != "" {
		doc["datacontenttype"] = attrs["content-type"]
	}
	body := bytes.TrimSpace(m.Body)
	if json.Valid(body) {
		doc["data"] = json.RawMessage(body)
	} else {
		doc["data_base64"] = base64.StdEncoding.EncodeToString(m.Body)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, Permanentf("re-encode binary-mode event: %v", err)
	}
	return out, nil
}
