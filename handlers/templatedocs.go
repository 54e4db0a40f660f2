package handlers

// Rendered documents: a file's rendered text is cut at its "---" lines
// (splitDocuments) and each document made an object (decodeDocument).
//
// Parsing once per shape: the rendered text of a document is the template's
// own text with tokens for the values, so it is the same from event to
// event except where control flow ({{if}}, {{range}}) makes it differ. Each
// distinct text is parsed once and kept, with the object it makes less the
// values (shape). An event whose values are plain scalars fills that object
// in (fill); any other copies only the nodes its substitution changes and
// takes the full path.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of a rendered file.
type document struct {
	text []byte
	line int // 1-based line of the rendered file where it starts
}

var separatorRE = regexp.MustCompile(`^---[ \t]*(#.*)?$`)

// splitDocuments cuts rendered YAML at "---" lines. The rendered text
// holds tokens in place of every value, so only the template's own
// separators are seen here.
func splitDocuments(out []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	for pos := 0; pos <= len(out); {
		end := bytes.IndexByte(out[pos:], '\n')
		next := len(out) + 1
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(out)
		}
		if separatorRE.Match(bytes.TrimRight(out[pos:end], "\r")) {
			docs = append(docs, document{text: out[start:pos], line: startLine})
			start, startLine = min(next, len(out)), line+1
		}
		pos = next
		line++
	}
	return append(docs, document{text: out[start:], line: startLine})
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

var (
	kindLineRE       = regexp.MustCompile(`(?m)^kind:[ \t]*([A-Za-z0-9]+)[ \t]*(?:#.*)?$`)
	apiVersionLineRE = regexp.MustCompile(`(?m)^apiVersion:[ \t]*([A-Za-z0-9./-]+)[ \t]*(?:#.*)?$`)
)

// kindFromText is the kind and apiVersion a document states in its own
// top-level lines, for a sample render that could not be parsed; err
// when it states none (they come from values, say).
func (st *renderState) kindFromText(doc document, err error) (object, error) {
	k := kindLineRE.FindSubmatch(doc.text)
	v := apiVersionLineRE.FindSubmatch(doc.text)
	if k == nil || v == nil || bytes.Contains(k[1], []byte(st.prefix)) || bytes.Contains(v[1], []byte(st.prefix)) {
		return nil, err
	}
	return object{"apiVersion": string(v[1]), "kind": string(k[1])}, nil
}

// decodeDocument parses one rendered document as exactly one YAML
// document, puts the values in place of their tokens and returns the
// object; nil for an empty document.
func (st *renderState) decodeDocument(doc document) (object, error) {
	d, err := st.parseDocument(doc)
	if err != nil || d.body == nil {
		return nil, err
	}
	if obj, ok := st.fill(d); ok {
		return obj, nil
	}
	body := d.copy(d.body)
	if err := st.substitute(body); err != nil {
		return nil, fmt.Errorf("document at rendered line %d: %w", doc.line, err)
	}
	v, err := treeValue(body)
	if err != nil {
		return nil, fmt.Errorf("document at rendered line %d: %w", doc.line, err)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return x, nil
	default:
		return nil, fmt.Errorf("document at rendered line %d is a %s, want a Kubernetes object", doc.line, jsonType(v))
	}
}

// treeValue is the value of a parsed tree as Kubernetes reads it: the tree
// is written out and re-read with Kubernetes' YAML reader, so that the
// template's own scalars mean what they meant to kubectl.
func treeValue(n *yaml3.Node) (any, error) {
	text, err := yaml3.Marshal(n)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Bounds of a documentCache: a template whose text varies with the
// values (a range over labels, say) would otherwise grow it without end.
// When an entry would pass them the cache starts again, empty.
const (
	maxCachedDocuments = 128
	maxCachedText      = 1 << 20 // bytes of document text, keys added up
)

// documentCache holds the parsed documents of one template handler, keyed
// by their rendered text with every render's own token prefix replaced by
// the cache's prefix (the same length, so lines and columns stay). Trees
// are never changed once cached; it is safe for concurrent use.
type documentCache struct {
	prefix string // "hfv" + nonce of the handler

	mu   sync.Mutex
	docs map[string]*parsedDocument
	text int // len of the keys, added up

	// full: never fill, always take the full path (for the tests that
	// compare the two).
	full bool
}

// parsedDocument is one cached document: its body (nil when the document
// is empty), the nodes that hold a token or have one below them, the only
// ones substitution may change, and its shape (nil when it has none).
type parsedDocument struct {
	body    *yaml3.Node
	tokened map[*yaml3.Node]bool
	shape   *shape
}

// shape is the object a document makes, by the full path, with a hole
// where each scalar holding tokens goes. A document has one when tokens
// stand only in scalars that are not keys and it makes an object.
type shape struct {
	object  map[string]any
	scalars []*yaml3.Node // the cached scalars, by hole
}

// hole stands in a shape's object for the value of shape.scalars[hole].
type hole int

func newDocumentCache() (*documentCache, error) {
	prefix, err := newTokenPrefix()
	if err != nil {
		return nil, fmt.Errorf("template document nonce: %w", err)
	}
	return &documentCache{prefix: prefix, docs: map[string]*parsedDocument{}}, nil
}

func (c *documentCache) get(key []byte) *parsedDocument {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.docs[string(key)]
}

func (c *documentCache) put(key []byte, d *parsedDocument) {
	if len(key) > maxCachedText {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.docs) >= maxCachedDocuments || c.text+len(key) > maxCachedText {
		c.docs, c.text = map[string]*parsedDocument{}, 0
	}
	c.docs[string(key)] = d
	c.text += len(key)
}

// parseDocument parses one rendered document as exactly one YAML document,
// tokens in st.treePrefix; its body is nil for an empty document. The
// result is shared: copy the body before changing it.
func (st *renderState) parseDocument(doc document) (*parsedDocument, error) {
	key := bytes.ReplaceAll(doc.text, []byte(st.prefix), []byte(st.treePrefix))
	if d := st.docs.get(key); d != nil {
		return d, nil
	}
	body, err := st.parseText(key, doc.line)
	if err != nil {
		return nil, err
	}
	d := &parsedDocument{body: body, tokened: map[*yaml3.Node]bool{}}
	if body != nil {
		d.mark(body, st.treePrefix)
		d.shape = d.makeShape(st.treePrefix)
	}
	st.docs.put(key, d)
	return d, nil
}

// parseText parses text, a document starting at the rendered file's line,
// with tokens in st.treePrefix.
func (st *renderState) parseText(text []byte, line int) (*yaml3.Node, error) {
	relined := func(err error) string {
		// Make the parser's document-relative line absolute.
		return yamlLineRE.ReplaceAllStringFunc(st.expandTokens(st.treePrefix, err.Error()), func(m string) string {
			n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
			return fmt.Sprintf("rendered line %d", line+n-1)
		})
	}
	dec := yaml3.NewDecoder(bytes.NewReader(text))
	var root yaml3.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("invalid YAML in the document at rendered line %d: %s", line, relined(err))
	}
	var extra yaml3.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("the document at rendered line %d holds more than one YAML document (a \"...\" marker?); separate documents with --- lines", line)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	return root.Content[0], nil
}

// mark records in d.tokened whether n or a node below it holds a token
// (in its value, anchor or tag: all substitute looks at). Aliases are not
// followed: substitute does not follow them either.
func (d *parsedDocument) mark(n *yaml3.Node, prefix string) bool {
	has := strings.Contains(n.Value, prefix) || strings.Contains(n.Anchor, prefix) || strings.Contains(n.Tag, prefix)
	for _, c := range n.Content {
		if d.mark(c, prefix) {
			has = true
		}
	}
	if has {
		d.tokened[n] = true
	}
	return has
}

// copy is n for one render: the nodes holding tokens are copied, the rest
// shared with the cache, as substitute leaves them unchanged. An alias
// keeps pointing at the cached node it names; only its name is used
// afterwards (the encoder writes "*name").
func (d *parsedDocument) copy(n *yaml3.Node) *yaml3.Node {
	if !d.tokened[n] {
		return n
	}
	c := *n
	if n.Content != nil {
		c.Content = make([]*yaml3.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = d.copy(k)
		}
	}
	return &c
}

// makeShape runs the full path once with a marker string in each scalar
// that holds tokens and turns the markers into holes; nil when the
// document has no shape.
func (d *parsedDocument) makeShape(prefix string) *shape {
	if d.body.Kind != yaml3.MappingNode {
		return nil
	}
	sh := &shape{}
	ok := true
	var markers func(n *yaml3.Node) *yaml3.Node
	markers = func(n *yaml3.Node) *yaml3.Node {
		if !d.tokened[n] {
			return n
		}
		if strings.Contains(n.Anchor, prefix) || strings.Contains(n.Tag, prefix) {
			ok = false
			return n
		}
		c := *n
		switch n.Kind {
		case yaml3.ScalarNode:
			c.Tag, c.Style, c.Value = "!!str", yaml3.DoubleQuotedStyle, shapeMarker(prefix, len(sh.scalars))
			sh.scalars = append(sh.scalars, n)
		case yaml3.MappingNode, yaml3.SequenceNode:
			c.Content = make([]*yaml3.Node, len(n.Content))
			for i, k := range n.Content {
				if n.Kind == yaml3.MappingNode && i%2 == 0 && d.tokened[k] {
					ok = false // a key: its value may merge or repeat keys
				}
				c.Content[i] = markers(k)
			}
		default: // an alias named by a value
			ok = false
		}
		return &c
	}
	body := markers(d.body)
	if !ok {
		return nil
	}
	v, err := treeValue(body)
	if err != nil {
		return nil
	}
	obj, isObject := v.(map[string]any)
	if !isObject {
		return nil
	}
	var holes func(v any) (any, bool)
	holes = func(v any) (any, bool) {
		var kept bool
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.Contains(k, prefix) {
					return nil, false
				}
				if x[k], kept = holes(e); !kept {
					return nil, false
				}
			}
		case []any:
			for i, e := range x {
				if x[i], kept = holes(e); !kept {
					return nil, false
				}
			}
		case string:
			if !strings.Contains(x, prefix) {
				return x, true
			}
			for i := range sh.scalars {
				if x == shapeMarker(prefix, i) {
					return hole(i), true
				}
			}
			return nil, false // a marker in a larger text
		}
		return v, true
	}
	if _, ok := holes(obj); !ok {
		return nil
	}
	sh.object = obj
	return sh
}

// shapeMarker is what stands for the i-th scalar while a shape is made:
// not a token ("s"), so never taken for one.
func shapeMarker(prefix string, i int) string { return prefix + "s" + strconv.Itoa(i) + "z" }

// fill is the object of d for this render from d's shape, when every
// scalar holding tokens takes a value scalarJSON knows; ok false when d
// has no shape or a value is any other (toYaml's structure, say).
func (st *renderState) fill(d *parsedDocument) (obj object, ok bool) {
	if d.shape == nil || st.docs.full {
		return nil, false
	}
	values := make([]any, len(d.shape.scalars))
	for i, n := range d.shape.scalars {
		if values[i], ok = st.scalarValue(n); !ok {
			return nil, false
		}
	}
	return fillHoles(d.shape.object, values).(map[string]any), true
}

// scalarValue is what the cached scalar n holding tokens becomes in the
// object: substituted as substitute would, then read as scalarJSON reads
// it. ok false for a structured value and forms scalarJSON does not know.
func (st *renderState) scalarValue(n *yaml3.Node) (any, bool) {
	if i, ok := st.wholeToken(n.Value); ok && n.Style == 0 && st.values[i].structured {
		return nil, false
	}
	c := *n
	if err := st.substituteScalar(&c); err != nil {
		return nil, false
	}
	return scalarJSON(&c)
}

// fillHoles is a copy of v, a shape's object, with values in its holes.
func fillHoles(v any, values []any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = fillHoles(e, values)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = fillHoles(e, values)
		}
		return s
	case hole:
		return values[x]
	}
	return v
}

// scalarJSON is the value Kubernetes' YAML reader gives the scalar n once
// the tree holding it is written out (treeValue), for the forms values
// mostly take: ASCII text in double quotes and simpleScalar's plain words
// and numbers. ok false for any other form.
// TestScalarJSONIsTreeValue compares the two.
func scalarJSON(n *yaml3.Node) (any, bool) {
	switch {
	case n.Kind != yaml3.ScalarNode:
	case n.Style == yaml3.DoubleQuotedStyle:
		if n.Tag == "!!str" && textASCII(n.Value) {
			return n.Value, true
		}
	case n.Style != 0:
	case n.Tag == "!!int" && decimalInt(n.Value):
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err == nil {
			return json.Number(strconv.FormatInt(i, 10)), true
		}
	case n.Tag == "!!bool":
		switch n.Value {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
	case n.Tag == "!!null":
		switch n.Value {
		case "null", "Null", "NULL":
			return nil, true
		}
	}
	return nil, false
}

// textASCII reports whether s is printable ASCII, tabs and line feeds: text
// the writer escapes or writes as it is and the reader reads back the same.
func textASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t' && c != '\n') || c > 0x7e {
			return false
		}
	}
	return true
}
