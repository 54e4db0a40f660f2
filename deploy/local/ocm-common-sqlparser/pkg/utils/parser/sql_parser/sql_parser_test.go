package sql_parser

import (
	"reflect"
	"strings"
	"testing"
)

type parseCase struct {
	name   string
	in     string
	sql    string
	values []interface{}
	// errContains, when set, means Parse must fail with an error containing it.
	errContains string
}

func runCases(t *testing.T, p SQLParser, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sql, values, err := p.Parse(c.in)
			if c.errContains != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %q, %v; want error containing %q", c.in, sql, values, c.errContains)
				}
				if !strings.Contains(err.Error(), c.errContains) {
					t.Fatalf("Parse(%q) error = %q; want it to contain %q", c.in, err, c.errContains)
				}
				if sql != "" || values != nil {
					t.Fatalf("Parse(%q) returned %q, %v together with an error", c.in, sql, values)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) unexpected error: %v", c.in, err)
			}
			if sql != c.sql {
				t.Errorf("Parse(%q) sql\n got: %s\nwant: %s", c.in, sql, c.sql)
			}
			got, ok := values.([]interface{})
			if !ok {
				// maestro does values.([]interface{}) and would panic otherwise
				t.Fatalf("Parse(%q) values have type %T, want []interface{}", c.in, values)
			}
			want := c.values
			if want == nil {
				want = []interface{}{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q) values\n got: %#v\nwant: %#v", c.in, got, want)
			}
			if n := strings.Count(sql, "?"); n != len(got) {
				t.Errorf("Parse(%q): %d placeholders but %d values", c.in, n, len(got))
			}
		})
	}
}

// The searches maestro's own source client builds (grpcsource.ToLabelSearch and
// the watcher store), byte for byte: no spaces around operators.
func TestMaestroClientSearches(t *testing.T) {
	runCases(t, NewSQLParser(), []parseCase{
		{
			name:   "equals labels (@>)",
			in:     `source='hyperfleet' and consumer_name='cluster-1' and payload->'metadata'->'labels'@>'{"a":"b","c":"d"}'`,
			sql:    `source = ? AND consumer_name = ? AND payload -> ? -> ? @> ?`,
			values: []interface{}{"hyperfleet", "cluster-1", "metadata", "labels", `{"a":"b","c":"d"}`},
		},
		{
			name:   "not equals labels",
			in:     `payload->'metadata'->'labels'->>'a'<>'b' and payload->'metadata'->'labels'->>'c'<>'d'`,
			sql:    `payload -> ? -> ? ->> ? <> ? AND payload -> ? -> ? ->> ? <> ?`,
			values: []interface{}{"metadata", "labels", "a", "b", "metadata", "labels", "c", "d"},
		},
		{
			name:   "exists label",
			in:     `payload->'metadata'->'labels'->>'a'<>null`,
			sql:    `payload -> ? -> ? ->> ? IS NOT NULL`,
			values: []interface{}{"metadata", "labels", "a"},
		},
		{
			name:   "in labels",
			in:     `payload->'metadata'->'labels'->>'env'in('a','b')`,
			sql:    `payload -> ? -> ? ->> ? IN (?, ?)`,
			values: []interface{}{"metadata", "labels", "env", "a", "b"},
		},
		{
			name:   "watch search with everything",
			in:     `source='src' and consumer_name='c1' and payload->'metadata'->'labels'@>'{"app":"x"}' and payload->'metadata'->'labels'->>'env'in('prod') and payload->'metadata'->'labels'->>'tier'<>'db' and payload->'metadata'->'labels'->>'owner'<>null`,
			sql:    `source = ? AND consumer_name = ? AND payload -> ? -> ? @> ? AND payload -> ? -> ? ->> ? IN (?) AND payload -> ? -> ? ->> ? <> ? AND payload -> ? -> ? ->> ? IS NOT NULL`,
			values: []interface{}{"src", "c1", "metadata", "labels", `{"app":"x"}`, "metadata", "labels", "env", "prod", "metadata", "labels", "tier", "db", "metadata", "labels", "owner"},
		},
	})
}

func TestLanguage(t *testing.T) {
	runCases(t, NewSQLParser(), []parseCase{
		{name: "simple", in: "name = 'x'", sql: "name = ?", values: []interface{}{"x"}},
		{name: "no spaces", in: "name='x'", sql: "name = ?", values: []interface{}{"x"}},
		{name: "bare value", in: "name = my-cluster", sql: "name = ?", values: []interface{}{"my-cluster"}},
		{name: "negative number", in: "version >= -1", sql: "version >= ?", values: []interface{}{"-1"}},
		{name: "all comparisons", in: "a = 1 and b <> 2 and c != 3 and d < 4 and e > 5 and f <= 6 and g >= 7",
			sql: "a = ? AND b <> ? AND c <> ? AND d < ? AND e > ? AND f <= ? AND g >= ?", values: []interface{}{"1", "2", "3", "4", "5", "6", "7"}},
		{name: "keywords any case", in: "a = 'x' AnD b = 'y' oR c LiKe 'z%'", sql: "a = ? AND b = ? OR c LIKE ?", values: []interface{}{"x", "y", "z%"}},
		{name: "column lower-cased", in: "Consumer_Name = 'X'", sql: "consumer_name = ?", values: []interface{}{"X"}},
		{name: "qualified column", in: "resources.payload -> 'data' -> 'manifests' @> '[{\"metadata\":{\"labels\":{\"foo\":\"bar\"}}}]'",
			sql: "resources.payload -> ? -> ? @> ?", values: []interface{}{"data", "manifests", `[{"metadata":{"labels":{"foo":"bar"}}}]`}},
		{name: "@> on bare column", in: `payload @> '{"a":1}'`, sql: "payload @> ?", values: []interface{}{`{"a":1}`}},
		{name: "in", in: "name in ('a', 'b', c)", sql: "name IN (?, ?, ?)", values: []interface{}{"a", "b", "c"}},
		{name: "not in", in: "name not in ('a','b')", sql: "name NOT IN (?, ?)", values: []interface{}{"a", "b"}},
		{name: "quoted comma in list", in: "name in ('a,b', c)", sql: "name IN (?, ?)", values: []interface{}{"a,b", "c"}},
		{name: "like", in: "name like 'abc%'", sql: "name LIKE ?", values: []interface{}{"abc%"}},
		{name: "ilike", in: "name ILIKE '%abc'", sql: "name ILIKE ?", values: []interface{}{"%abc"}},
		{name: "not like", in: "name not like 'a%'", sql: "name NOT LIKE ?", values: []interface{}{"a%"}},
		{name: "is null", in: "deleted_at is null", sql: "deleted_at IS NULL", values: nil},
		{name: "is not null", in: "deleted_at IS NOT NULL", sql: "deleted_at IS NOT NULL", values: nil},
		{name: "= null", in: "deleted_at = NULL", sql: "deleted_at IS NULL", values: nil},
		{name: "!= null", in: "deleted_at != null", sql: "deleted_at IS NOT NULL", values: nil},
		{name: "quoted null is a string", in: "name = 'null'", sql: "name = ?", values: []interface{}{"null"}},
		{name: "not prefix", in: "not name = 'a'", sql: "NOT name = ?", values: []interface{}{"a"}},
		{name: "not group", in: "not (a = 1 or b = 2) and c = 3", sql: "NOT (a = ? OR b = ?) AND c = ?", values: []interface{}{"1", "2", "3"}},
		{name: "parentheses kept", in: "((a = 1 and b = 2) or (c = 3)) and d = 4", sql: "((a = ? AND b = ?) OR (c = ?)) AND d = ?", values: []interface{}{"1", "2", "3", "4"}},
		{name: "jsonb text path with like", in: "payload->'metadata'->>'name' like 'work-%'", sql: "payload -> ? ->> ? LIKE ?", values: []interface{}{"metadata", "name", "work-%"}},
		{name: "jsonb text path not in", in: "payload->'metadata'->'labels'->>'env' not in ('a')", sql: "payload -> ? -> ? ->> ? NOT IN (?)", values: []interface{}{"metadata", "labels", "env", "a"}},
		{name: "top-level ->>", in: "payload->>'source' = 'x'", sql: "payload ->> ? = ?", values: []interface{}{"source", "x"}},
		{name: "escaped quote", in: `name='test\'123'`, sql: "name = ?", values: []interface{}{"test'123"}},
		{name: "sql doubled quote", in: `name='it''s'`, sql: "name = ?", values: []interface{}{"it's"}},
		{name: "escaped backslash", in: `name='a\\b'`, sql: "name = ?", values: []interface{}{`a\b`}},
		{name: "other backslash kept", in: `name='a\d'`, sql: "name = ?", values: []interface{}{`a\d`}},
		{name: "quoted special characters", in: `name='@,()"{}/ ->> @> = <>'`, sql: "name = ?", values: []interface{}{`@,()"{}/ ->> @> = <>`}},
		{name: "empty string", in: "name = ''", sql: "name = ?", values: []interface{}{""}},
		{name: "unicode", in: "name = 'ünï' and x = ü", sql: "name = ? AND x = ?", values: []interface{}{"ünï", "ü"}},
		{name: "surrounding whitespace", in: "  \tname = 'x'\n ", sql: "name = ?", values: []interface{}{"x"}},
	})
}

func TestRejects(t *testing.T) {
	runCases(t, NewSQLParser(), []parseCase{
		{name: "empty", in: "   ", errContains: "empty search"},
		{name: "just =", in: "=", errContains: "[0] error parsing the filter: unexpected token `=`"},
		{name: "incomplete", in: "name=", errContains: "expected a value"},
		{name: "dangling and", in: "name='test' and ", errContains: "at end of input"},
		{name: "unterminated string", in: "name = 'abc", errContains: "unterminated quoted string"},
		{name: "stray quote", in: "name='test'123'", errContains: "[14] error parsing the filter: unterminated quoted string"},
		{name: "value after string", in: "name='test'123", errContains: "unexpected token `123`"},
		{name: "missing close paren", in: "(name = 'a'", errContains: "missing ')'"},
		{name: "extra close paren", in: "name = 'a')", errContains: "unexpected ')'"},
		{name: "empty in", in: "name IN ()", errContains: "expected a value"},
		{name: "trailing comma in", in: "name IN ('a',)", errContains: "expected a value"},
		{name: "in without parens", in: "name IN 'a'", errContains: "expected '('"},
		{name: "unclosed in", in: "name IN ('a'", errContains: "expected ',' or ')'"},
		{name: "jsonb path without ->>", in: `manifest->'data'->'labels'->'foo' = 'bar'`, errContains: "can only be used with @>"},
		{name: "unquoted jsonb key", in: `payload->metadata->>'name' = 'x'`, errContains: "expected a quoted JSONB key"},
		{name: "step after ->>", in: `payload->>'a'->'b' = 'x'`, errContains: "must be the last one"},
		{name: "@> after ->>", in: `payload->>'a' @> '{}'`, errContains: "@> needs a JSONB value"},
		{name: "@> invalid json", in: `payload->'a' @> '{a:1}'`, errContains: "not valid JSON"},
		{name: "@> bare value", in: `payload->'a' @> x`, errContains: "expected a quoted JSON document"},
		{name: "keyword as column", in: "and = 1", errContains: "expected a column name"},
		{name: "keyword as value", in: "a = or", errContains: "expected a value"},
		{name: "null compare lt", in: "a < null", errContains: "NULL cannot be compared"},
		{name: "null in list", in: "a in (null)", errContains: "NULL is not a value"},
		{name: "is garbage", in: "a is 'x'", errContains: "expected NULL or NOT NULL"},
		{name: "not garbage", in: "a not = 1", errContains: "expected IN, LIKE or ILIKE"},
		{name: "two values", in: "a = 1 2", errContains: "expected AND, OR or end of input"},
		{name: "bang", in: "a ! 1", errContains: "unexpected character `!`"},
		{name: "missing operator", in: "a 'x'", errContains: "expected a comparison operator"},
		{name: "column with dash", in: "my-col = 1", errContains: "invalid column name"},
		{name: "three part column", in: "a.b.c = 1", errContains: "invalid column name"},
		{name: "column starting with digit", in: "1a = 1", errContains: "invalid column name"},
		{name: "starts with value", in: "'x' = name", errContains: "expected a column name"},
		// Injection attempts: everything that is not grammar is either a bound
		// value or an error. None of these may reach the SQL text.
		{name: "statement terminator in column", in: "name; drop table resources; -- = 1", errContains: "invalid column name"},
		{name: "comment in column", in: "name/**/ = 1", errContains: "invalid column name"},
		{name: "function call as column", in: "pg_sleep(10) = 1", errContains: "expected a comparison operator"},
		{name: "subquery", in: "id in (select id from resources)", errContains: "expected ',' or ')'"},
		{name: "or 1=1 unquoted", in: "name = x or 1=1", errContains: "invalid column name"},
		{name: "cast operator", in: "name::text = 'x'", errContains: "invalid column name"},
		{name: "deep nesting", in: strings.Repeat("(", 40) + "a = 1" + strings.Repeat(")", 40), errContains: "nested deeper"},
		{name: "deep not", in: strings.Repeat("not ", 40) + "a = 1", errContains: "maximum number of permitted joins"},
	})
}

// Values that look like SQL are bound, never spliced into the query.
func TestInjectionIsBound(t *testing.T) {
	runCases(t, NewSQLParser(), []parseCase{
		{
			name:   "quote breakout in value",
			in:     `name = 'x\' OR \'1\'=\'1'`,
			sql:    "name = ?",
			values: []interface{}{`x' OR '1'='1`},
		},
		{
			name:   "quote breakout in jsonb key",
			in:     `manifest->'x\' OR \'1\'=\'1'->>'foo' = 'bar'`,
			sql:    "manifest -> ? ->> ? = ?",
			values: []interface{}{`x' OR '1'='1`, "foo", "bar"},
		},
		{
			name:   "semicolon in bare value",
			in:     `name = x;drop`,
			sql:    "name = ?",
			values: []interface{}{"x;drop"},
		},
		{
			name:   "sql in @> document",
			in:     `payload->'metadata'->'labels'@>'{"a":"b\u0027; drop table x; --"}'`,
			sql:    "payload -> ? -> ? @> ?",
			values: []interface{}{"metadata", "labels", `{"a":"b\u0027; drop table x; --"}`},
		},
	})
}

func TestOptions(t *testing.T) {
	complexQuery := "((cloud_provider = Value and name = value1) and (owner <> value2 or region=b ) ) or owner=c or name=e and region LIKE '%test%'"
	runCases(t, NewSQLParser(WithMaximumComplexity(3)), []parseCase{
		{name: "complexity exceeded", in: complexQuery, errContains: "maximum number of permitted joins (3) exceeded"},
		{name: "complexity ok", in: "a = 1 and b = 2 or c = 3 and d = 4", sql: "a = ? AND b = ? OR c = ? AND d = ?", values: []interface{}{"1", "2", "3", "4"}},
	})
	runCases(t, NewSQLParser(), []parseCase{
		{name: "default complexity allows 10", in: strings.Repeat("a = 1 and ", 10) + "a = 1", sql: strings.Repeat("a = ? AND ", 10) + "a = ?",
			values: []interface{}{"1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1"}},
		{name: "default complexity rejects 11", in: strings.Repeat("a = 1 and ", 11) + "a = 1", errContains: "maximum number of permitted joins (10) exceeded"},
	})
	runCases(t, NewSQLParser(WithValidColumns("Cloud_Provider", "name", "region")), []parseCase{
		{name: "valid columns ok", in: "cloud_provider = x and name = y", sql: "cloud_provider = ? AND name = ?", values: []interface{}{"x", "y"}},
		{name: "valid columns reject", in: complexQuery, errContains: "invalid column name: 'owner', valid values are: [cloud_provider name region]"},
	})
	runCases(t, NewSQLParser(WithColumnPrefix("  main ")), []parseCase{
		{name: "prefix added", in: "name = x and main.owner = y and payload->>'k' = v",
			sql: "main.name = ? AND main.owner = ? AND main.payload ->> ? = ?", values: []interface{}{"x", "y", "k", "v"}},
	})
	runCases(t, NewSQLParser(WithColumnPrefix("   ")), []parseCase{
		{name: "blank prefix ignored", in: "name = x", sql: "name = ?", values: []interface{}{"x"}},
	})
	runCases(t, NewSQLParser(WithColumnPrefix("bad prefix;")), []parseCase{
		{name: "invalid prefix", in: "name = x", errContains: "invalid column prefix"},
	})
}

// A parser is reusable: no state leaks from one Parse to the next.
func TestReuse(t *testing.T) {
	p := NewSQLParser()
	if _, _, err := p.Parse("a = 1 and"); err == nil {
		t.Fatal("expected an error")
	}
	sql, values, err := p.Parse("b = 2")
	if err != nil || sql != "b = ?" || !reflect.DeepEqual(values, []interface{}{"2"}) {
		t.Fatalf("second Parse = %q, %v, %v", sql, values, err)
	}
}

// FuzzParse checks that whatever the input, the parser never panics, and that
// the SQL it produces contains nothing but grammar text, identifiers and
// placeholders: no quote character can survive into the SQL.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`source='s' and consumer_name='c' and payload->'metadata'->'labels'@>'{"a":"b"}'`,
		`payload->'metadata'->'labels'->>'a'<>null`,
		`a in ('x', y) or not (b like 'z%')`,
		`name='it''s'`, `x = '\'`, `((a=1)`, `a = 1 -- comment`,
	} {
		f.Add(s)
	}
	p := NewSQLParser()
	f.Fuzz(func(t *testing.T, in string) {
		sql, values, err := p.Parse(in)
		if err != nil {
			return
		}
		if strings.ContainsAny(sql, "'\";\\") || strings.Contains(sql, "--") || strings.Contains(sql, "/*") {
			t.Fatalf("Parse(%q) produced unsafe SQL %q", in, sql)
		}
		if n := strings.Count(sql, "?"); n != len(values.([]interface{})) {
			t.Fatalf("Parse(%q): %d placeholders, %d values", in, n, len(values.([]interface{})))
		}
	})
}
