package main

import (
	"math"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/bench/sink/stream"
)

func TestCountTimers(t *testing.T) {
	st := &stream.Stream{Datagrams: [][]byte{
		[]byte("a:1|ms|trace_id:4bf92f3577b34da6a3ce929d0e0e4736\nb:1|c\nc:2|ms"),
		[]byte("d:3|ms|#k:v|trace_id:00f067aa0ba902b700f067aa0ba902b7\ne:1|g"),
	}, Lines: []int{3, 2}}
	timers, traced := countTimers(st)
	if timers != 3 || traced != 2 {
		t.Fatalf("countTimers = %d timers, %d traced; want 3, 2", timers, traced)
	}
	plain, withIDs := exemplarStreams(1)[0].st, exemplarStreams(1)[1].st
	if pt, ptr := countTimers(plain); pt == 0 || ptr != 0 {
		t.Fatalf("plain stream: %d timers, %d traced; want some timers and no trace ID", pt, ptr)
	}
	if wt, wtr := countTimers(withIDs); wt == 0 || wtr != wt {
		t.Fatalf("stream with trace IDs at 1: %d timers, %d traced; want all traced", wt, wtr)
	}
	if d := meanLineBytes(withIDs) - meanLineBytes(plain); d < 5 || d > 42 {
		t.Fatalf("trace IDs add %.1f bytes per line on average; want between 5 and 42", d)
	}
}

func TestValidateExemplarFlags(t *testing.T) {
	for _, tc := range []struct {
		frac    float64
		rounds  int
		wantErr string
	}{
		{1, 2, ""}, {0.01, 1, ""}, {0, 2, "-trace-ids 0"}, {1.5, 2, "-trace-ids 1.5"}, {1, 0, "-exemplar-rounds 0"},
	} {
		err := validateExemplarFlags(config{traceIDs: tc.frac, exemplarRounds: tc.rounds})
		if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("trace-ids %v, rounds %d: err = %v, want %q", tc.frac, tc.rounds, err, tc.wantErr)
		}
	}
}

func TestRenderExemplarTable(t *testing.T) {
	round := func(lossless, cpu float64, rss int64, ex int) exemplarRound {
		return exemplarRound{result: result{lossless: lossless, cpuPerMillion: cpu}, rssAfterCPU: rss, exemplars: ex}
	}
	run := exemplarRun{
		rounds: [][2]exemplarRound{
			{round(400000, 2.0, 20<<20, 0), round(360000, 2.4, 21<<20, 900)},
			{round(500000, 2.2, 20<<20, 0), round(500000, 2.2, 22<<20, 910)},
		},
		cpuRate: 180000, bytesPerLine: [2]float64{48.5, 58.2}, traced: 4600, timers: 4600,
	}
	run.rounds[1][1].losslessBound = true
	got := renderExemplarTable(run)
	for _, want := range []string{
		"| highest lossless rate, lines/s (loss ≤ 0.1 %) | 450k | 430k | 0.90 1.00 | 0.95 | higher |",
		"| CPU seconds per million lines (at 180k lines/s) | 2.10 | 2.30 | 1.20 1.00 | 1.10 | lower |",
		"| RSS after the CPU run | 20 MiB | 22 MiB | 1.05 1.10 | 1.08 | lower |",
		"round 2 with trace IDs: those rates are lower bounds",
		"4600 of the stream's 4600 timer lines", "48.5 bytes plain, 58.2 with trace IDs", "900, 910 (per round",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	c := config{command: "make bench-sink", loadBefore: "9.00 8.00 7.00", traceIDs: 1, exemplarRounds: 2}
	sec := renderExemplarSection(c, got, 0)
	for _, want := range []string{exemplarsHeading + "\n", "statsd_exporter cannot be the peer", "100 % of its timer lines", "2 interleaved rounds, the plain stream first in odd rounds", got} {
		if !strings.Contains(sec, want) {
			t.Errorf("section lacks %q:\n%s", want, sec)
		}
	}
}

func TestMedianOf(t *testing.T) {
	xs := []float64{3, 1, 2, 10}
	if m := medianOf(xs); m != 2.5 || xs[0] != 3 {
		t.Fatalf("medianOf = %v (input now %v), want 2.5 and the input untouched", m, xs)
	}
	if !math.IsNaN(medianOf(nil)) {
		t.Fatal("medianOf(nil) is not NaN")
	}
}

func TestRoundOrderAlternates(t *testing.T) {
	if roundOrder(0) != [2]int{0, 1} || roundOrder(1) != [2]int{1, 0} || roundOrder(2) != [2]int{0, 1} {
		t.Fatalf("round orders %v %v %v, want plain first, then traced first, alternating", roundOrder(0), roundOrder(1), roundOrder(2))
	}
}
