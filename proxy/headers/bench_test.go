package headers

import (
	"net/http"
	"net/netip"
	"testing"
)

// typicalRequest is a browser-like header set with a few hop-by-hop headers.
func typicalRequest() http.Header {
	return http.Header{
		"Host":            {"api.example.com"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"},
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Connection":      {"keep-alive, X-Trace-Hop"},
		"Keep-Alive":      {"timeout=5"},
		"X-Trace-Hop":     {"1"},
		"Te":              {"trailers"},
		"Cookie":          {"session=abc; canary=1"},
		"X-Request-Id":    {"0f8fad5b-d9cb-469f-a165-70867728950e"},
	}
}

func BenchmarkRemoveHopByHop(b *testing.B) {
	for _, tc := range []struct {
		name string
		src  http.Header
	}{
		{"browser-request", typicalRequest()},
		// What a keep-alive upstream answers: nothing hop-by-hop.
		{"plain-response", http.Header{"Content-Length": {"128"}, "Content-Type": {"text/plain"}, "Date": {"Sun, 06 Dec 2026 06:40:00 GMT"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			h := make(http.Header, len(tc.src))
			for b.Loop() {
				clear(h)
				for k, v := range tc.src {
					h[k] = v
				}
				RemoveHopByHop(h)
			}
		})
	}
}

func BenchmarkApplyForwardedFor(b *testing.B) {
	peer := netip.MustParseAddr("10.1.2.3")
	b.Run("edge/no-xff", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ApplyForwardedFor("", peer, true, 0)
		}
	})
	b.Run("edge/xff", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ApplyForwardedFor("203.0.113.7, 198.51.100.2", peer, true, 1)
		}
	})
	b.Run("internal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ApplyForwardedFor("203.0.113.7, 10.0.0.9", peer, false, 0)
		}
	})
}
