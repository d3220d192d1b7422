package stats

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestGoldenDatagrams runs the scripted traffic and checks the exact
// datagrams that reach a real UDP socket, for both sink formats and both
// histogram modes, across two flushes (the second has no traffic: only
// gauges are resent).
func TestGoldenDatagrams(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sink    SinkConfig
		traffic func(*Store)
	}{
		{"statsd_timer", SinkConfig{Type: SinkStatsD}, scriptedTraffic},
		{"dogstatsd_timer", SinkConfig{Type: SinkDogStatsD}, scriptedTraffic},
		{"statsd_compact", SinkConfig{Type: SinkStatsD, Histograms: HistogramsCompact}, scriptedTraffic},
		{"dogstatsd_compact", SinkConfig{Type: SinkDogStatsD, Histograms: HistogramsCompact}, scriptedTraffic},
		// Sampled and unsampled requests, to a sink with and without
		// exemplars: only the first gets trace_id sections.
		{"statsd_timer_exemplars", SinkConfig{Type: SinkStatsD, Exemplars: true}, tracedTraffic},
		{"dogstatsd_timer_exemplars", SinkConfig{Type: SinkDogStatsD, Exemplars: true}, tracedTraffic},
		{"dogstatsd_timer_traced_no_exemplars", SinkConfig{Type: SinkDogStatsD}, tracedTraffic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUDPServer(t)
			s := newTestStore(t, Config{})
			tc.sink.Address = u.addr()
			f := newTestFlusher(t, s, tc.sink)
			tc.traffic(s)
			var b strings.Builder
			for i := range 2 {
				for _, d := range flushAndRead(t, f, u) {
					if len(d) > DefaultMaxBytesPerDatagram {
						t.Errorf("datagram of %d bytes exceeds %d", len(d), DefaultMaxBytesPerDatagram)
					}
					b.WriteString("--- flush ")
					b.WriteString(string(rune('1' + i)))
					b.WriteString(" datagram\n")
					b.WriteString(d)
					b.WriteString("\n")
				}
			}
			golden(t, tc.name+".txt", b.String())
		})
	}
}
