package handlers

// The functions templates may call (see TemplateData), bound to each
// render, and the helpers they share.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// funcs are the functions templates may call (see TemplateData), bound to
// this render.
func (st *renderState) funcs() template.FuncMap {
	return template.FuncMap{
		outputFunc: st.output,
		"toJson": func(v any) (jsonText, error) {
			b, err := json.Marshal(st.plain(v))
			return jsonText(b), err
		},
		"toYaml": func(v any) (yamlText, error) {
			v = st.plain(v)
			b, err := yaml.Marshal(v)
			if err != nil {
				// The YAML reader refuses characters JSON leaves as they
				// are (DEL, C1 controls): JSON with those escaped is YAML.
				if js, jerr := json.Marshal(v); jerr == nil {
					return yamlText(escapeForYAML(string(js))), nil
				}
				return "", err
			}
			return yamlText(strings.TrimSuffix(string(b), "\n")), nil
		},
		"default": func(def, v any) any {
			if isEmpty(st.plain(v)) {
				return def
			}
			return v
		},
		"required": func(msg string, v any) (any, error) {
			if isEmpty(st.plain(v)) {
				if st.probe {
					return sampleValue, nil
				}
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"quote": func(v any) string { return strconv.Quote(st.str(v)) },
		"lower": func(v any) string { return strings.ToLower(st.str(v)) },
		"upper": func(v any) string { return strings.ToUpper(st.str(v)) },
		"trim": func(v any) any {
			if x, ok := v.(trustedText); ok {
				return trustedText(strings.TrimSpace(string(x)))
			}
			return strings.TrimSpace(st.str(v))
		},
		"trunc": func(n int, v any) string {
			s := []rune(st.str(v))
			if n < 0 || n >= len(s) {
				return string(s)
			}
			return string(s[:n])
		},
		"replace": func(old, new string, v any) string { return strings.ReplaceAll(st.str(v), old, new) },
		"join": func(sep string, v any) (string, error) {
			v = st.plain(v)
			rv := reflect.ValueOf(v)
			if v == nil {
				return "", nil
			}
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
				return "", fmt.Errorf("join: want a list, got %s", jsonType(v))
			}
			parts := make([]string, rv.Len())
			for i := range parts {
				parts[i] = st.str(rv.Index(i).Interface())
			}
			return strings.Join(parts, sep), nil
		},
		"b64enc":   func(v any) string { return base64.StdEncoding.EncodeToString([]byte(st.str(v))) },
		"indent":   func(n int, v any) (any, error) { return st.placed("", n, v) },
		"nindent":  func(n int, v any) (any, error) { return st.placed("\n", n, v) },
		"dnsLabel": func(v any) string { return DNSLabel(st.str(v)) },
		"include": func(name string, data any) (trustedText, error) {
			if err := st.check(); err != nil {
				return "", err
			}
			if st.depth >= maxIncludeDepth {
				return "", fmt.Errorf("include %q: nested more than %d deep", name, maxIncludeDepth)
			}
			st.depth++
			defer func() { st.depth-- }()
			out := st.writer()
			err := st.tmpl.ExecuteTemplate(out, name, data)
			return trustedText(out.buf.String()), err
		},
	}
}

// escapeForYAML escapes, in JSON text, the characters a YAML reader does
// not accept in a document (they can only occur inside JSON strings).
func escapeForYAML(js string) string {
	var b strings.Builder
	for _, r := range js {
		if r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfeff || r == 0xfffe || r == 0xffff {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// toString prints v the way templates do, with nil as "".
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// isEmpty is Helm's notion of empty, which default and required share.
func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
