package e2etest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hopwatch/hopwatch/dashboards/lint"
)

// GeneratedDashboard is one committed dashboard and the file it was read
// from.
type GeneratedDashboard struct {
	lint.Dashboard
	// File is the dashboard's path.
	File string
}

// GeneratedDashboards reads every committed dashboard in
// dashboards/generated, the files users import, for tests that run their
// queries against a live pipeline.
func GeneratedDashboards(t testing.TB) []GeneratedDashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "dashboards", "generated", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in dashboards/generated (%v): run `make dashboards`", err)
	}
	out := make([]GeneratedDashboard, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := lint.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, GeneratedDashboard{Dashboard: d, File: f})
	}
	return out
}
