// Package stream pre-generates StatsD datagram streams for the sink benchmark
// and replays them over UDP at a paced rate, bounded in lines and time.
//
// Generation happens before timing starts, so the sender's per-datagram cost
// is one slot in a sendmmsg batch: the load generator shares the machine's
// cores with the receiver under test and must stay cheap.
package stream

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Stream is a pre-generated sequence of datagrams.
type Stream struct {
	// Datagrams are sent in order, cycling when more lines are wanted.
	Datagrams [][]byte
	// Lines[i] is the number of StatsD lines in Datagrams[i].
	Lines []int
}

// TotalLines returns the number of lines in one pass over the stream.
func (s *Stream) TotalLines() int {
	n := 0
	for _, l := range s.Lines {
		n += l
	}
	return n
}

func (s *Stream) add(lines [][]byte) {
	s.Datagrams = append(s.Datagrams, bytes.Join(lines, []byte("\n")))
	s.Lines = append(s.Lines, len(lines))
}

// EnvoyOptions shapes the Envoy-style stream.
type EnvoyOptions struct {
	// Clusters is the number of upstream clusters (default 50).
	Clusters int
	// LinesPerDatagram is how many lines each datagram holds (default 10,
	// what Envoy's and most clients' StatsD sinks batch to stay under a
	// 1500-byte MTU).
	LinesPerDatagram int
	// Datagrams is the number of distinct datagrams (default 20000); the
	// sender cycles through them.
	Datagrams int
	// Seed makes the stream reproducible.
	Seed uint64
	// TraceIDs is the fraction (0 to 1) of timer lines that end in
	// |trace_id:<32 hex>, each with an ID of its own, as hopwatch-proxy's
	// StatsD sink writes them with exemplars on. The IDs come from a
	// generator of their own, so that every line is otherwise the same as
	// in the stream with TraceIDs 0 and the same Seed.
	TraceIDs float64
}

var responseCodes = [...]string{"200", "200", "200", "200", "200", "201", "204", "301", "404", "500", "503"}

var httpPrefixes = [...]string{"ingress_http", "egress_http", "admin"}

// Envoy generates a stream shaped like what Envoy's (and hopwatch-proxy's)
// StatsD sink emits: per-cluster response codes and classes, request time
// timers, per-connection-manager downstream stats, and gauges.
func Envoy(o EnvoyOptions) *Stream {
	if o.Clusters <= 0 {
		o.Clusters = 50
	}
	if o.LinesPerDatagram <= 0 {
		o.LinesPerDatagram = 10
	}
	if o.Datagrams <= 0 {
		o.Datagrams = 20000
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	ids := rand.New(rand.NewPCG(o.Seed, 0x7ace))
	clusters := make([]string, o.Clusters)
	for i := range clusters {
		clusters[i] = "service_" + strconv.Itoa(i)
	}
	s := &Stream{}
	lines := make([][]byte, 0, o.LinesPerDatagram)
	for range o.Datagrams {
		lines = lines[:0]
		for range o.LinesPerDatagram {
			l := envoyLine(rng, clusters)
			if o.TraceIDs > 0 && bytes.HasSuffix(l, []byte("|ms")) && ids.Float64() < o.TraceIDs {
				l = appendTraceID(l, ids)
			}
			lines = append(lines, l)
		}
		s.add(lines)
	}
	return s
}

func envoyLine(rng *rand.Rand, clusters []string) []byte {
	c := clusters[rng.IntN(len(clusters))]
	p := httpPrefixes[rng.IntN(len(httpPrefixes))]
	code := responseCodes[rng.IntN(len(responseCodes))]
	var b []byte
	switch r := rng.IntN(100); {
	case r < 35:
		b = fmt.Appendf(b, "envoy.cluster.%s.upstream_rq_%s:1|c", c, code)
	case r < 50:
		b = fmt.Appendf(b, "envoy.cluster.%s.upstream_rq_%cxx:1|c", c, code[0])
	case r < 55:
		b = fmt.Appendf(b, "envoy.cluster.%s.upstream_rq_total:1|c", c)
	case r < 73:
		b = fmt.Appendf(b, "envoy.cluster.%s.upstream_rq_time:%d|ms", c, 1+rng.IntN(400))
	case r < 83:
		b = fmt.Appendf(b, "envoy.http.%s.downstream_rq_%cxx:1|c", p, code[0])
	case r < 88:
		b = fmt.Appendf(b, "envoy.http.%s.downstream_rq_time:%d|ms", p, 1+rng.IntN(500))
	case r < 93:
		b = fmt.Appendf(b, "envoy.cluster.%s.upstream_cx_active:%d|g", c, rng.IntN(64))
	case r < 97:
		b = fmt.Appendf(b, "envoy.cluster.%s.membership_healthy:%d|g", c, 1+rng.IntN(8))
	default:
		b = fmt.Appendf(b, "envoy.listener.0.0.0.0_%d.downstream_cx_total:1|c", 10000+rng.IntN(4))
	}
	return b
}

// appendTraceID appends a |trace_id: section with a random W3C trace ID:
// 32 lowercase hex digits, not all zero.
func appendTraceID(line []byte, rng *rand.Rand) []byte {
	hi, lo := rng.Uint64(), rng.Uint64()
	if hi == 0 && lo == 0 {
		lo = 1
	}
	return fmt.Appendf(line, "|trace_id:%016x%016x", hi, lo)
}

// DistinctSeries generates n lines that each create a different series under
// the benchmark mapping: one counter per synthetic cluster,
// envoy.cluster.svc<i>.upstream_rq_200:1|c.
func DistinctSeries(n, linesPerDatagram int) *Stream {
	if linesPerDatagram <= 0 {
		linesPerDatagram = 10
	}
	s := &Stream{}
	lines := make([][]byte, 0, linesPerDatagram)
	for i := range n {
		lines = append(lines, fmt.Appendf(nil, "envoy.cluster.svc%d.upstream_rq_200:1|c", i))
		if len(lines) == linesPerDatagram || i == n-1 {
			s.add(lines)
			lines = lines[:0]
		}
	}
	return s
}
