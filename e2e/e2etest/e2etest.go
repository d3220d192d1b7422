// Package e2etest holds helpers shared by the end-to-end tests, which run
// the real binaries and tools from the repository.
package e2etest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the hopwatch repository root: the nearest directory above
// the test's working directory whose go.mod declares the hopwatch module
// (the pinned tools under tools/ have go.mod files of their own).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/hopwatch/hopwatch\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the hopwatch module root above the test directory")
		}
		dir = parent
	}
}
