// Package redact is the one place secrets are taken out of what the
// adapter and maestro-cli print: URLs (broker and API addresses may carry a
// password), text that may embed them (errors from client libraries), and
// Secret values in manifests.
//
// Every printer of a URL or an error that may hold one goes through here;
// a second, subtly different implementation is how a password ends up in a
// log (cmd/adapter once returned URLs it could not parse unchanged).
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// Unparseable stands for a URL that neither parses nor shows where its
// credentials end: all of it may be secret.
const Unparseable = "<unparseable URL>"

// secretParams are query parameters whose values are credentials.
var secretParams = []string{"password", "passwd", "pass", "pwd", "secret", "token", "access_token", "api_key", "apikey", "key", "sig", "signature"}

// URL returns raw with its password and credential-like query values
// masked. A URL that does not parse keeps only its scheme and what follows
// the last "@" (the host), or is replaced entirely when there is no "@":
// a parse failure must never print the password it failed on.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return unparseable(raw)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if isSecretParam(k) {
				q[k] = []string{Mask}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

func isSecretParam(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretParams {
		if k == s {
			return true
		}
	}
	return false
}

func unparseable(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 || !schemeRE.MatchString(scheme) {
		return Unparseable
	}
	host := rest[at+1:]
	if strings.ContainsAny(host, " \t\n%") {
		host = "<host>"
	}
	return scheme + "://" + Mask + "@" + host
}

var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// urlInTextRE finds URLs in free text: a scheme, "://", then anything up
// to a blank or a quote.
var urlInTextRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// maxBlankPassword bounds how far Text looks past a blank for the "@"
// that ends a password.
const maxBlankPassword = 256

// Text masks every URL in s, for error messages and log lines that quote
// one (client libraries put the address they failed to reach in their
// errors). A password with a blank in it cuts the URL at the blank; when
// what precedes it looks like "user:pass" (not host:port), the URL is
// taken to run to the next "@" on the line.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		loc := urlInTextRE.FindStringIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		start, end := loc[0], loc[1]
		m := s[start:end]
		if !strings.Contains(m, "@") && cutPassword(m) {
			rest := s[end:]
			if i := strings.IndexAny(rest, "@\n"); i >= 0 && i <= maxBlankPassword && rest[i] == '@' {
				j := i + 1
				for j < len(rest) && !strings.ContainsRune(" \t\n\"'<>", rune(rest[j])) {
					j++
				}
				end += j
				m = s[start:end]
			}
		}
		b.WriteString(s[:start])
		if strings.ContainsAny(m, "@?") {
			m = URL(m)
		}
		b.WriteString(m)
		s = s[end:]
	}
}

// cutPassword reports whether a URL without "@" ends in what looks like
// the start of "user:password" rather than "host:port".
func cutPassword(m string) bool {
	_, rest, _ := strings.Cut(m, "://")
	authority, _, _ := strings.Cut(rest, "/")
	_, after, ok := strings.Cut(authority, ":")
	if !ok {
		return false
	}
	return strings.Trim(after, "0123456789") != ""
}
