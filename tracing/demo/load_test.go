package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.Header.Get("X-Demo-Fail") != "503" {
			t.Errorf("header not sent")
		}
		if n%2 == 0 {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	res, err := Load(context.Background(), LoadConfig{Target: srv.URL, Rate: 100, Duration: 300 * time.Millisecond,
		Header: http.Header{"X-Demo-Fail": {"503"}}})
	if err != nil {
		t.Fatal(err)
	}
	limit := 100*0.3 + 1
	if res.Sent == 0 || float64(res.Sent+res.Skipped) > limit || int64(res.Sent) != hits.Load() ||
		res.Status[200]+res.Status[503] != res.Sent || res.Errors != 0 {
		t.Fatalf("result %s, server saw %d (limit %v)", res, hits.Load(), limit)
	}
	if s := res.String(); !strings.Contains(s, " 200=") || !strings.Contains(s, " 503=") {
		t.Fatalf("String() = %q", s)
	}
}

func TestLoadCountsErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	res, err := Load(context.Background(), LoadConfig{Target: url, Rate: 50, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Errors != res.Sent {
		t.Fatalf("result %s", res)
	}
}

func TestLoadValidate(t *testing.T) {
	tests := []struct {
		cfg     LoadConfig
		wantErr string
	}{
		{LoadConfig{Target: "localhost:1", Rate: 1, Duration: time.Second}, "target"},
		{LoadConfig{Target: "http://x", Rate: 0, Duration: time.Second}, "rate 0"},
		{LoadConfig{Target: "http://x", Rate: 1e6, Duration: time.Second}, "at most 10000"},
		{LoadConfig{Target: "http://x", Rate: 1, Duration: 0}, "duration 0s"},
		{LoadConfig{Target: "http://x", Rate: 1, Duration: 48 * time.Hour}, "duration 48h"},
		{LoadConfig{Target: "http://x", Rate: 1, Duration: time.Second, Concurrency: 5000}, "concurrency 5000"},
	}
	for _, tt := range tests {
		_, err := Load(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v: error %v, want containing %q", tt.cfg, err, tt.wantErr)
		}
	}
}
