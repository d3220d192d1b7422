package e2etest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hopwatch/hopwatch/dashboards/lint"
)

// GeneratedDashboards reads every committed dashboard in
// dashboards/generated, the files users import, for tests that run their
// queries against a live pipeline.
func GeneratedDashboards(t testing.TB) []lint.Dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "dashboards", "generated", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in dashboards/generated (%v): run `make dashboards`", err)
	}
	out := make([]lint.Dashboard, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := lint.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}
