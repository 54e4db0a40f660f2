package sql_parser

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokenKind classifies the lexemes of the search language.
type tokenKind int

const (
	tokEOF    tokenKind = iota
	tokWord             // a bare word: column name, keyword or unquoted value
	tokString           // a single-quoted string literal (already unescaped)
	tokOp               // a comparison or JSONB operator: = <> != < > <= >= -> ->> @>
	tokLParen           // (
	tokRParen           // )
	tokComma            // ,
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of input"
	case tokWord:
		return "word"
	case tokString:
		return "quoted string"
	case tokOp:
		return "operator"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokComma:
		return "','"
	}
	return "unknown token"
}

type token struct {
	kind tokenKind
	// text is the token as written, except for tokString where it is the
	// unescaped content between the quotes.
	text string
	// pos is the 0-based byte offset of the token in the input.
	pos int
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokString:
		return fmt.Sprintf("quoted string '%s'", t.text)
	default:
		return fmt.Sprintf("`%s`", t.text)
	}
}

// operators, longest first so that `->>` wins over `->` and `<=` over `<`.
var operators = []string{"->>", "->", "@>", "<>", "!=", "<=", ">=", "=", "<", ">"}

// wordStop reports whether r ends a bare word.
func wordStop(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("'(),=<>!", r)
}

// lex splits the search string into tokens. Whitespace separates tokens but is
// not required around operators, parentheses or quotes: maestro's own client
// sends `payload->'metadata'->'labels'->>'env'in('a')` with no spaces at all.
//
// Quoted strings use single quotes; inside them `\'` stands for a quote and
// `\\` for a backslash (the escapes the upstream ocm-common scanner accepts),
// and two single quotes in a row (standard SQL) also stand for a quote. Any other backslash is kept
// as written. The content is never copied into SQL: it becomes a bind value.
func lex(input string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(input) {
		r, size := utf8.DecodeRuneInString(input[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		switch {
		case r == '(':
			toks = append(toks, token{kind: tokLParen, text: "(", pos: i})
			i++
			continue
		case r == ')':
			toks = append(toks, token{kind: tokRParen, text: ")", pos: i})
			i++
			continue
		case r == ',':
			toks = append(toks, token{kind: tokComma, text: ",", pos: i})
			i++
			continue
		case r == '\'':
			s, next, err := lexString(input, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tokString, text: s, pos: i})
			i = next
			continue
		}
		if op := matchOperator(input[i:]); op != "" {
			toks = append(toks, token{kind: tokOp, text: op, pos: i})
			i += len(op)
			continue
		}
		if input[i] == '!' {
			return nil, fmt.Errorf("[%d] error parsing the filter: unexpected character `!`", i)
		}
		// A bare word runs until whitespace, a quote, a parenthesis, a comma, a
		// comparison character, or the start of a JSONB operator (`->`, `@>`).
		// A lone `-` or `@` stays inside the word, so `my-cluster` and `-1` are
		// single words.
		start := i
		for i < len(input) {
			c, size := utf8.DecodeRuneInString(input[i:])
			if wordStop(c) {
				break
			}
			if strings.HasPrefix(input[i:], "->") || strings.HasPrefix(input[i:], "@>") {
				break
			}
			i += size
		}
		toks = append(toks, token{kind: tokWord, text: input[start:i], pos: start})
	}
	toks = append(toks, token{kind: tokEOF, pos: len(input)})
	return toks, nil
}

func matchOperator(s string) string {
	for _, op := range operators {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	return ""
}

// lexString reads a quoted string starting at input[start] == '\”.
func lexString(input string, start int) (string, int, error) {
	var b strings.Builder
	i := start + 1
	for i < len(input) {
		c := input[i]
		switch {
		case c == '\\' && i+1 < len(input) && (input[i+1] == '\'' || input[i+1] == '\\'):
			b.WriteByte(input[i+1])
			i += 2
		case c == '\'' && i+1 < len(input) && input[i+1] == '\'':
			b.WriteByte('\'')
			i += 2
		case c == '\'':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("[%d] error parsing the filter: unterminated quoted string", start)
}
