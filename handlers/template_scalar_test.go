package handlers

import (
	"math/rand/v2"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
)

// TestSimpleScalarIsScalarFromText holds simpleScalar, the shortcut, to
// what the YAML reader makes of the same text, for every text it takes.
func TestSimpleScalarIsScalarFromText(t *testing.T) {
	texts := []string{
		"", "a", "abc", "my-cluster", "us-east1", "a.b_c/d", "a b", "a  b", "a b c",
		"true", "True", "TRUE", "tRue", "false", "False", "FALSE", "fAlse",
		"null", "Null", "NULL", "nULL", "yes", "no", "on", "off", "y", "n", "Y", "N", "~",
		"0", "-0", "00", "07", "08", "09", "0x1f", "0o17", "0b101", "1_000", "-", "--", "-a",
		"123456789012345678", "-123456789012345678", "1234567890123456789", "+5", "1e3", "1.5", ".5",
		".inf", "-.inf", ".nan", "2001-12-14", "2001-12-14 21:59:43.10", "<<",
		"a: b", "a:b", "a:", "a::", "a:: b", "a #b", "a#b", "a ", " a", "a\t", "a\tb",
		"http://x.y/z", "a=b", "a+b", "a@b", "@a", "a%b", "%a", "a,b", "a[b]", "a{b}",
		`""`, `''`, `"a"`, `'a'`, `"a b"`, `" a "`, `"a\nb"`, `"a\\b"`, `"a'b"`, `'a"b'`, `'a\b'`,
		`"a#b"`, `"a # b"`, `"a" # c`, `'a''b'`, `"a"b"`, `"`, `'`, `"a`, `a"`, `"a'`,
		`"true"`, `"0"`, `'null'`, `"é"`, "\"a\tb\"", "---", "...", "--- a", "... a",
		"019466a0-8f8e-7abc-9def-0123456789ab", "0194a6a0-8f8e", "1234-56", "2001-12-14t21:59:43.10Z", "20011-12-14",
		"0b-1", "0o-7", "0x-1", "0B-1", "0b1-1", "1e-5", "1E-5", "1e-5-3", "1-2", "1.5-2", "1_0-2", "9-", "9-:", "9- #a", "9-a: b",
		"a\nb", "a\rb", "# c", "&a b", "*a", "!t a", "|", ">", "[a]", "{a: b}",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const common = "abcdeEyntfoTFNYxz019 -._/:=+@'\""
	const rare = "#\\\t,[]{}&*!|>%~`?é\n"
	for range 20000 {
		b := make([]byte, rng.IntN(10))
		for i := range b {
			if rng.IntN(10) == 0 {
				b[i] = rare[rng.IntN(len(rare))]
			} else {
				b[i] = common[rng.IntN(len(common))]
			}
		}
		texts = append(texts, string(b))
	}
	taken := 0
	for _, text := range texts {
		tag, value, style, ok := simpleScalar(text)
		if !ok {
			continue
		}
		taken++
		var want yaml3.Node
		parseScalarText(&want, text)
		if tag != want.Tag || value != want.Value || style != want.Style {
			t.Errorf("simpleScalar(%q) = %s %q style %d, the reader makes %s %q style %d",
				text, tag, value, style, want.Tag, want.Value, want.Style)
		}
	}
	t.Logf("simpleScalar took %d of %d texts", taken, len(texts))
	if taken < 1000 {
		t.Errorf("simpleScalar took only %d of %d texts: the comparison says little", taken, len(texts))
	}
}
