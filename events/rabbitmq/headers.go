package rabbitmq

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Header names. The dead-letter ones are strings on the wire, because the
// watermill marshaler that HyperFleet tools read queues with rejects any
// other header type.
const (
	// HeaderMessageUUID is the library's only header: the event id.
	HeaderMessageUUID = "_watermill_message_uuid"

	HeaderDeadLetterReason   = "x-hyperfleet-dead-letter-reason"
	HeaderAttempts           = "x-hyperfleet-attempts"
	HeaderOriginalExchange   = "x-hyperfleet-original-exchange"
	HeaderOriginalRoutingKey = "x-hyperfleet-original-routing-key"
	HeaderOriginalQueue      = "x-hyperfleet-original-queue"
	HeaderDeadLetteredAt     = "x-hyperfleet-dead-lettered-at"

	// headerDeadLetterID correlates a basic.return with the publish that
	// caused it.
	headerDeadLetterID = "x-hyperfleet-dead-letter-id"
	// headerDeliveryCount is set by quorum queues.
	headerDeliveryCount = "x-delivery-count"

	// ContentTypeCloudEvents marks a structured-mode CloudEvent body.
	ContentTypeCloudEvents = "application/cloudevents+json"

	// maxReasonBytes bounds the dead-letter reason header: a reason is a
	// sentence, and an unbounded one (say, a whole response body) would
	// bloat every dead letter.
	maxReasonBytes = 4096
)

// attributes turns AMQP headers into the string map events.Message carries,
// adding the content-type property the decoder looks at.
func attributes(d *amqp.Delivery) map[string]string {
	out := make(map[string]string, len(d.Headers)+1)
	for k, v := range d.Headers {
		out[k] = stringify(v)
	}
	if d.ContentType != "" {
		out["content-type"] = d.ContentType
	}
	return out
}

func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Sprint(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Decimal:
		return fmt.Sprintf("%de-%d", x.Value, x.Scale)
	}
	// Tables and arrays (x-death, for one) become JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// deliveryCount reads the quorum-queue delivery count, if any.
func deliveryCount(h amqp.Table) (int, bool) {
	switch n := h[headerDeliveryCount].(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	}
	return 0, false
}

// identity names a message across redeliveries: the event id the library
// puts in its header, else the AMQP message id, else the body's hash.
func identity(d *amqp.Delivery) string {
	if id, ok := d.Headers[HeaderMessageUUID].(string); ok && id != "" {
		return id
	}
	if d.MessageId != "" {
		return d.MessageId
	}
	sum := sha256.Sum256(d.Body)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// attempt combines what the broker and this process know.
func attempt(d *amqp.Delivery, local int) int {
	n := local
	if d.Redelivered && n < 2 {
		n = 2
	}
	if c, ok := deliveryCount(d.Headers); ok && c+1 > n {
		n = c + 1
	}
	if n < 1 {
		n = 1
	}
	return n
}

func truncateReason(s string) string {
	if len(s) <= maxReasonBytes {
		return s
	}
	cut := maxReasonBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
