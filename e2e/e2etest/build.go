package e2etest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches GoBuild's binaries for the life of the test process: the
// scenarios of one package share one build of each binary.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// GoBuild builds the repository's package pkg (a path relative to the
// module root, such as "cmd/hopwatch-proxy") once per test process and
// returns the binary's path. The binary is removed when the process exits
// only if the test framework cleans its temp dirs; it lives under
// os.TempDir, named by the test process, so parallel packages never share
// one half-written file.
func GoBuild(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "hopwatch-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = dir
		builds.bins = map[string]string{}
	}
	bin := filepath.Join(builds.dir, strings.ReplaceAll(pkg, "/", "_"))
	cmd := exec.Command("go", "build", "-o", bin, "./"+pkg)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, out)
	}
	builds.bins[pkg] = bin
	return bin
}
