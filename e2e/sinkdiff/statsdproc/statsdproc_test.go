package statsdproc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ijkl"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := tb.String(); got != "efghijkl" {
		t.Errorf("got %q, want the last 8 bytes", got)
	}
}

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		ok   bool
	}{{exe, true}, {plain, false}, {dir, false}, {filepath.Join(dir, "missing"), false}} {
		err := CheckBinary(tt.path, "make tools")
		if (err == nil) != tt.ok {
			t.Errorf("CheckBinary(%s) = %v, want ok=%v", tt.path, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrMissingBinary) || !strings.Contains(err.Error(), "make tools")) {
			t.Errorf("error %q does not name the make target", err)
		}
	}
}

// TestStartReportsAnEarlyExit uses /bin/false as a receiver that dies at
// once: Start must fail quickly with a clear message, not hang.
func TestStartReportsAnEarlyExit(t *testing.T) {
	if _, err := os.Stat("/bin/false"); err != nil {
		t.Skip("no /bin/false on this system")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Start(ctx, Config{Binary: "/bin/false", StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited early") {
		t.Fatalf("err = %v, want an early-exit error", err)
	}
}

func TestValueSumsSeries(t *testing.T) {
	fams, err := Parse([]byte("# TYPE statsd_exporter_lines_total counter\nstatsd_exporter_lines_total{a=\"1\"} 2\nstatsd_exporter_lines_total{a=\"2\"} 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := Value(fams, LinesTotal); !ok || v != 5 {
		t.Errorf("Value = %v, %v; want 5, true", v, ok)
	}
	if _, ok := Value(fams, "absent"); ok {
		t.Error("absent family reported present")
	}
	if _, err := Parse([]byte("bad-name 1\n")); err == nil {
		t.Error("invalid exposition parsed")
	}
}
