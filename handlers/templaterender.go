package handlers

// One render's state: the values its actions print, each recorded behind a
// token, and what turns tokens back into text for functions and errors.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

// # Values as tokens
//
// Values never become YAML text. Every action's output goes through
// outputFunc, which records the value and prints a token: "hfv", a
// random nonce of the render, the value's index, "z" — letters and digits
// only, so a token is always part of one YAML scalar. The rendered text
// is thus the template's own text with tokens; it is split into
// documents and each is parsed as YAML. Only then are the tokens replaced,
// in the parsed tree:
//
//   - a token that is a whole plain scalar takes the value's own form:
//     the node toYaml or toJson describe, or for text the one scalar it
//     reads as on a line of its own ("3" a number, "\"x\"" the string x),
//     or else the text as a string;
//   - a token inside a larger scalar, or in a quoted or block scalar, is
//     replaced by the value's text.
//
// A value can therefore never end a document, start a key or add an
// object: it only ever fills the scalar the template put it in.
// Functions see the values themselves (tokens are expanded back), and
// include's output, the template's own text, stays text (trustedText).

// trustedText is template text with tokens for its values: what include
// returns. It is printed as it is.
type trustedText string

// yamlText and jsonText are what toYaml and toJson return: the value's
// YAML or JSON text. They are strings to every function and builtin (eq,
// len, printf see the text, as before); printed by an action, the text
// becomes the value's structure at its place (substituteScalar).
type (
	yamlText string
	jsonText string
)

// structured reports whether v is toYaml's or toJson's text, and which.
func structured(v any) (text string, ok bool) {
	switch x := v.(type) {
	case yamlText:
		return string(x), true
	case jsonText:
		return string(x), true
	}
	return "", false
}

// emitted is one value recorded by a render.
type emitted struct {
	text string
	// structured: toYaml's or toJson's text, which stands for its
	// structure where it is a whole value.
	structured bool
	// seq: a non-empty toYaml list, printed as one "- token" entry that
	// the list replaces, so that it may stand at its key's own
	// indentation, as YAML allows a key's list to.
	seq bool
}

// renderState is one render of the files: the values its actions
// printed, the bounds it runs under, and the template set with functions
// bound to it.
type renderState struct {
	tmpl   *template.Template
	prefix string // "hfv" + nonce
	// docs parses the rendered documents; treePrefix is what the tokens
	// in its trees start with (documentCache.prefix) instead of prefix.
	docs       *documentCache
	treePrefix string
	values     []emitted
	maxBytes   int
	timeout    time.Duration
	deadline   time.Time
	probe      bool
	depth      int
}

func newRenderState(root *template.Template, docs *documentCache, maxBytes int, timeout time.Duration, probe bool) (*renderState, error) {
	prefix, err := newTokenPrefix()
	if err != nil {
		return nil, fmt.Errorf("template render nonce: %w", err)
	}
	st := &renderState{prefix: prefix, docs: docs, treePrefix: docs.prefix, maxBytes: maxBytes, timeout: timeout, probe: probe}
	if timeout > 0 {
		st.deadline = time.Now().Add(timeout)
	}
	tmpl, err := root.Clone()
	if err != nil {
		return nil, fmt.Errorf("template clone: %w", err)
	}
	st.tmpl = tmpl.Funcs(st.funcs())
	return st, nil
}

// newTokenPrefix is "hfv" and a random nonce: what the tokens of one
// render, or of one handler's parsed documents, start with.
func newTokenPrefix() (string, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	return "hfv" + hex.EncodeToString(nonce[:]), nil
}

func (st *renderState) token(i int) string { return tokenText(st.prefix, i) }

func tokenText(prefix string, i int) string { return prefix + strconv.Itoa(i) + "z" }

// mint records a value and returns its token.
func (st *renderState) mint(e emitted) (string, error) {
	if err := st.check(); err != nil {
		return "", err
	}
	st.values = append(st.values, e)
	return st.token(len(st.values) - 1), nil
}

// expand replaces every token in s by its value's text.
func (st *renderState) expand(s string) string { return st.expandTokens(st.prefix, s) }

// expandTokens replaces every token with prefix in s by its value's text.
func (st *renderState) expandTokens(prefix, s string) string {
	if prefix == "" || !strings.Contains(s, prefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		before := s[:i]
		rest := s[i+len(prefix):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil || j >= len(rest) || rest[j] != 'z' || n >= len(st.values) {
			// Not one of ours: keep the text.
			b.WriteString(before)
			b.WriteString(prefix)
			s = rest
			continue
		}
		if st.values[n].seq {
			// The list's own text replaces its "- token" entry.
			before = strings.TrimSuffix(before, "- ")
		}
		b.WriteString(before)
		b.WriteString(st.values[n].text)
		s = rest[j+1:]
	}
}

// wholeToken reports the value s, text of a parsed tree, is exactly the
// token of.
func (st *renderState) wholeToken(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, st.treePrefix)
	if !ok || !strings.HasSuffix(rest, "z") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "z"))
	if err != nil || n < 0 || n >= len(st.values) || tokenText(st.treePrefix, n) != s {
		return 0, false
	}
	return n, true
}

// str is v as text, the way templates print it, with tokens expanded.
func (st *renderState) str(v any) string {
	switch x := v.(type) {
	case trustedText:
		return st.expand(string(x))
	case yamlText:
		return string(x)
	case jsonText:
		return string(x)
	}
	return st.expand(toString(v))
}

// plain is v with the render's own types resolved to what they stand for.
func (st *renderState) plain(v any) any {
	switch x := v.(type) {
	case trustedText:
		return st.expand(string(x))
	case yamlText, jsonText:
		// The value the text describes, as toJson or toYaml of it again
		// would need it.
		text, _ := structured(x)
		js, err := yaml.YAMLToJSON([]byte(text))
		if err != nil {
			return text
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var out any
		if dec.Decode(&out) != nil {
			return text
		}
		return out
	}
	return v
}

// sampleValue stands for what a sample render lacks (sampleContext).
const sampleValue = "sample-value"

// errMissing is what printing a missing or null value fails with.
var errMissing = errors.New("prints a missing or null value: a field the template reads is missing (guard it with default, with or if)")

// output is outputFunc: what an action prints.
func (st *renderState) output(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		if st.probe {
			return st.mint(emitted{text: sampleValue})
		}
		return "", errMissing
	case trustedText:
		return string(x), nil
	}
	if text, ok := structured(v); ok {
		return st.mintStructured(v, text)
	}
	return st.mint(emitted{text: st.str(v)})
}

// mintStructured records a toYaml or toJson value: a token, or "- token"
// for a non-empty toYaml list (see emitted.seq).
func (st *renderState) mintStructured(v any, text string) (string, error) {
	_, isYAML := v.(yamlText)
	seq := isYAML && strings.HasPrefix(text, "- ")
	tok, err := st.mint(emitted{text: text, structured: true, seq: seq})
	if seq {
		tok = "- " + tok
	}
	return tok, err
}

// placed is indent and nindent: the value keeps its own form, placed at
// the indentation the template asks for.
func (st *renderState) placed(prefix string, n int, v any) (any, error) {
	pad := strings.Repeat(" ", max(n, 0))
	switch x := v.(type) {
	case trustedText:
		return trustedText(prefix + indent(n, string(x))), nil
	}
	if text, ok := structured(v); ok {
		tok, err := st.mintStructured(v, text)
		return trustedText(prefix + pad + tok), err
	}
	tok, err := st.mint(emitted{text: st.str(v)})
	return trustedText(prefix + pad + tok), err
}
