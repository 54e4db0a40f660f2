package rabbitmq

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestStringify(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"s", "s"}, {[]byte("b"), "b"}, {true, "true"}, {int32(-7), "-7"}, {int64(1) << 40, "1099511627776"},
		{uint8(255), "255"}, {float64(1.5), "1.5"}, {float32(0.25), "0.25"}, {ts, "2026-01-02T03:04:05Z"},
		{nil, ""}, {amqp.Decimal{Scale: 2, Value: 12345}, "12345e-2"},
		{amqp.Table{"count": int64(2), "queue": "q"}, `{"count":2,"queue":"q"}`},
		{[]any{"a", int32(1)}, `["a",1]`},
	} {
		if got := stringify(tc.in); got != tc.want {
			t.Errorf("stringify(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAttempt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     amqp.Delivery
		local int
		want  int
	}{
		{"first delivery", amqp.Delivery{}, 1, 1},
		{"redelivered, unseen here (another replica had it)", amqp.Delivery{Redelivered: true}, 1, 2},
		{"redelivered, counted here", amqp.Delivery{Redelivered: true}, 4, 4},
		{"quorum queue count wins when higher", amqp.Delivery{Redelivered: true, Headers: amqp.Table{"x-delivery-count": int64(6)}}, 2, 7},
		{"quorum queue count lower than ours", amqp.Delivery{Headers: amqp.Table{"x-delivery-count": int32(1)}}, 5, 5},
	} {
		if got := attempt(&tc.d, tc.local); got != tc.want {
			t.Errorf("%s: attempt = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	if got := identity(&amqp.Delivery{Headers: amqp.Table{HeaderMessageUUID: "u"}, MessageId: "m"}); got != "u" {
		t.Errorf("identity prefers the watermill uuid, got %q", got)
	}
	if got := identity(&amqp.Delivery{MessageId: "m"}); got != "m" {
		t.Errorf("identity falls back to the message id, got %q", got)
	}
	a := identity(&amqp.Delivery{Body: []byte("x")})
	b := identity(&amqp.Delivery{Body: []byte("y")})
	if !strings.HasPrefix(a, "sha256:") || a == b || a != identity(&amqp.Delivery{Body: []byte("x")}) {
		t.Errorf("body hashes %q %q", a, b)
	}
}

func TestTruncateReason(t *testing.T) {
	long := strings.Repeat("é", maxReasonBytes) // two bytes each
	got := truncateReason(long)
	if len(got) > maxReasonBytes+3 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("truncated to %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	if truncateReason("short") != "short" {
		t.Error("short reasons must stay as they are")
	}
}
