package redact_test

import (
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"amqp://guest:guest@localhost:5672/", "amqp://guest:xxxxx@localhost:5672/"},
		{"amqps://adapter:s3cret@rabbitmq:5671/vhost", "amqps://adapter:xxxxx@rabbitmq:5671/vhost"},
		{"https://api.example.com/x", "https://api.example.com/x"},
		{"https://user@api.example.com", "https://user@api.example.com"},
		{"https://api.example.com/?token=abc&x=1", "https://api.example.com/?token=xxxxx&x=1"},
		// Unparseable: the password must not survive the parse failure.
		{"amqp://u:p%zz@host", "amqp://xxxxx@host"},
		{"amqp://u:se cret@host/", "amqp://xxxxx@host/"},
		{"amqp://u:p%zz@ho st/", "amqp://xxxxx@<host>"},
		{"::not a url with s3cret", redact.Unparseable},
		{"%zz-s3cret", redact.Unparseable},
	} {
		got := redact.URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"guest:guest", "s3cret", "p%zz", "se cret", "cret@", "abc"} {
			if strings.Contains(tc.in, secret) && strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q still holds %q", tc.in, got, secret)
			}
		}
	}
}

func TestText(t *testing.T) {
	in := `connect to amqp://u:p%zz@host:5672/: dial: refused; also "https://a:b@c/" and http://plain/path, amqp://u:se cret@host/ and amqp://host:5672/ for x@y`
	got := redact.Text(in)
	for _, secret := range []string{"p%zz", "a:b@", "u:se", "cret"} {
		if strings.Contains(got, secret) {
			t.Errorf("Text(%q) = %q still holds %q", in, got, secret)
		}
	}
	if !strings.Contains(got, "http://plain/path") || !strings.Contains(got, "dial: refused") || !strings.Contains(got, "amqp://host:5672/ for x@y") {
		t.Errorf("Text(%q) = %q lost what is not secret", in, got)
	}
	if s := "no url here"; redact.Text(s) != s {
		t.Errorf("Text changed %q", s)
	}
}
