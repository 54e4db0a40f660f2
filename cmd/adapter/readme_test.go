package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every setting the adapter reads is documented in the README's
// configuration table.
func TestEverySettingIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		key := typ.Field(i).Tag.Get("envconfig")
		if !strings.Contains(string(readme), "| `"+key+"` |") {
			t.Errorf("setting %s is not in the README's configuration table", key)
		}
	}
}
