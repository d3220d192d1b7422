package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// quiet keeps expected write-error logs out of test output.
var quiet = slog.New(slog.DiscardHandler)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitFor polls cond for up to 10 s; generous so a loaded machine passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func infoWithID(id string) *streaminfo.Info {
	return &streaminfo.Info{Method: "GET", Path: "/", RequestID: id, ResponseCode: 200}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  config.AccessLog
		want string
	}{
		{"missing directory", config.AccessLog{Path: filepath.Join(dir, "nope", "access.log")}, filepath.Join(dir, "nope", "access.log")},
		{"path is a directory", config.AccessLog{Path: dir}, dir},
		{"unknown format", config.AccessLog{Format: "yaml"}, `unknown format "yaml": allowed values are "json" and "text"`},
		{"text_format without text", config.AccessLog{TextFormat: "%DURATION%"}, "set format: text"},
		{"bad text_format", config.AccessLog{Format: "text", TextFormat: "x %NOPE%"}, `"%NOPE%" at position 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg, Options{Logger: quiet})
			if err == nil {
				l.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(config.AccessLog{Format: "text", TextFormat: "%NOPE%"}, Options{}); !errors.As(err, new(*FormatError)) {
		t.Errorf("a bad text_format gave %T, want *FormatError", err)
	}
}

func TestFormatsThroughNew(t *testing.T) {
	tests := []struct {
		cfg  config.AccessLog
		want string
	}{
		{config.AccessLog{}, `{"start_time":null,"method":"GET"`},
		{config.AccessLog{Format: "json"}, `{"start_time":null,"method":"GET"`},
		{config.AccessLog{Format: "text"}, `[-] "GET / -" 200 - 0 0 0 - "-" "-" "id-1" "-" "-"` + "\n"},
		{config.AccessLog{Format: "text", TextFormat: "%REQ(X-REQUEST-ID)% %RESPONSE_CODE%"}, "id-1 200\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		l, err := New(tt.cfg, Options{Stdout: &out, FlushInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		l.Log(infoWithID("id-1"))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), tt.want) {
			t.Errorf("%+v: wrote %q, want prefix %q", tt.cfg, out.String(), tt.want)
		}
	}
}

func TestStderrPath(t *testing.T) {
	var out, errOut bytes.Buffer
	l, err := New(config.AccessLog{Path: "stderr"}, Options{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("x"))
	l.Close()
	if out.Len() != 0 || !strings.Contains(errOut.String(), `"request_id":"x"`) {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
	if l.Path() != "stderr" {
		t.Errorf("Path() = %q", l.Path())
	}
}

func TestFlushOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("a"))
	l.Log(infoWithID("b"))
	// Nothing triggers a write before Close: the interval is an hour and the
	// buffer is far below the size threshold.
	if got := readLines(t, path); len(got) != 0 {
		t.Fatalf("lines written before Close: %q", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); len(got) != 2 || !strings.Contains(got[1], `"request_id":"b"`) {
		t.Fatalf("after Close: %q", got)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l.Log(infoWithID("late"))
	if l.Dropped() != 1 {
		t.Errorf("Dropped() = %d after logging to a closed logger, want 1", l.Dropped())
	}
}

func TestFlushOnInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log(infoWithID("a"))
	waitFor(t, "the interval flush", func() bool { return len(readLines(t, path)) == 1 })
	l.Log(infoWithID("b"))
	waitFor(t, "the second interval flush", func() bool { return len(readLines(t, path)) == 2 })
}

func TestFlushOnSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info := infoWithID(strings.Repeat("x", 1000))
	lineLen := len(JSON{}.AppendLine(nil, info))
	// The n-th line takes the buffer past the threshold and wakes the flusher.
	n := 0
	for written := 0; written < flushSize; written += lineLen {
		l.Log(info)
		n++
	}
	waitFor(t, "the size-triggered flush", func() bool { return len(readLines(t, path)) == n })
}

func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	rotated := path + ".1"
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("a"))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("b")) // buffered before Reopen: belongs to the old file
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("c"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := readLines(t, rotated), readLines(t, path)
	if len(old) != 2 || !strings.Contains(old[0], `"a"`) || !strings.Contains(old[1], `"b"`) {
		t.Errorf("rotated file: %q", old)
	}
	if len(cur) != 1 || !strings.Contains(cur[0], `"c"`) {
		t.Errorf("new file: %q", cur)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&^0o022 != 0o644&^0o022 {
		t.Errorf("new file mode: %v, %v", st.Mode(), err)
	}
	if err := l.Reopen(); err == nil {
		t.Error("Reopen after Close succeeded")
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "access.log")
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reopen with the directory gone: %v, want an error naming %s", err, path)
	}
	l.Log(infoWithID("still-here"))
	l.Close()
	if got := readLines(t, filepath.Join(moved, "access.log")); len(got) != 1 {
		t.Errorf("old file has %q, want the line written after the failed Reopen", got)
	}
}

func TestAppendsToExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("existing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := New(config.AccessLog{Path: path, Format: "text", TextFormat: "%RESPONSE_CODE%"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(infoWithID("a"))
	l.Close()
	if got := readLines(t, path); strings.Join(got, "|") != "existing|200" {
		t.Errorf("file: %q", got)
	}
}

func TestBufferLimitDrops(t *testing.T) {
	var out bytes.Buffer
	l, err := New(config.AccessLog{Format: "text", TextFormat: "%REQ(X-REQUEST-ID)%"},
		Options{Stdout: &out, FlushInterval: time.Hour, BufferLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		l.Log(infoWithID("123456789")) // 10 bytes a line
	}
	if got := l.Dropped(); got != 40 {
		t.Errorf("Dropped() = %d, want 40 (100-byte buffer, 10-byte lines)", got)
	}
	l.Close()
	if got := strings.Count(out.String(), "\n"); got != 10 {
		t.Errorf("wrote %d lines, want 10", got)
	}
}

type failingWriter struct{ n int } // accepts n bytes, then fails

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= w.n {
		w.n -= len(p)
		return len(p), nil
	}
	n := w.n
	w.n = 0
	return n, errors.New("disk full")
}

func TestWriteErrorsAreCounted(t *testing.T) {
	tests := []struct {
		name    string
		accept  int
		dropped uint64
	}{
		{"nothing written", 0, 5},
		{"two lines and part of the third", 2*4 + 2, 3},
		{"everything", 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(config.AccessLog{Format: "text", TextFormat: "%REQ(X-REQUEST-ID)%"},
				Options{Stdout: &failingWriter{n: tt.accept}, FlushInterval: time.Hour, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				l.Log(infoWithID("abc")) // 4 bytes a line
			}
			err = l.Flush()
			if (err != nil) != (tt.dropped > 0) {
				t.Errorf("Flush() = %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "disk full") {
				t.Errorf("Flush() = %v, want the cause", err)
			}
			if got := l.Dropped(); got != tt.dropped {
				t.Errorf("Dropped() = %d, want %d", got, tt.dropped)
			}
			l.Close()
		})
	}
}

// blockingWriter blocks every write until released, like a stdout pipe
// that nobody reads.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestStuckWriterNeverBlocksLog(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	l, err := New(config.AccessLog{}, Options{Stdout: w, FlushInterval: time.Millisecond, BufferLimit: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		info := fullInfo()
		for range 5000 { // about 3 MB of lines against a 64 KiB limit
			l.Log(info)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Log blocked behind a stuck writer")
	}
	if l.Dropped() == 0 {
		t.Error("no lines dropped although the writer was stuck and the buffer bounded")
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	written := uint64(strings.Count(w.buf.String(), "\n"))
	if written+l.Dropped() != 5000 {
		t.Errorf("written %d + dropped %d != 5000 logged", written, l.Dropped())
	}
}

func TestConcurrentLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(config.AccessLog{Path: path}, Options{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, per = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			info := fullInfo()
			info.Attempts = g
			for range per {
				l.Log(info)
			}
		})
	}
	wg.Add(1)
	go func() { // rotate while writing: no line may be torn or lost
		defer wg.Done()
		for range 10 {
			if err := l.Reopen(); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != goroutines*per || l.Dropped() != 0 {
		t.Fatalf("%d lines, %d dropped; want %d, 0", len(lines), l.Dropped(), goroutines*per)
	}
	perAttempt := map[float64]int{}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("torn line %q: %v", line, err)
		}
		perAttempt[m["attempts"].(float64)]++
	}
	for g := range goroutines {
		if perAttempt[float64(g)] != per {
			t.Errorf("goroutine %d: %d lines, want %d", g, perAttempt[float64(g)], per)
		}
	}
}

func TestLogNil(t *testing.T) {
	l, err := New(config.AccessLog{}, Options{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(nil)
	if l.Dropped() != 0 {
		t.Errorf("Dropped() = %d", l.Dropped())
	}
	l.Close()
}
