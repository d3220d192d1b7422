package router

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestShadowHost(t *testing.T) {
	// Envoy's shadowAppendedHost (source/common/router/shadow_writer_impl.cc).
	tests := []struct{ in, want string }{
		{"cluster.example.com", "cluster.example.com-shadow"},
		{"cluster.example.com:8080", "cluster.example.com-shadow:8080"},
		{"127.0.0.1:10000", "127.0.0.1-shadow:10000"},
		{"[::1]:80", "[::1]-shadow:80"},
		{"[::1]", "[::1]-shadow"},
		{"::1", "::1-shadow"},
		{"a:", "a-shadow:"},
		{"localhost", "localhost-shadow"},
	}
	for _, tt := range tests {
		if got := ShadowHost(tt.in); got != tt.want {
			t.Errorf("ShadowHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestShadowLimit(t *testing.T) {
	l := &ShadowLimit{Max: 2}
	for i := range 2 {
		if !l.acquire() {
			t.Fatalf("shadow %d of 2 refused", i+1)
		}
	}
	if l.acquire() {
		t.Fatal("a third shadow must be refused at Max 2")
	}
	l.release()
	if !l.acquire() || l.InFlight() != 2 {
		t.Fatalf("after a release one more is admitted; in flight = %d", l.InFlight())
	}
	var d ShadowLimit
	for i := range DefaultMaxShadowsInFlight {
		if !d.acquire() {
			t.Fatalf("the zero value refused shadow %d of %d", i+1, DefaultMaxShadowsInFlight)
		}
	}
	if d.acquire() {
		t.Fatal("the zero value admitted more than DefaultMaxShadowsInFlight")
	}
}

// teeResult records what a shadowTee reported.
type teeResult struct {
	done      [][]byte
	abandoned int
}

func readTee(t *testing.T, src io.Reader, want int64, limit int) (primary []byte, r *teeResult) {
	t.Helper()
	r = &teeResult{}
	tee := newShadowTee(io.NopCloser(src), want, limit,
		func(b []byte) { r.done = append(r.done, b) },
		func() { r.abandoned++ })
	primary, err := io.ReadAll(tee)
	if err != nil {
		t.Fatalf("primary read: %v", err)
	}
	// Reading on after the end must not report again.
	if n, err := tee.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after EOF = %d, %v", n, err)
	}
	return primary, r
}

func TestShadowTeeBounds(t *testing.T) {
	body := strings.Repeat("0123456789", 100) // 1000 bytes
	tests := []struct {
		name      string
		src       func() io.Reader
		want      int64
		limit     int
		done      bool
		abandoned int
	}{
		{"fits, unknown length", func() io.Reader { return strings.NewReader(body) }, -1, 4096, true, 0},
		{"exactly the limit", func() io.Reader { return strings.NewReader(body) }, -1, 1000, true, 0},
		{"one byte over", func() io.Reader { return strings.NewReader(body) }, -1, 999, false, 1},
		{"far over, tiny reads", func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) }, -1, 10, false, 1},
		{"declared length", func() io.Reader { return strings.NewReader(body) }, 1000, 1000, true, 0},
		{"half reads", func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) }, 1000, 2000, true, 0},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(strings.NewReader(body)) }, -1, 1000, true, 0},
		{"limit 0", func() io.Reader { return strings.NewReader(body) }, -1, 0, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary, r := readTee(t, tt.src(), tt.want, tt.limit)
			if string(primary) != body {
				t.Fatalf("the primary read %d bytes, not the body unchanged", len(primary))
			}
			if r.abandoned != tt.abandoned {
				t.Errorf("abandoned %d times, want %d", r.abandoned, tt.abandoned)
			}
			switch {
			case tt.done && len(r.done) != 1:
				t.Fatalf("done called %d times, want once", len(r.done))
			case tt.done && string(r.done[0]) != body:
				t.Errorf("the shadow's copy differs from the body (%d bytes)", len(r.done[0]))
			case tt.done && cap(r.done[0]) > max(tt.limit, 4096):
				t.Errorf("the copy's buffer grew to %d bytes, past the limit %d", cap(r.done[0]), tt.limit)
			case !tt.done && len(r.done) != 0:
				t.Errorf("done called for an abandoned body")
			}
		})
	}
}

// TestShadowTeeDeclaredLengthWithoutEOF: the copy is handed over once the
// declared length is read, even if the reader never reports EOF (a
// transport may stop reading there).
func TestShadowTeeDeclaredLengthWithoutEOF(t *testing.T) {
	var got []byte
	tee := newShadowTee(io.NopCloser(strings.NewReader("hello world")), 5, 100, func(b []byte) { got = b }, func() { t.Error("abandoned") })
	if _, err := io.ReadFull(tee, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Fatalf("copy = %q, want the declared 5 bytes", got)
	}
}

// TestShadowTeeError: a body that fails (the client went away) is never
// handed to the shadows, and the error reaches the primary unchanged.
func TestShadowTeeError(t *testing.T) {
	boom := errors.New("client reset")
	src := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom))
	tee := newShadowTee(io.NopCloser(src), -1, 100, func([]byte) { t.Error("done after an error") }, func() { t.Error("abandoned after an error") })
	b, err := io.ReadAll(tee)
	if !errors.Is(err, boom) || !bytes.Equal(b, []byte("partial")) {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}

	// A source that reports EOF after its error (a malformed chunk, then
	// whatever the next read finds) still never completes the copy: what
	// was read is not the body the client meant.
	steps := []error{nil, boom, io.EOF}
	seq := readerFunc(func(p []byte) (int, error) {
		err := steps[0]
		steps = steps[1:]
		if err == nil {
			return copy(p, "partial"), nil
		}
		return 0, err
	})
	tee = newShadowTee(io.NopCloser(seq), -1, 100, func([]byte) { t.Error("done after an error") }, func() { t.Error("abandoned after an error") })
	for range 3 {
		_, _ = tee.Read(make([]byte, 64))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// FuzzShadowHost: whatever the authority, the shadow host is it with
// "-shadow" inserted once, before the port when there is one.
func FuzzShadowHost(f *testing.F) {
	for _, s := range []string{"example.com", "example.com:80", "[::1]:80", "[::1]", "::1", "a:", ":80", "", "[", "]:", "x]:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got := ShadowHost(host)
		i := portStart(host)
		want := host + "-shadow"
		if i >= 0 {
			if host[i] != ':' || strings.ContainsAny(host[i+1:], ":]") {
				t.Fatalf("portStart(%q) = %d, not the start of a port", host, i)
			}
			want = host[:i] + "-shadow" + host[i:]
		}
		if got != want || len(got) != len(host)+len("-shadow") {
			t.Fatalf("ShadowHost(%q) = %q, want %q", host, got, want)
		}
	})
}
