package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWrkFixtures(t *testing.T) {
	tests := []struct {
		file string
		want wrkResult
	}{
		{"wrk-ok.txt", wrkResult{
			Requests: 12247, Elapsed: 1110 * time.Millisecond, RPS: 11066.20,
			P50: 4680 * time.Microsecond, P75: 10600 * time.Microsecond,
			P90: 25430 * time.Microsecond, P99: 88900 * time.Microsecond,
		}},
		{"wrk-submillisecond.txt", wrkResult{
			Requests: 18727, Elapsed: 1050 * time.Millisecond, RPS: 17801.74,
			P50: 224 * time.Microsecond, P75: 1630 * time.Microsecond,
			P90: 6230 * time.Microsecond, P99: 41 * time.Millisecond,
		}},
		{"wrk-errors.txt", wrkResult{
			Requests: 200, Elapsed: 10010 * time.Millisecond, RPS: 19.98,
			P50: 1480 * time.Millisecond, P75: 1700 * time.Millisecond,
			P90: 1900 * time.Millisecond, P99: 1990 * time.Millisecond,
			Non2xx3xx: 150, SocketErrors: 55,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			out, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(out)
			if err != nil {
				t.Fatalf("parseWrk: %v", err)
			}
			if got != tc.want {
				t.Fatalf("parseWrk =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	ok, err := os.ReadFile(filepath.Join("testdata", "wrk-ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	refused, err := os.ReadFile(filepath.Join("testdata", "wrk-refused.txt"))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		if !strings.Contains(string(ok), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return []byte(strings.Replace(string(ok), old, new, 1))
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, `no "Requests/sec:"`},
		{"connection refused", refused, `no "Requests/sec:"`},
		{"no --latency", replace("  Latency Distribution\n", ""), "latency 50% (was --latency passed?)"},
		{"bad rps", replace("Requests/sec:  11066.20", "Requests/sec:  lots"), "line 12"},
		{"negative rps", replace("Requests/sec:  11066.20", "Requests/sec:  -1"), "not a non-negative number"},
		{"nan rps", replace("Requests/sec:  11066.20", "Requests/sec:  NaN"), "not a non-negative number"},
		{"bad unit", replace("99%   88.90ms", "99%   88.90d"), "want a number followed by us, ms, s, m or h"},
		{"bad latency number", replace("50%    4.68ms", "50%    x.yms"), `latency 50%`},
		{"huge latency", replace("99%   88.90ms", "99%   1e300h"), "longer than"},
		{"extra field", replace("75%   10.60ms", "75%   10.60ms extra"), "line 8"},
		{"bad request count", replace("12247 requests in", "many requests in"), "request count"},
		{"bad elapsed", replace("in 1.11s,", "in soon,"), "elapsed time"},
		{"bad socket errors", replace("Requests/sec:", "  Socket errors: connect x\nRequests/sec:"), `socket error item "connect x"`},
		{"bad non-2xx", replace("Requests/sec:", "  Non-2xx or 3xx responses: -4\nRequests/sec:"), "count is not a non-negative integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWrk(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseWrk error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"812.00us", 812 * time.Microsecond},
		{"1.23ms", 1230 * time.Microsecond},
		{"10.00s", 10 * time.Second},
		{"2.00m", 2 * time.Minute},
		{"1.00h", time.Hour},
		{"0.00us", 0},
	}
	for _, tc := range tests {
		got, err := parseWrkDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ms", "1.2", "-1ms", "1.2 ms", "Infs", "1.2ns"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) succeeded, want an error", bad)
		}
	}
}

// FuzzParseWrk checks that no input makes the parser panic, and that what
// it accepts is sane.
func FuzzParseWrk(f *testing.F) {
	for _, name := range []string{"wrk-ok.txt", "wrk-submillisecond.txt", "wrk-errors.txt", "wrk-refused.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseWrk(in)
		if err != nil {
			return
		}
		if r.RPS < 0 || r.Requests < 0 || r.P50 < 0 || r.P99 < 0 || r.Elapsed < 0 || r.errors() < 0 {
			t.Fatalf("accepted negative values: %+v", r)
		}
	})
}

func BenchmarkParseWrk(b *testing.B) {
	out, err := os.ReadFile(filepath.Join("testdata", "wrk-ok.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseWrk(out); err != nil {
			b.Fatal(err)
		}
	}
}
