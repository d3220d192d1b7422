package accesslog

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// fullInfo returns an Info with every field set. The start time is in a
// non-UTC zone so that tests see the conversion to UTC.
func fullInfo() *streaminfo.Info {
	var flags streaminfo.Flags
	flags.Set(streaminfo.NoHealthyUpstream)
	flags.Set(streaminfo.UpstreamRetryLimitExceeded)
	return &streaminfo.Info{
		StartTime:               time.Date(2024, 3, 5, 8, 8, 9, 123456789, time.FixedZone("CET", 3600)),
		Duration:                1234567 * time.Microsecond,
		UpstreamServiceTime:     1100*time.Millisecond + 999*time.Microsecond,
		HasUpstreamServiceTime:  true,
		Method:                  "GET",
		Path:                    "/api/v1/items?id=7",
		Protocol:                "HTTP/1.1",
		Authority:               "example.com:8080",
		UserAgent:               "curl/8.5.0",
		XForwardedFor:           "203.0.113.7, 10.0.0.1",
		RequestID:               "3b241101-e2bb-4255-8caf-4136c566a962",
		DownstreamRemoteAddress: "10.0.0.1:54321",
		ResponseCode:            503,
		ResponseFlags:           flags,
		ResponseCodeDetails:     "no_healthy_upstream",
		BytesReceived:           42,
		BytesSent:               91,
		RouteName:               "api",
		VirtualHost:             "main",
		UpstreamCluster:         "backend",
		UpstreamHost:            "10.1.2.3:8080",
		Attempts:                3,
		RequestHeaders: http.Header{
			"Accept":     {"application/json", "text/plain"},
			"X-Empty":    {""},
			"User-Agent": {"should-not-be-used"},
		},
		ResponseHeaders: http.Header{
			"Content-Type": {"application/json"},
		},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		SpanID:  "00f067aa0ba902b7",
	}
}

func TestMulti(t *testing.T) {
	var a, b recorder
	m := Multi{&a, &b}
	info := fullInfo()
	m.Log(info)
	m.Log(info)
	if a.n != 2 || b.n != 2 {
		t.Fatalf("Multi delivered %d and %d calls, want 2 each", a.n, b.n)
	}
	if a.last != info || b.last != info {
		t.Fatal("Multi passed a different Info")
	}
	Multi(nil).Log(info) // an empty Multi is a valid no-op
}

type recorder struct {
	mu   sync.Mutex
	n    int
	last *streaminfo.Info
}

func (r *recorder) Log(info *streaminfo.Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.last = info
}
