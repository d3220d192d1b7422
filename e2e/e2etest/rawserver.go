package e2etest

import (
	"net"
	"testing"
	"time"
)

// RawServer accepts connections on loopback and hands each to serve on its
// own goroutine, with a 10 s deadline, closing it when serve returns; for
// tests that must see, or send, exact bytes. It stops when the test ends.
func RawServer(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c)
	})
}

// Serve accepts connections on a new loopback listener and hands each to
// handle on its own goroutine, which owns the connection, until the test
// ends. It returns the listener's address.
func Serve(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
