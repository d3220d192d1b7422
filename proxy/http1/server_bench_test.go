package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
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
