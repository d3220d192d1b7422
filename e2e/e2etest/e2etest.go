// Package e2etest holds helpers shared by the end-to-end tests, which run
// the real binaries and tools from the repository.
package e2etest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a child process to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SyncBuffer collects a child process's output; it is safe to write from
// the process's pipes while a test reads it for a failure message.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls cond every 20 ms until it holds, and returns how long that
// took; it fails the test if limit passes first, naming what it waited for.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// Settle runs round, then again every interval, until it reports that the
// system has settled or timeout passes. It does not fail the test: round
// keeps its findings where the caller can report the last ones, which
// say what never settled.
func Settle(timeout, interval time.Duration, round func() bool) {
	for deadline := time.Now().Add(timeout); !round() && time.Now().Before(deadline); {
		time.Sleep(interval)
	}
}
