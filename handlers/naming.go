package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// NamingPattern decides how the ManifestWorks of an adapter are named
// (the spike's "ManifestWork granularity patterns").
type NamingPattern string

const (
	// NamingPerAdapter is the spike's pattern A: one work per adapter per
	// cluster, named hyperfleet-{cluster-name}-{adapter}. The default for
	// cluster-scoped types. It cannot serve node pools: every node pool of a
	// cluster would share one work name and overwrite the others' manifests.
	NamingPerAdapter NamingPattern = "per-adapter"
	// NamingPerResource is the spike's pattern B: one work per resource,
	// named {cluster-name}-{adapter}-{resource-name}. The default when an
	// adapter owns many resources of a cluster (node pools).
	NamingPerResource NamingPattern = "per-resource"
)

// UnmarshalText accepts the pattern names and the spike's letters A and B,
// so that configuration loaders (envconfig, flag.TextVar) can fill it.
func (p *NamingPattern) UnmarshalText(text []byte) error {
	switch s := strings.TrimSpace(string(text)); strings.ToLower(s) {
	case "":
		*p = ""
	case "a", string(NamingPerAdapter):
		*p = NamingPerAdapter
	case "b", string(NamingPerResource):
		*p = NamingPerResource
	default:
		return fmt.Errorf("naming pattern %q: want %s (A) or %s (B)", s, NamingPerAdapter, NamingPerResource)
	}
	return nil
}

func (p NamingPattern) valid() bool {
	return p == "" || p == NamingPerAdapter || p == NamingPerResource
}

// workName is the name of the work an adapter owns for the resource.
func (p NamingPattern) workName(cluster, resource, adapter string) string {
	if p == NamingPerResource {
		return DNSLabel(cluster + "-" + adapter + "-" + resource)
	}
	return DNSLabel("hyperfleet-" + cluster + "-" + adapter)
}

// Limits of an RFC 1123 label, the form of ManifestWork names, consumer
// names and namespace names.
const (
	maxLabelLen = 63
	// hashLen hex digits (32 bits) of SHA-256 tell apart names that share
	// their first 54 characters; two such names colliding takes ~65k of them.
	hashLen = 8
)

// DNSLabel turns s into a valid RFC 1123 label: lower case, [a-z0-9-],
// starting and ending alphanumeric, at most 63 characters. Upper case is
// folded; every run of other characters becomes one '-'. A result longer
// than 63 is cut to 54 characters and suffixed with '-' and 8 hex digits of
// the SHA-256 of the whole of s, so long names that differ only past the
// cut stay distinct, and the same s always gives the same label.
//
// Normalisation itself is lossy ("Pool_A" and "pool-a" give the same
// label); HyperFleet names are already labels in practice, and a name that
// changed under normalisation keeps its readable form rather than growing a
// hash.
func DNSLabel(s string) string {
	norm := normaliseLabel(s)
	if norm != "" && len(norm) <= maxLabelLen {
		return norm
	}
	sum := sha256.Sum256([]byte(s))
	suffix := hex.EncodeToString(sum[:])[:hashLen]
	keep := min(len(norm), maxLabelLen-1-hashLen)
	cut := strings.TrimRight(norm[:keep], "-")
	if cut == "" {
		return suffix
	}
	return cut + "-" + suffix
}

// normaliseLabel lower-cases s and maps every run of characters outside
// [a-z0-9] to one '-', trimming them at both ends.
func normaliseLabel(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// isDNSLabel reports whether s is already a valid RFC 1123 label.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
