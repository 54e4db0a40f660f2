package handlers

// Substitution: the values put in place of their tokens in a parsed
// document. Each fills only the scalar it stands in, read as one scalar of
// its own (scalarFromText), or becomes the structure toYaml or toJson
// describe there (replaceNode).

import (
	"fmt"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// substitute puts the values in place of the tokens in a parsed tree.
func (st *renderState) substitute(n *yaml3.Node) error {
	if strings.Contains(n.Anchor, st.treePrefix) || strings.Contains(n.Tag, st.treePrefix) {
		return fmt.Errorf("line %d: a value is printed into a YAML anchor or tag", n.Line)
	}
	if n.Kind == yaml3.SequenceNode && len(n.Content) == 1 && n.Content[0].Kind == yaml3.ScalarNode && n.Content[0].Style == 0 {
		if i, ok := st.wholeToken(n.Content[0].Value); ok && st.values[i].seq {
			return st.replaceNode(n, st.values[i].text)
		}
	}
	switch n.Kind {
	case yaml3.DocumentNode, yaml3.SequenceNode, yaml3.MappingNode:
		for _, c := range n.Content {
			if err := st.substitute(c); err != nil {
				return err
			}
		}
	case yaml3.ScalarNode:
		return st.substituteScalar(n)
	}
	return nil
}

func (st *renderState) substituteScalar(n *yaml3.Node) error {
	if !strings.Contains(n.Value, st.treePrefix) {
		return nil
	}
	if i, ok := st.wholeToken(n.Value); ok && n.Style == 0 {
		e := st.values[i]
		if e.structured {
			return st.replaceNode(n, e.text)
		}
		scalarFromText(n, e.text)
		return nil
	}
	n.Value = st.expandTokens(st.treePrefix, n.Value)
	if n.Style&yaml3.TaggedStyle == 0 {
		n.Tag = "!!str"
	}
	// Double quotes carry any text (the emitter's block styles do not:
	// a leading tab breaks them).
	n.Style = n.Style&yaml3.TaggedStyle | yaml3.DoubleQuotedStyle
	return nil
}

// replaceNode makes n the node toYaml's or toJson's text describes. The
// text is a marshaller's, so it is one YAML document, whatever the value
// holds.
func (st *renderState) replaceNode(n *yaml3.Node, text string) error {
	var doc yaml3.Node
	// toJson's text may hold characters YAML refuses (toYaml's cannot:
	// its marshaller refuses them), always inside JSON strings.
	if err := yaml3.Unmarshal([]byte(escapeForYAML(text)), &doc); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if len(doc.Content) != 1 {
		return fmt.Errorf("line %d: toYaml or toJson printed %d YAML values, want 1", n.Line, len(doc.Content))
	}
	line, col, anchor := n.Line, n.Column, n.Anchor
	*n = *doc.Content[0]
	// The template may alias the node by its anchor.
	n.Line, n.Column, n.Anchor = line, col, anchor
	return nil
}

// scalarFromText makes n the one scalar text reads as on a line of its
// own, or else the string text. It never makes a collection, an anchor, an
// alias or a tag.
func scalarFromText(n *yaml3.Node, text string) {
	if tag, value, style, ok := simpleScalar(text); ok {
		n.Tag, n.Value, n.Style = tag, value, style
		return
	}
	parseScalarText(n, text)
}

// parseScalarText is scalarFromText by the YAML reader itself.
func parseScalarText(n *yaml3.Node, text string) {
	n.Tag, n.Value, n.Style = "!!str", text, yaml3.DoubleQuotedStyle
	if strings.ContainsAny(text, "\n\r") {
		return
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal([]byte(text), &doc); err != nil {
		return
	}
	if len(doc.Content) == 0 { // empty or a comment: YAML reads null
		n.Tag, n.Value, n.Style = "!!null", "null", 0
		return
	}
	c := doc.Content[0]
	if c.Kind != yaml3.ScalarNode || c.Anchor != "" || c.Style&(yaml3.TaggedStyle|yaml3.LiteralStyle|yaml3.FoldedStyle) != 0 {
		return
	}
	switch c.Tag {
	case "!!int", "!!float", "!!bool", "!!null":
		n.Tag, n.Value, n.Style = c.Tag, c.Value, 0
	case "!!str":
		n.Value = c.Value
	}
}

// simpleScalar is scalarFromText's result for the texts most values are
// (a name, an id, a decimal number, true, a quoted string of printable
// ASCII), found without parsing: ok false for any other text. Each case is
// what the YAML reader makes of the text, spelled out (go.yaml.in/yaml/v3's
// scanner and resolve; TestSimpleScalarIsScalarFromText compares them).
// Parsing every value was most of the cost of a render.
func simpleScalar(text string) (tag, value string, style yaml3.Style, ok bool) {
	if text == "" {
		return "!!null", "null", 0, true
	}
	switch c := text[0]; {
	case c == '"' || c == '\'':
		// One quoted scalar: nothing inside that the reader treats
		// specially (its quote, an escape in double quotes, a line break).
		if len(text) < 2 || text[len(text)-1] != c {
			return "", "", 0, false
		}
		inner := text[1 : len(text)-1]
		special := "'"
		if c == '"' {
			special = "\"\\"
		}
		if !printableASCII(inner) || strings.ContainsAny(inner, special) {
			return "", "", 0, false
		}
		return "!!str", inner, yaml3.DoubleQuotedStyle, true
	case c == '-' || c >= '0' && c <= '9':
		if decimalInt(text) {
			return "!!int", text, 0, true
		}
		// A name or id starting with a digit (a UUID, say) is a string
		// when a dash stands where no number or date has one: after
		// the first character, not after an exponent's e or a 0b or 0o
		// prefix, and not as a date's after four digits.
		if c == '-' || !plainName(text) || datePrefix(text) {
			return "", "", 0, false
		}
		for i := 1; i < len(text); i++ {
			if text[i] == '-' && strings.IndexByte("0123456789acdfACDF", text[i-1]) >= 0 {
				return "!!str", text, yaml3.DoubleQuotedStyle, true
			}
		}
		return "", "", 0, false
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		if !plainName(text) {
			return "", "", 0, false
		}
		// What resolve makes of a plain scalar starting with a letter:
		// only these words are not strings.
		switch text {
		case "true", "True", "TRUE", "false", "False", "FALSE":
			return "!!bool", text, 0, true
		case "null", "Null", "NULL":
			return "!!null", text, 0, true
		}
		return "!!str", text, yaml3.DoubleQuotedStyle, true
	}
	return "", "", 0, false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// decimalInt reports whether s is -?(0|[1-9][0-9]*) with at most 18
// digits: an int64 however it is read.
func decimalInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainName reports whether text is one plain scalar that is all of text:
// no comment (" #"), key (": ", a final ':') or surrounding space, nothing
// but letters, digits and a few marks. The caller checks the first byte.
func plainName(text string) bool {
	for i := 0; i < len(text); i++ {
		if !plainNameByte(text[i]) {
			return false
		}
	}
	return !strings.Contains(text, ": ") && !strings.HasSuffix(text, ":") && !strings.HasSuffix(text, " ")
}

// datePrefix reports whether text starts with four digits and a dash, as
// the timestamps YAML resolves do.
func datePrefix(text string) bool {
	if len(text) < 5 || text[4] != '-' {
		return false
	}
	for i := range 4 {
		if text[i] < '0' || text[i] > '9' {
			return false
		}
	}
	return true
}

// plainNameByte is a byte simpleScalar lets into a plain scalar.
func plainNameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._/:=+@ ", c) >= 0
}
