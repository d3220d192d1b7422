package stream

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEnvoyStreamShape(t *testing.T) {
	s := Envoy(EnvoyOptions{Datagrams: 200, Seed: 7})
	if len(s.Datagrams) != 200 || s.TotalLines() != 2000 {
		t.Fatalf("%d datagrams, %d lines; want 200, 2000", len(s.Datagrams), s.TotalLines())
	}
	kinds := map[string]int{}
	for i, d := range s.Datagrams {
		lines := bytes.Split(d, []byte("\n"))
		if len(lines) != s.Lines[i] {
			t.Fatalf("datagram %d has %d lines, Lines says %d", i, len(lines), s.Lines[i])
		}
		if len(d) > 1432 {
			t.Errorf("datagram %d is %d bytes, more than fits a 1500-byte MTU", i, len(d))
		}
		for _, l := range lines {
			name, rest, ok := strings.Cut(string(l), ":")
			if !ok || !strings.HasPrefix(name, "envoy.") {
				t.Fatalf("bad line %q", l)
			}
			kinds[rest[strings.IndexByte(rest, '|'):]]++
		}
	}
	for _, k := range []string{"|c", "|ms", "|g"} {
		if kinds[k] == 0 {
			t.Errorf("no %s lines in %v", k, kinds)
		}
	}
	again := Envoy(EnvoyOptions{Datagrams: 200, Seed: 7})
	if !bytes.Equal(bytes.Join(s.Datagrams, nil), bytes.Join(again.Datagrams, nil)) {
		t.Error("same seed, different stream")
	}
}

// TestEnvoyTraceIDs checks the exemplar variant: the chosen share of timer
// lines carries a distinct, well-formed trace ID, no other line does, and
// without the sections the stream is the plain one of the same seed.
func TestEnvoyTraceIDs(t *testing.T) {
	plain := Envoy(EnvoyOptions{Datagrams: 500, Seed: 3})
	for _, frac := range []float64{1, 0.25} {
		traced := Envoy(EnvoyOptions{Datagrams: 500, Seed: 3, TraceIDs: frac})
		if len(traced.Datagrams) != len(plain.Datagrams) {
			t.Fatalf("TraceIDs %v: %d datagrams, want %d", frac, len(traced.Datagrams), len(plain.Datagrams))
		}
		seen := map[string]bool{}
		timers := 0
		for i, d := range traced.Datagrams {
			if len(d) > 1432 {
				t.Errorf("TraceIDs %v: datagram %d is %d bytes, more than fits a 1500-byte MTU", frac, i, len(d))
			}
			var stripped []string
			for _, l := range strings.Split(string(d), "\n") {
				base, id, has := strings.Cut(l, "|trace_id:")
				if strings.HasSuffix(base, "|ms") {
					timers++
				}
				if has {
					if !strings.HasSuffix(base, "|ms") {
						t.Fatalf("trace ID on a line that is not a timer: %q", l)
					}
					if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || strings.Trim(id, "0") == "" {
						t.Fatalf("malformed trace ID in %q", l)
					}
					if seen[id] {
						t.Fatalf("trace ID %s used twice", id)
					}
					seen[id] = true
				}
				stripped = append(stripped, base)
			}
			if got := strings.Join(stripped, "\n"); got != string(plain.Datagrams[i]) {
				t.Fatalf("TraceIDs %v: datagram %d without its trace IDs is\n%s\nwant the plain stream's\n%s", frac, i, got, plain.Datagrams[i])
			}
		}
		share := float64(len(seen)) / float64(timers)
		if share < frac-0.05 || share > frac+0.05 {
			t.Errorf("TraceIDs %v: %d of %d timer lines have a trace ID (%.2f)", frac, len(seen), timers, share)
		}
	}
}

func TestDistinctSeries(t *testing.T) {
	s := DistinctSeries(25, 10)
	if len(s.Datagrams) != 3 || s.TotalLines() != 25 || s.Lines[2] != 5 {
		t.Fatalf("datagrams=%d lines=%d last=%d", len(s.Datagrams), s.TotalLines(), s.Lines[2])
	}
	seen := map[string]bool{}
	for _, d := range s.Datagrams {
		for _, l := range strings.Split(string(d), "\n") {
			if seen[l] {
				t.Fatalf("duplicate line %q", l)
			}
			seen[l] = true
		}
	}
}

// TestSendCountsAndBounds sends to a loopback listener and checks that the
// reported counts are what arrived, that Lines bounds the replay, that the
// stream cycles from Offset, and that MaxDuration stops a slow replay.
func TestSendCountsAndBounds(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	s, err := Dial(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := DistinctSeries(30, 10) // 3 datagrams

	ctx := context.Background()
	res, err := s.Send(ctx, st, SendOptions{Rate: 10000, Lines: 50, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	// 50 lines round up to 5 whole datagrams: indexes 1, 2, 0, 1, 2.
	if res.Lines != 50 || res.Datagrams != 5 || res.Next != 0 {
		t.Fatalf("result %+v, want 50 lines, 5 datagrams, next 0", res)
	}
	buf := make([]byte, 2048)
	var got []string
	for range 5 {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		got = append(got, strings.SplitN(string(buf[:n]), ":", 2)[0])
	}
	want := []string{"envoy.cluster.svc10.upstream_rq_200", "envoy.cluster.svc20.upstream_rq_200", "envoy.cluster.svc0.upstream_rq_200", "envoy.cluster.svc10.upstream_rq_200", "envoy.cluster.svc20.upstream_rq_200"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", got, want)
	}

	// 100 lines/s for 1M lines would take hours: MaxDuration must stop it.
	start := time.Now()
	res, err = s.Send(ctx, st, SendOptions{Rate: 100, Lines: 1_000_000, MaxDuration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second || res.Lines >= 1_000_000 {
		t.Errorf("MaxDuration ignored: %v, %d lines", el, res.Lines)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Send(cctx, st, SendOptions{Lines: 10}); err == nil {
		t.Error("cancelled context: no error")
	}
}
