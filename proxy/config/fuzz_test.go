package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Whatever the input, Parse must
// not panic or hang; it returns either a config that validates again, or
// Errors in which every error is located (line > 0) or is about the whole
// file (no line and no path). The seed corpus is in testdata/fuzz/FuzzParse
// plus the example configs.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	examples, _ := filepath.Glob("../../deploy/local/*.yaml")
	for _, p := range examples {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(mergeBomb(3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("a parsed config does not validate again: %v", err)
			}
			_ = c.Redacted()
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("Parse error is not a non-empty Errors: %T %v", err, err)
		}
		for _, e := range errs {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Errorf("error without file or message: %#v", e)
			}
			if e.Line <= 0 && e.Path != "" {
				t.Errorf("error with a path but no line: %v", e)
			}
		}
	})
}
