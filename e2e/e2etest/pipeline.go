package e2etest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PinnedBin returns bin/<name>, a tool `make tools` builds from the
// version pinned in tools/<name>; a missing one fails the test, which
// needs the real tool.
func PinnedBin(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "bin", name)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing: run `make tools` (it builds the %s pinned in tools/%s); this test needs a real one", bin, name, name)
	}
	return bin
}

// PipelineBinaries builds hopwatch-proxy, statsd-sink and demo under their
// own names into a new temporary directory, the UP_BIN_DIR that
// deploy/local/up.sh runs them from. The directory is the caller's to
// change (to wrap a binary, say).
func PipelineBinaries(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/hopwatch-proxy", "./cmd/statsd-sink", "./cmd/demo")
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// StartLocalPipeline runs deploy/local/up.sh with the binaries in binDir on
// the ports from base (see FreePortBlock), its logs in a temporary
// directory, env adding the other UP_* settings, and waits until it
// reports "hopwatch is up.". At cleanup it gets SIGTERM, so that it stops
// everything it started (SIGKILL would orphan them).
func StartLocalPipeline(t testing.TB, binDir string, base int, env ...string) *Process {
	t.Helper()
	env = append([]string{"UP_PORT_BASE=" + strconv.Itoa(base), "UP_BIN_DIR=" + binDir, "UP_LOG_DIR=" + t.TempDir()}, env...)
	up := StartProcess(t, "up.sh", env, "bash", filepath.Join(RepoRoot(t), "deploy", "local", "up.sh"))
	// Registered after StartProcess's own cleanup, so it runs first.
	t.Cleanup(func() { up.Terminate(60 * time.Second) })
	up.WaitFor(t, "the pipeline up", 2*time.Minute, func() error {
		if !strings.Contains(up.Output(), "hopwatch is up.") {
			return errors.New(`no "hopwatch is up." yet`)
		}
		return nil
	})
	return up
}
