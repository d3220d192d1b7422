package e2etest

import (
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// PortBlockFree reports whether the n loopback TCP ports from base, and
// the UDP ports at base+udpOffsets (a StatsD port, say), are free now.
func PortBlockFree(base, n int, udpOffsets ...int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for i := range n {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			return false
		}
		closers = append(closers, ln)
	}
	for _, off := range udpOffsets {
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+off)))
		if err != nil {
			return false
		}
		closers = append(closers, pc)
	}
	return true
}

// FreePortBlock returns the first of n loopback ports in a row that are
// free right now (with the UDP ports at udpOffsets), for a pipeline whose
// ports are given as one base (deploy/local/up.sh's UP_PORT_BASE). The block
// lies below Linux's ephemeral range (32768-60999 by default), so that the
// outgoing connections of tests running alongside cannot land in it: they
// once did, and a check that the block is free again after a pipeline
// stopped blamed the pipeline. Another process may still take a port
// before the pipeline binds it.
func FreePortBlock(t testing.TB, n int, udpOffsets ...int) int {
	t.Helper()
	const low, ephemeral = 20000, 32768
	for range 50 {
		base := low + rand.IntN(ephemeral-low-n)
		if PortBlockFree(base, n, udpOffsets...) {
			return base
		}
	}
	t.Fatal("found no block of free loopback ports in 50 tries")
	return 0
}
