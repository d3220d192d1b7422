package main

import (
	"bytes"
	"fmt"
	"net"
	"sync/atomic"
)

// statsdDrain is the StatsD server that hopwatch-proxy with stats on sends
// to during the benchmark: a UDP socket on 127.0.0.1 that reads and counts
// datagrams and does nothing else, so that the row measures the proxy's
// cost of producing and sending stats, not a sink's cost of parsing them.
type statsdDrain struct {
	pc        net.PacketConn
	datagrams atomic.Int64
	bytes     atomic.Int64
	lines     atomic.Int64
	done      chan struct{}
}

// startStatsdDrain binds a loopback UDP port and starts reading.
func startStatsdDrain() (*statsdDrain, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("statsd drain: %w", err)
	}
	// A larger buffer keeps the kernel from dropping datagrams while the
	// reader waits for a CPU; drops would hide part of the stats traffic.
	_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	d := &statsdDrain{pc: pc, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d.datagrams.Add(1)
			d.bytes.Add(int64(n))
			d.lines.Add(countStatsdLines(buf[:n]))
		}
	}()
	return d, nil
}

// addr is the host:port to put in stats_sinks.
func (d *statsdDrain) addr() string { return d.pc.LocalAddr().String() }

// take returns the datagrams, bytes and StatsD lines received since the
// last call.
func (d *statsdDrain) take() (datagrams, bytes, lines int64) {
	return d.datagrams.Swap(0), d.bytes.Swap(0), d.lines.Swap(0)
}

// countStatsdLines counts the metric lines in one datagram: one per
// newline, plus an unterminated last line.
func countStatsdLines(b []byte) int64 {
	n := int64(bytes.Count(b, []byte{'\n'}))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// close stops the reader.
func (d *statsdDrain) close() {
	_ = d.pc.Close()
	<-d.done
}

// freeLoopbackUDPAddr asks the kernel for a free UDP port on 127.0.0.1, for
// the statsd-sink; like freeLoopbackAddr, another process could take it
// first, and the sink then fails to start with an error naming the port.
func freeLoopbackUDPAddr() (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback UDP port: %w", err)
	}
	addr := pc.LocalAddr().String()
	if err := pc.Close(); err != nil {
		return "", fmt.Errorf("release UDP port %s: %w", addr, err)
	}
	return addr, nil
}
