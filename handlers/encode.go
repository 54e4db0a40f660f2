package handlers

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// toObject turns a typed Kubernetes object into its JSON object form,
// holding only the fields that are set.
//
// encoding/json cannot do this with the upstream types: omitempty has no
// effect on struct-valued fields, and many OpenShift and HyperShift fields
// are plain structs or scalars without omitempty. An OAuth would carry
// templates.login.name "", an IngressController tuningOptions.reloadInterval
// "0s", a NodePool status.replicas 0. A manifest is server-side applied with
// force, so every field it carries is claimed by the adapter and overwrites
// what an operator or a person set there; a zero value we never chose must
// not be sent. So every struct field whose value is the zero value of its
// type is left out, recursively; map entries and list items are always kept
// (an empty label value or an empty list is a value someone chose), as are
// pointers that are set, even to a zero value (replicas: 0). The result is
// decoded JSON (numbers as json.Number), like a manifest read from a file.
func toObject(v any) (object, error) {
	tree, err := setFields(reflect.ValueOf(v))
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	raw, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep integers exact
	var obj object
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode %T: %w", v, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("encode %T: not an object", v)
	}
	return obj, nil
}

// toObjects converts typed objects in order.
func toObjects(vs ...any) ([]object, error) {
	out := make([]object, 0, len(vs))
	for _, v := range vs {
		o, err := toObject(v)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// setFields returns v as a tree of values json.Marshal encodes as v would
// be encoded, without the struct fields that hold their zero value.
func setFields(v reflect.Value) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	// Types with their own encoding (metav1.Time, resource.Quantity,
	// intstr.IntOrString, runtime.RawExtension, ...) keep it.
	if v.Type().Implements(jsonMarshaler) || v.Type().Implements(textMarshaler) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return nil, nil
		}
		return v.Interface(), nil
	}
	if v.CanAddr() && (v.Addr().Type().Implements(jsonMarshaler) || v.Addr().Type().Implements(textMarshaler)) {
		return v.Addr().Interface(), nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return setFields(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		if err := structFields(v, out); err != nil {
			return nil, err
		}
		return out, nil
	case reflect.Map:
		if v.IsNil() {
			return nil, nil
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() != reflect.String {
				return nil, fmt.Errorf("map key of type %s: want a string", k.Type())
			}
			e, err := setFields(iter.Value())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.String(), err)
			}
			out[k.String()] = e
		}
		return out, nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil, nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface(), nil // []byte: base64, as encoding/json does
		}
		out := make([]any, v.Len())
		for i := range v.Len() {
			e, err := setFields(v.Index(i))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = e
		}
		return out, nil
	default:
		return v.Interface(), nil
	}
}

// structFields adds the set fields of struct v to out under their JSON
// names, flattening embedded structs without a JSON name as encoding/json
// does (TypeMeta, the inline IdentityProviderConfig).
func structFields(v reflect.Value, out map[string]any) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv, ft = fv.Elem(), ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := structFields(fv, out); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() || fv.IsZero() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		e, err := setFields(fv)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// A struct whose every field is zero but which is not itself zero
		// cannot happen; an empty map of set fields from a struct of
		// unexported fields can, and says nothing.
		if m, isMap := e.(map[string]any); isMap && len(m) == 0 && fv.Kind() == reflect.Struct {
			continue
		}
		out[name] = e
	}
	return nil
}
