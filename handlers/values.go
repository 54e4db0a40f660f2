package handlers

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// lookup walks a dot path through decoded JSON objects. Spec is untyped
// JSON, so every handler reads it through here.
func lookup(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// lookupString returns the string at path; ok is false when it is missing.
// A value of another type is an error naming the path.
func lookupString(obj map[string]any, path string) (string, bool, error) {
	v, ok := lookup(obj, path)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, fmt.Errorf("spec.%s is a %s, want a string", path, jsonType(v))
	}
	return s, true, nil
}

// lookupInt returns the integer at path; ok is false when it is missing.
func lookupInt(obj map[string]any, path string) (int64, bool, error) {
	v, ok := lookup(obj, path)
	if !ok {
		return 0, false, nil
	}
	n, err := asInt(v)
	if err != nil {
		return 0, false, fmt.Errorf("spec.%s: %w", path, err)
	}
	return n, true, nil
}

// asInt accepts the forms JSON numbers take after decoding: float64 from
// encoding/json, json.Number with UseNumber, and Go integers from code.
func asInt(v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", n)
		}
		return int64(n), nil
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer", n)
		}
		return i, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	default:
		return 0, fmt.Errorf("is a %s, want an integer", jsonType(v))
	}
}

// jsonType names the JSON type of a decoded value for error messages; it
// never shows the value, which may be a secret.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, json.Number, int, int32, int64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
