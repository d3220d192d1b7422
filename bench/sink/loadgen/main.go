// Command loadgen replays a pre-generated StatsD datagram stream to a UDP
// address at a target rate, bounded in lines and time. It is the load
// generator of `make bench-sink`, usable on its own:
//
//	go run ./bench/sink/loadgen -addr 127.0.0.1:9125 -rate 200000 -lines 2000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/bench/sink/stream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9125", "UDP `host:port` to send to")
	rate := flag.Float64("rate", 100000, "target rate in lines per second; 0 sends as fast as possible")
	lines := flag.Int("lines", 1000000, "number of lines to send")
	maxDur := flag.Duration("duration", 30*time.Second, "stop after this long even if not all lines were sent")
	kind := flag.String("kind", "envoy", "stream: envoy (Envoy-style names, about 1k series) or distinct (one new series per line)")
	perDatagram := flag.Int("lines-per-datagram", 10, "StatsD lines per UDP datagram")
	traceIDs := flag.Float64("trace-ids", 0, "envoy stream: fraction (0 to 1) of timer lines that end in |trace_id:<32 hex>, as hopwatch-proxy writes them with exemplars on")
	flag.Parse()

	if *traceIDs < 0 || *traceIDs > 1 {
		fmt.Fprintf(os.Stderr, "loadgen: -trace-ids %v: want a fraction from 0 to 1\n", *traceIDs)
		os.Exit(2)
	}
	if err := run(*addr, *kind, *rate, *lines, *perDatagram, *traceIDs, *maxDur); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(addr, kind string, rate float64, lines, perDatagram int, traceIDs float64, maxDur time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var st *stream.Stream
	switch kind {
	case "envoy":
		st = stream.Envoy(stream.EnvoyOptions{LinesPerDatagram: perDatagram, Seed: 1, TraceIDs: traceIDs})
	case "distinct":
		st = stream.DistinctSeries(lines, perDatagram)
	default:
		return fmt.Errorf("-kind %q: want envoy or distinct", kind)
	}
	s, err := stream.Dial(addr)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.Send(ctx, st, stream.SendOptions{Rate: rate, Lines: lines, MaxDuration: maxDur})
	fmt.Printf("sent %d lines in %d datagrams in %v (%.0f lines/s), %d refused\n",
		res.Lines, res.Datagrams, res.Elapsed.Round(time.Millisecond), res.Rate(), res.SendErrors)
	return err
}
