package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		name       string
		bodySize   int
		method     string
		path       string
		reqBody    string
		wantStatus int
		wantLen    int
	}{
		{"get default size", 128, http.MethodGet, "/", "", http.StatusOK, 128},
		{"get empty", 0, http.MethodGet, "/", "", http.StatusOK, 0},
		{"get odd size", 1000, http.MethodGet, "/", "", http.StatusOK, 1000},
		{"head has no body", 128, http.MethodHead, "/", "", http.StatusOK, 0},
		{"get large", 128, http.MethodGet, largePath, "", http.StatusOK, largeSize},
		{"post read, small answer", 128, http.MethodPost, largePath, strings.Repeat("x", 3<<20), http.StatusOK, 128},
		{"put refused", 128, http.MethodPut, "/", "", http.StatusMethodNotAllowed, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := newHandler(tc.bodySize)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			var body io.Reader
			if tc.reqBody != "" {
				body = strings.NewReader(tc.reqBody)
			}
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, body))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantLen >= 0 && rec.Body.Len() != tc.wantLen {
				t.Fatalf("body length = %d, want %d", rec.Body.Len(), tc.wantLen)
			}
			if tc.wantStatus == http.StatusOK && tc.bodySize >= 8 && tc.method == http.MethodGet &&
				!strings.HasPrefix(rec.Body.String(), "hopwatch") {
				t.Fatalf("body %q does not identify the upstream", rec.Body.String()[:8])
			}
		})
	}
}

func TestHandlerRejectsBadSize(t *testing.T) {
	for _, n := range []int{-1, 16<<20 + 1} {
		if _, err := newHandler(n); err == nil || !strings.Contains(err.Error(), "-body-size") {
			t.Errorf("newHandler(%d) error = %v, want one naming -body-size", n, err)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"[::1]:8080", true},
		{"localhost:80", true},
		{"0.0.0.0:80", false},
		{":80", false},
		{"10.0.0.1:80", false},
		{"127.0.0.1", false},
	}
	for _, tc := range tests {
		err := checkLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

// TestRunServesHTTP1AndH2C starts the real server on a free loopback port
// and talks to it with HTTP/1.1 and with h2c prior knowledge.
func TestRunServesHTTP1AndH2C(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", 64, true, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read announcement: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	for _, h2 := range []bool{false, true} {
		var p http.Protocols
		if h2 {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("h2=%v: GET: %v", h2, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantMajor := 1
		if h2 {
			wantMajor = 2
		}
		if resp.ProtoMajor != wantMajor || len(body) != 64 {
			t.Fatalf("h2=%v: proto %s, body %d bytes; want HTTP/%d and 64 bytes", h2, resp.Proto, len(body), wantMajor)
		}
		client.CloseIdleConnections()
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	pw.Close()
}

func BenchmarkHandler(b *testing.B) {
	h, err := newHandler(128)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
