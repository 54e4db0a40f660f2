// Package sql_parser turns a search expression into a SQL WHERE fragment with
// `?` placeholders and the matching bind values.
//
// It is this project's own implementation of the API that the Maestro server
// calls from github.com/openshift-online/ocm-common (pkg/services/generic.go:
// `sql_parser.NewSQLParser().Parse(search)`, then `values.([]interface{})`).
// Maestro uses it for searches that contain the JSONB operators `->>` or `@>`,
// which its own client builds from Kubernetes label selectors, for example
//
//	source='s1' and consumer_name='c1' and payload->'metadata'->'labels'@>'{"a":"b"}'
//	payload->'metadata'->'labels'->>'env'in('a','b') and payload->'metadata'->'labels'->>'x'<>'y'
//	payload->'metadata'->'labels'->>'k'<>null
//
// Grammar (keywords are case-insensitive):
//
//	expr      := and_expr { OR and_expr }
//	and_expr  := unary { AND unary }
//	unary     := NOT unary | '(' expr ')' | predicate
//	predicate := column jsonb_path? test
//	jsonb_path:= { '->' 'key' } [ '->>' 'key' ]
//	test      := ( '=' | '<>' | '!=' | '<' | '>' | '<=' | '>=' ) value
//	           | [NOT] ( LIKE | ILIKE ) value
//	           | [NOT] IN '(' value { ',' value } ')'
//	           | IS [NOT] NULL | ( '=' | '<>' | '!=' ) NULL
//	           | '@>' 'json'                    (only on a column or a '->' path)
//	value     := 'quoted string' | bare-word
//
// Safety: only fixed grammar text (operators, keywords, parentheses) and column
// names that match a strict identifier pattern reach the SQL text. Every value
// and every JSONB key is emitted as a `?` bind parameter. Anything the parser
// does not understand is rejected with an error naming the problem and its
// byte offset.
package sql_parser

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

const (
	defaultMaximumComplexity = 10
	// maximumNesting bounds the recursion depth of parentheses and NOTs so a
	// hostile search cannot exhaust the stack.
	maximumNesting = 32
)

// SQLParser parses the part of a SQL query after `WHERE`.
type SQLParser interface {
	// Parse parses the search string and returns:
	//   - the SQL fragment with every value replaced by a `?` placeholder,
	//   - the values for the placeholders, as a []interface{} of strings,
	//   - an error when the search is not understood.
	Parse(sql string) (string, interface{}, error)
}

// SQLParserOption configures a parser built by NewSQLParser.
type SQLParserOption func(parser *sqlParser)

// WithValidColumns restricts the column names a search may use. Names are
// compared lower-cased, before any prefix is added.
func WithValidColumns(validColumns ...string) SQLParserOption {
	return func(parser *sqlParser) {
		parser.validColumns = nil
		for _, c := range validColumns {
			parser.validColumns = append(parser.validColumns, strings.ToLower(c))
		}
	}
}

// WithColumnPrefix prefixes every column that is not already qualified with
// `prefix.`.
func WithColumnPrefix(columnPrefix string) SQLParserOption {
	return func(parser *sqlParser) {
		parser.columnPrefix = strings.ToLower(strings.TrimSpace(columnPrefix))
	}
}

// WithMaximumComplexity sets how many logical operators (AND, OR, NOT) a
// search may contain. The default is 10, as upstream.
func WithMaximumComplexity(maximumComplexity int) SQLParserOption {
	return func(parser *sqlParser) {
		parser.maximumComplexity = maximumComplexity
	}
}

// NewSQLParser returns a parser configured by the given options.
func NewSQLParser(options ...SQLParserOption) SQLParser {
	p := &sqlParser{maximumComplexity: defaultMaximumComplexity}
	for _, o := range options {
		o(p)
	}
	return p
}

type sqlParser struct {
	maximumComplexity int
	validColumns      []string
	columnPrefix      string
}

var _ SQLParser = &sqlParser{}

var (
	columnPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
	prefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	keywords      = map[string]bool{"and": true, "or": true, "not": true, "in": true, "like": true, "ilike": true, "is": true, "null": true}
)

// Parse implements SQLParser. It is safe for concurrent use: all parse state
// lives in a per-call value.
func (p *sqlParser) Parse(search string) (string, interface{}, error) {
	if p.columnPrefix != "" && !prefixPattern.MatchString(p.columnPrefix) {
		return "", nil, fmt.Errorf("invalid column prefix %q", p.columnPrefix)
	}
	if strings.TrimSpace(search) == "" {
		return "", nil, fmt.Errorf("error parsing the filter: empty search expression")
	}
	toks, err := lex(search)
	if err != nil {
		return "", nil, err
	}
	st := &state{parser: p, toks: toks, values: []interface{}{}}
	sql, err := st.parseExpr(0)
	if err != nil {
		return "", nil, err
	}
	if t := st.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return "", nil, st.errAt(t, "unexpected ')' without a matching '('")
		}
		return "", nil, st.errAt(t, "unexpected token %s, expected AND, OR or end of input", t.describe())
	}
	return sql, st.values, nil
}

type state struct {
	parser     *sqlParser
	toks       []token
	pos        int
	values     []interface{}
	complexity int
}

func (s *state) peek() token { return s.toks[s.pos] }

func (s *state) next() token {
	t := s.toks[s.pos]
	if t.kind != tokEOF {
		s.pos++
	}
	return t
}

func (s *state) errAt(t token, format string, args ...interface{}) error {
	if t.kind == tokEOF {
		return fmt.Errorf("[%d] error parsing the filter: %s (at end of input)", t.pos, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("[%d] error parsing the filter: %s", t.pos, fmt.Sprintf(format, args...))
}

// isKeyword reports whether t is the bare keyword kw (case-insensitive).
func isKeyword(t token, kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

func (s *state) bind(v string) string {
	s.values = append(s.values, v)
	return "?"
}

func (s *state) countLogical(t token) error {
	s.complexity++
	if s.complexity > s.parser.maximumComplexity {
		return s.errAt(t, "maximum number of permitted joins (%d) exceeded", s.parser.maximumComplexity)
	}
	return nil
}

func (s *state) parseExpr(depth int) (string, error) {
	left, err := s.parseAnd(depth)
	if err != nil {
		return "", err
	}
	for isKeyword(s.peek(), "or") {
		op := s.next()
		if err := s.countLogical(op); err != nil {
			return "", err
		}
		right, err := s.parseAnd(depth)
		if err != nil {
			return "", err
		}
		left = left + " OR " + right
	}
	return left, nil
}

func (s *state) parseAnd(depth int) (string, error) {
	left, err := s.parseUnary(depth)
	if err != nil {
		return "", err
	}
	for isKeyword(s.peek(), "and") {
		op := s.next()
		if err := s.countLogical(op); err != nil {
			return "", err
		}
		right, err := s.parseUnary(depth)
		if err != nil {
			return "", err
		}
		left = left + " AND " + right
	}
	return left, nil
}

func (s *state) parseUnary(depth int) (string, error) {
	t := s.peek()
	if depth >= maximumNesting {
		return "", s.errAt(t, "expression nested deeper than %d levels", maximumNesting)
	}
	switch {
	case isKeyword(t, "not"):
		s.next()
		if err := s.countLogical(t); err != nil {
			return "", err
		}
		inner, err := s.parseUnary(depth + 1)
		if err != nil {
			return "", err
		}
		return "NOT " + inner, nil
	case t.kind == tokLParen:
		s.next()
		inner, err := s.parseExpr(depth + 1)
		if err != nil {
			return "", err
		}
		closing := s.next()
		if closing.kind != tokRParen {
			if closing.kind == tokEOF {
				return "", s.errAt(closing, "missing ')' to close the '(' at offset %d", t.pos)
			}
			return "", s.errAt(closing, "unexpected token %s, expected ')'", closing.describe())
		}
		return "(" + inner + ")", nil
	case t.kind == tokWord:
		return s.parsePredicate()
	default:
		return "", s.errAt(t, "unexpected token %s, expected a column name, NOT or '('", t.describe())
	}
}

func (s *state) parseColumn() (string, error) {
	t := s.next()
	name := strings.ToLower(t.text)
	if keywords[name] {
		return "", s.errAt(t, "unexpected keyword %s, expected a column name", t.describe())
	}
	if !columnPattern.MatchString(name) {
		return "", s.errAt(t, "invalid column name %s: a column is a letter or '_' followed by letters, digits or '_', optionally qualified as table.column", t.describe())
	}
	if len(s.parser.validColumns) > 0 && !contains(s.parser.validColumns, name) {
		return "", s.errAt(t, "invalid column name: '%s', valid values are: %v", t.text, s.parser.validColumns)
	}
	if s.parser.columnPrefix != "" && !strings.HasPrefix(name, s.parser.columnPrefix+".") {
		name = s.parser.columnPrefix + "." + name
	}
	return name, nil
}

// parsePredicate parses `column [jsonb path] test`.
func (s *state) parsePredicate() (string, error) {
	operand, err := s.parseColumn()
	if err != nil {
		return "", err
	}
	// jsonbPath is set once the operand has a `->` step (its value is JSONB);
	// textPath once a `->>` step has turned it into text.
	jsonbPath, textPath := false, false
	for {
		t := s.peek()
		if t.kind != tokOp || (t.text != "->" && t.text != "->>") {
			break
		}
		if textPath {
			return "", s.errAt(t, "unexpected %s after ->>: the ->> step must be the last one of a JSONB path", t.describe())
		}
		s.next()
		key := s.next()
		if key.kind != tokString {
			return "", s.errAt(key, "unexpected token %s after %s, expected a quoted JSONB key such as 'labels'", key.describe(), t.text)
		}
		operand += " " + t.text + " " + s.bind(key.text)
		if t.text == "->>" {
			textPath = true
		} else {
			jsonbPath = true
		}
	}

	t := s.next()
	switch {
	case t.kind == tokOp && t.text == "@>":
		if textPath {
			return "", s.errAt(t, "@> needs a JSONB value on its left, not the text that ->> returns")
		}
		v := s.next()
		if v.kind != tokString {
			return "", s.errAt(v, "unexpected token %s after @>, expected a quoted JSON document", v.describe())
		}
		if !json.Valid([]byte(v.text)) {
			return "", s.errAt(v, "the value after @> is not valid JSON: %s", v.describe())
		}
		return operand + " @> " + s.bind(v.text), nil
	case jsonbPath && !textPath:
		return "", s.errAt(t, "unexpected token %s: a JSONB path ending in -> can only be used with @>; end it with ->> 'key' to compare text", t.describe())
	case t.kind == tokOp:
		op := t.text
		if op == "!=" {
			op = "<>"
		}
		if isKeyword(s.peek(), "null") {
			n := s.next()
			switch op {
			case "=":
				return operand + " IS NULL", nil
			case "<>":
				return operand + " IS NOT NULL", nil
			default:
				return "", s.errAt(n, "NULL cannot be compared with %s; use IS NULL or IS NOT NULL", t.text)
			}
		}
		v, err := s.parseValue(t.text)
		if err != nil {
			return "", err
		}
		return operand + " " + op + " " + v, nil
	case isKeyword(t, "is"):
		not := ""
		if isKeyword(s.peek(), "not") {
			s.next()
			not = "NOT "
		}
		n := s.next()
		if !isKeyword(n, "null") {
			return "", s.errAt(n, "unexpected token %s after IS, expected NULL or NOT NULL", n.describe())
		}
		return operand + " IS " + not + "NULL", nil
	case isKeyword(t, "not"):
		if err := s.countLogical(t); err != nil {
			return "", err
		}
		rest, err := s.parseSetOrLike(s.next(), true)
		if err != nil {
			return "", err
		}
		return operand + " NOT " + rest, nil
	case isKeyword(t, "in"), isKeyword(t, "like"), isKeyword(t, "ilike"):
		rest, err := s.parseSetOrLike(t, false)
		if err != nil {
			return "", err
		}
		return operand + " " + rest, nil
	default:
		return "", s.errAt(t, "unexpected token %s after column %s, expected a comparison operator (=, <>, !=, <, >, <=, >=, LIKE, ILIKE, IN, IS, @>, -> or ->>)", t.describe(), operand)
	}
}

// parseSetOrLike parses what follows a column (or `column NOT`): IN (...),
// LIKE value or ILIKE value.
func (s *state) parseSetOrLike(t token, negated bool) (string, error) {
	switch {
	case isKeyword(t, "like"), isKeyword(t, "ilike"):
		kw := strings.ToUpper(t.text)
		v, err := s.parseValue(kw)
		if err != nil {
			return "", err
		}
		return kw + " " + v, nil
	case isKeyword(t, "in"):
		open := s.next()
		if open.kind != tokLParen {
			return "", s.errAt(open, "unexpected token %s after IN, expected '('", open.describe())
		}
		var items []string
		for {
			v, err := s.parseValue("IN (")
			if err != nil {
				return "", err
			}
			items = append(items, v)
			sep := s.next()
			if sep.kind == tokRParen {
				break
			}
			if sep.kind != tokComma {
				return "", s.errAt(sep, "unexpected token %s in IN list, expected ',' or ')'", sep.describe())
			}
		}
		return "IN (" + strings.Join(items, ", ") + ")", nil
	default:
		if negated {
			return "", s.errAt(t, "unexpected token %s after NOT, expected IN, LIKE or ILIKE", t.describe())
		}
		return "", s.errAt(t, "unexpected token %s", t.describe())
	}
}

// parseValue reads one value (a quoted string or a bare word) and binds it.
func (s *state) parseValue(after string) (string, error) {
	v := s.next()
	switch {
	case v.kind == tokString:
		return s.bind(v.text), nil
	case v.kind == tokWord && !keywords[strings.ToLower(v.text)]:
		return s.bind(v.text), nil
	case v.kind == tokWord && strings.EqualFold(v.text, "null"):
		return "", s.errAt(v, "NULL is not a value here; use IS NULL, IS NOT NULL, = null or <> null")
	default:
		return "", s.errAt(v, "unexpected token %s after %s, expected a value", v.describe(), after)
	}
}

func contains(ary []string, value string) bool {
	for _, v := range ary {
		if v == value {
			return true
		}
	}
	return false
}
