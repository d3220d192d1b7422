// Command upstream is the origin server behind every proxy in the proxy
// benchmark: it answers GET and HEAD with a fixed small body as fast as
// net/http allows, so that the proxy, not the origin, dominates the cost.
// For the large-body benchmark it also answers GET /large with a 1 MiB body
// and POST (any path) by reading the whole request body and answering with
// the small body. With -grpc it serves gRPC instead (grpc.go).
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
	grpcHealth := flag.Bool("grpc", false, "serve grpc.health.v1.Health over HTTP/2 with prior knowledge instead of HTTP")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *grpcHealth {
		err = runGRPC(ctx, *addr, os.Stdout)
	} else {
		err = run(ctx, *addr, *bodySize, *h2c, os.Stdout)
	}
	if err != nil {
		slog.Error("upstream failed", "err", err)
		os.Exit(1)
	}
}

// run listens on addr, announces the bound address on out and serves until
// ctx is done.
func run(ctx context.Context, addr string, bodySize int, h2c bool, out io.Writer) error {
	h, err := newHandler(bodySize)
	if err != nil {
		return err
	}
	ln, err := listenAndAnnounce(addr, out)
	if err != nil {
		return err
	}
	srv := newServer(h, h2c)
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

// listenAndAnnounce listens on addr, a loopback address, and prints
// "listening on HOST:PORT" to out.
func listenAndAnnounce(addr string, out io.Writer) (net.Listener, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if _, err := fmt.Fprintf(out, "listening on %s\n", ln.Addr()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("announce address: %w", err)
	}
	return ln, nil
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

// largePath is the path whose GET answer is largeSize bytes, whatever
// -body-size says: the large-body benchmark's response.
const (
	largePath = "/large"
	largeSize = 1 << 20
)

// newHandler returns the handler that serves a body of exactly bodySize
// bytes (largeSize on largePath). The body, its length header and the header map values are built
// once so that a request allocates as little as net/http lets it.
func newHandler(bodySize int) (http.Handler, error) {
	if bodySize < 0 || bodySize > 16<<20 {
		return nil, fmt.Errorf("-body-size %d: want 0 to %d bytes", bodySize, 16<<20)
	}
	// A readable, recognisable body lets the harness check that a proxy
	// really forwarded to this server rather than answering by itself.
	body := bytes.Repeat([]byte("hopwatch-upstream."), bodySize/18+1)[:bodySize]
	large := bytes.Repeat([]byte("hopwatch-upstream."), largeSize/18+1)[:largeSize]
	contentLength := []string{strconv.Itoa(bodySize)}
	largeLength := []string{strconv.Itoa(largeSize)}
	contentType := []string{"text/plain; charset=utf-8"}
	allow := []string{"GET, HEAD, POST"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			// The body must cross the proxy whole before the answer, so
			// that a POST measures the request direction.
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, "upstream: read request body: "+err.Error(), http.StatusBadRequest)
				return
			}
		default:
			hdr["Allow"] = allow
			http.Error(w, "upstream: only GET, HEAD and POST are served", http.StatusMethodNotAllowed)
			return
		}
		b, n := body, contentLength
		if r.URL.Path == largePath && r.Method != http.MethodPost {
			b, n = large, largeLength
		}
		hdr["Content-Type"] = contentType
		hdr["Content-Length"] = n
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	}), nil
}
