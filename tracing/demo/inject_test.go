package demo

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseInjection(t *testing.T) {
	tests := []struct {
		query   string
		want    Injection
		wantErr string
	}{
		{"", Injection{ErrorCode: 503}, ""},
		{"delay=200ms&error_rate=0.1", Injection{Delay: 200 * time.Millisecond, ErrorRate: 0.1, ErrorCode: 503}, ""},
		{"error_rate=1&error_code=500", Injection{ErrorRate: 1, ErrorCode: 500}, ""},
		{"delay=0s", Injection{ErrorCode: 503}, ""},
		{"delay=200", Injection{}, `delay "200": want a duration`},
		{"delay=-1s", Injection{}, "between 0 and 30s"},
		{"delay=1h", Injection{}, "between 0 and 30s"},
		{"error_rate=1.5", Injection{}, `error_rate "1.5": want a number between 0 and 1`},
		{"error_rate=NaN", Injection{}, "error_rate"},
		{"error_code=200", Injection{}, `error code "200": want an HTTP status between 400 and 599`},
		{"error_code=abc", Injection{}, "error code"},
		{"latency=1s", Injection{}, `unknown parameter "latency"`},
		{"delay=1s&delay=2s", Injection{}, `parameter "delay" given 2 times`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseInjection(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseInjection(f *testing.F) {
	for _, s := range []string{"", "delay=200ms", "error_rate=0.5&error_code=502", "delay=1e9h", "error_rate=-0", "x=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		inj, err := ParseInjection(q)
		if err != nil {
			return
		}
		if inj.Delay < 0 || inj.Delay > MaxDelay || !(inj.ErrorRate >= 0 && inj.ErrorRate <= 1) || inj.ErrorCode < 400 || inj.ErrorCode > 599 {
			t.Fatalf("%q accepted out-of-bounds %+v", s, inj)
		}
	})
}

func TestParseHeaderFault(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name        string
		h           http.Header
		service     string
		wantDelay   time.Duration
		wantCode    int
		wantForward int // headers forwarded
		wantErr     string
	}{
		{"nothing", h(), "catalog", 0, 0, 0, ""},
		{"untargeted applies here, not forwarded", h(HeaderDelay, "50ms", HeaderFail, "503"), "frontend", 50 * time.Millisecond, 503, 0, ""},
		{"targeted elsewhere: forwarded only", h(HeaderFail, "503", HeaderFailAt, "inventory"), "catalog", 0, 0, 2, ""},
		{"targeted here", h(HeaderFail, "500", HeaderFailAt, "Catalog, inventory"), "catalog", 0, 500, 2, ""},
		{"delay targeted here", h(HeaderDelay, "1s", HeaderDelayAt, "inventory"), "inventory", time.Second, 0, 2, ""},
		{"bad delay names header", h(HeaderDelay, "soon"), "frontend", 0, 0, 0, "X-Demo-Delay: delay \"soon\""},
		{"bad code names header", h(HeaderFail, "99"), "frontend", 0, 0, 0, "X-Demo-Fail: error code \"99\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseHeaderFault(tt.h, tt.service)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || f.delay != tt.wantDelay || f.code != tt.wantCode || len(f.forward) != tt.wantForward {
				t.Fatalf("= %+v, %v", f, err)
			}
		})
	}
}
