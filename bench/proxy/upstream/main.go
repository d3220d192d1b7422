// Command upstream is the origin server behind every proxy in the proxy
// benchmark: it answers GET and HEAD with a fixed small body as fast as
// net/http allows, so that the proxy, not the origin, dominates the cost.
//
// It speaks HTTP/1.1 with keep-alive and, with -h2c, also HTTP/2 with prior
// knowledge on the same port. Once it is listening it prints one line,
// "listening on HOST:PORT", to stdout; with -addr 127.0.0.1:0 that line is
// how the harness learns the port the kernel chose.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback host:port to listen on (port 0 picks a free one)")
	bodySize := flag.Int("body-size", 128, "size in bytes of the response body")
	h2c := flag.Bool("h2c", false, "also accept HTTP/2 with prior knowledge (h2c)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *bodySize, *h2c, os.Stdout); err != nil {
		slog.Error("upstream failed", "err", err)
		os.Exit(1)
	}
}

// run listens on addr, announces the bound address on out and serves until
// ctx is done.
func run(ctx context.Context, addr string, bodySize int, h2c bool, out io.Writer) error {
	if err := checkLoopback(addr); err != nil {
		return err
	}
	h, err := newHandler(bodySize)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := newServer(h, h2c)
	if _, err := fmt.Fprintf(out, "listening on %s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("announce address: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// checkLoopback refuses non-loopback addresses: the benchmark must never
// send load anywhere but this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: want host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: host must be a loopback address such as 127.0.0.1 or ::1", addr)
	}
	return nil
}

// newServer builds the http.Server. Timeouts are generous because the
// clients are proxies that keep connections open between requests.
func newServer(h http.Handler, h2c bool) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	srv.Protocols = &p
	return srv
}

// newHandler returns the handler that serves a body of exactly bodySize
// bytes. The body, its length header and the header map values are built
// once so that a request allocates as little as net/http lets it.
func newHandler(bodySize int) (http.Handler, error) {
	if bodySize < 0 || bodySize > 16<<20 {
		return nil, fmt.Errorf("-body-size %d: want 0 to %d bytes", bodySize, 16<<20)
	}
	// A readable, recognisable body lets the harness check that a proxy
	// really forwarded to this server rather than answering by itself.
	body := bytes.Repeat([]byte("hopwatch-upstream."), bodySize/18+1)[:bodySize]
	contentLength := []string{strconv.Itoa(bodySize)}
	contentType := []string{"text/plain; charset=utf-8"}
	allow := []string{"GET, HEAD"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hdr["Allow"] = allow
			http.Error(w, "upstream: only GET and HEAD are served", http.StatusMethodNotAllowed)
			return
		}
		hdr["Content-Type"] = contentType
		hdr["Content-Length"] = contentLength
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	}), nil
}
