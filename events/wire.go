package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// readCloudEvent tells the wire form and has the CloudEvents SDK read the
// CloudEvent. A delivery is binary mode when its ce- attributes (in any of
// the spellings binaryAttributes knows) carry a specversion, whatever its
// content-type; otherwise its body is the whole event JSON.
func readCloudEvent(m *Message) (*event.Event, error) {
	if attrs, ok := binaryAttributes(m.Attributes); ok {
		if attrs["datacontenttype"] == "" && attrs["content-type"] != "" {
			// The content-type header carries datacontenttype in binary mode.
			attrs["datacontenttype"] = attrs["content-type"]
		}
		return binaryEvent(attrs, m.Body)
	}
	if ct := header(m.Attributes, "content-type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && mt != "application/cloudevents+json" && mt != "application/json" {
			return nil, failure.Permanentf("content-type: %q is neither a structured CloudEvent nor JSON, and no ce- attributes are present", ct)
		}
	}
	body := bytes.TrimSpace(m.Body)
	if len(body) == 0 {
		return nil, failure.Permanentf("body: empty")
	}
	if body[0] != '{' {
		return nil, failure.Permanentf("body: not a JSON object (starts with %q)", firstRune(body))
	}
	return structuredEvent(body)
}

// binaryEvent reads a binary-mode delivery: the SDK's spec package gives
// each attribute its type (time, URI reference, extension value) as its
// protocol bindings do, and the body is the data. The SDK's bindings
// themselves would not do here: each knows one transport's header spelling,
// and they tell structured mode by a content-type of
// application/cloudevents+json, so what the HyperFleet broker library sends
// (the whole event JSON in the body, no content-type, no ce- attributes) is
// "unknown encoding" to them.
//
// Attributes are set in name order, so that of several bad ones the same is
// always reported; each error names its attribute.
func binaryEvent(attrs map[string]string, body []byte) (*event.Event, error) {
	sv := attrs["specversion"]
	version := spec.VS.Version(sv)
	if version == nil {
		if sv == "" {
			return nil, fieldErr("specversion", "missing")
		}
		return nil, fieldErr("specversion", "%q is not supported, want 1.0", sv)
	}
	ev := event.New(version.String())
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		if name != "specversion" && name != "content-type" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := version.SetAttribute(ev.Context, name, attrs[name]); err != nil {
			return nil, fieldErr(name, "%v", err)
		}
	}
	if len(body) > 0 {
		ev.DataEncoded = body
	}
	return &ev, nil
}

// structuredEvent reads a structured-mode body with the SDK's JSON reader.
// The body is checked to be one JSON document first: the SDK's reader
// stops at the end of the object and would take trailing bytes.
func structuredEvent(body []byte) (ev *event.Event, err error) {
	if !json.Valid(body) {
		var syntax any
		return nil, failure.Permanentf("body: not valid CloudEvent JSON: %v", json.Unmarshal(body, &syntax))
	}
	// The SDK v2.16.2 panics on a non-string data_base64 (slice bounds out
	// of range in consumeDataAsBytes; fixed upstream after that release,
	// cloudevents/sdk-go#1308). Untrusted input must not take the adapter
	// down.
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, failure.Permanentf("body: not a valid CloudEvent (the CloudEvents SDK failed on it: %v)", r)
		}
	}()
	ev = &event.Event{}
	if err := ev.UnmarshalJSON(body); err != nil {
		return nil, sdkError(err)
	}
	return ev, nil
}

// sdkError makes an error of the SDK Permanent, naming the field when the
// SDK does.
func sdkError(err error) error {
	var invalid event.ValidationError
	if errors.As(err, &invalid) && len(invalid) == 1 {
		for field, problem := range invalid {
			return fieldErr(field, "%v", problem)
		}
	}
	return failure.Permanentf("body: not a valid CloudEvent: %v", err)
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
		return nil, failure.Permanentf("re-encode binary-mode event: %v", err)
	}
	return out, nil
}
