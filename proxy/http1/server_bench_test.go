package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkServeKeepAlive measures keep-alive requests on 16 loopback
// connections, served by hopwatch's Server and, in the same run, by
// net/http's, with the same handler (a 128-byte body with its length) and
// the same client (raw writes, http.ReadResponse). ns/op and allocs/op
// include the client, which is identical for both; the difference is the
// server loop's.
func BenchmarkServeKeepAlive(b *testing.B) {
	body := strings.Repeat("x", 128)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Content-Length"] = []string{"128"}
		_, _ = io.WriteString(w, body)
	})
	for _, tc := range []struct {
		name  string
		serve func(ln net.Listener)
	}{
		{"hopwatch", func(ln net.Listener) {
			srv := &Server{Handler: handler}
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go srv.ServeConn(c, nil)
			}
		}},
		{"net_http", func(ln net.Listener) {
			_ = (&http.Server{Handler: handler}).Serve(ln)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go tc.serve(ln)
			req := []byte("GET /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\n\r\n")
			b.ReportAllocs()
			// 16 connections on 2 cores keep the server busy, so ns/op is
			// CPU per request rather than one connection's round trip.
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					res, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					n, err := io.Copy(io.Discard, res.Body)
					if err != nil && !errors.Is(err, io.EOF) || n != 128 || res.StatusCode != http.StatusOK {
						b.Errorf("status %d, %d body bytes, %v", res.StatusCode, n, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkIdleConnMemory measures what an idle keep-alive connection
// costs the process: 1000 loopback connections each send one request, to a
// handler that grows its goroutine's stack as a proxy's does, and then
// idle for longer than bufferReleaseDelay. heap-B/conn and stack-B/conn
// are the growth of the Go heap in use and of goroutine stacks, after
// garbage collection, per connection; both include the client's side of
// each connection (a net.Conn, no goroutine).
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 1000
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = []string{"2"}
		_, _ = io.WriteString(w, growStack(24))
	}), IdleTimeout: time.Hour}
	addr := serveLoopback(b, srv)
	req := []byte("GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
	var heap, stack float64
	for b.Loop() {
		before := memInUse()
		cs := make([]net.Conn, 0, conns)
		for range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
			var resp [256]byte
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			if n, err := c.Read(resp[:]); err != nil || !strings.HasSuffix(string(resp[:n]), "\r\n\r\nok") {
				b.Fatalf("response %q, %v", resp[:n], err)
			}
		}
		time.Sleep(2 * bufferReleaseDelay)
		after := memInUse()
		heap += float64(after.HeapInuse-before.HeapInuse) / conns
		stack += float64(after.StackInuse-before.StackInuse) / conns
		for _, c := range cs {
			_ = c.Close()
		}
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/conn")
	b.ReportMetric(stack/float64(b.N), "stack-B/conn")
}

// growStack uses about depth × 300 bytes of stack and returns "ok".
//
//go:noinline
func growStack(depth int) string {
	var pad [256]byte
	pad[depth%len(pad)] = 1
	if depth == 0 {
		return "ok"
	}
	return growStack(depth - 1)[:2-int(pad[0]*0)]
}

// memInUse returns the runtime's memory statistics after garbage
// collection; two cycles let stacks shrink and pooled buffers go.
func memInUse() runtime.MemStats {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms
}
