// Command demo runs the multi-hop demo application: frontend → catalog →
// inventory, instrumented with tracing/hop, and a load generator.
//
//	demo frontend  --listen 127.0.0.1:8081 --upstream http://127.0.0.1:8082/
//	demo catalog   --listen 127.0.0.1:8082 --upstream http://127.0.0.1:8083/ --pricing http://127.0.0.1:8085/
//	demo inventory --listen 127.0.0.1:8083
//	demo legacy-pricing --listen 127.0.0.1:8085 --jaeger-endpoint http://127.0.0.1:14268/api/traces
//	demo load      --target http://127.0.0.1:8081/ --rate 20 --duration 1m
//	demo cert      --dir tmp/up/tls --name front-proxy --valid-for 720h
//
// Tracing is on when --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT is set;
// other OTEL_* variables apply. legacy-pricing is traced with
// jaeger-client-go instead, reporting thrift over HTTP to --jaeger-endpoint
// or JAEGER_ENDPOINT. The logic lives in tracing/demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/tracing/demo"
	"github.com/hopwatch/hopwatch/tracing/hop"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: demo frontend|catalog|inventory [--listen ADDR] [--upstream URL] [--pricing URL] [--otlp-endpoint HOST:PORT] [--inject 'delay=20ms&error_rate=0.1']\n"+
		"       demo legacy-pricing [--listen ADDR] [--jaeger-endpoint URL]\n"+
		"       demo load --target URL [--rate N] [--duration D] [--concurrency N] [--header 'Name: value']...\n"+
		"       demo cert --dir DIR [--name NAME] [--valid-for D]\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch {
	case cmd == "load":
		err = runLoad(ctx, args)
	case cmd == "cert":
		err = runCert(args)
	case cmd == demo.LegacyPricing:
		err = runLegacy(ctx, args)
	case slices.Contains(demo.Services, cmd):
		err = runService(ctx, cmd, args)
	case cmd == "-h" || cmd == "--help" || cmd == "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "demo: unknown command %q; use one of %s, %s, load or cert\n", cmd, strings.Join(demo.Services, ", "), demo.LegacyPricing)
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func runService(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := fs.String("upstream", "", "URL of the next service (empty for the last one)")
	pricing := fs.String("pricing", "", "URL of legacy-pricing, asked for the item's price (empty: no pricing)")
	endpoint := fs.String("otlp-endpoint", "", "OTLP endpoint (host:port or URL); default from OTEL_EXPORTER_OTLP_ENDPOINT, tracing off if neither")
	logFormat := fs.String("log-format", "json", "json or text")
	inject := fs.String("inject", "", "an injection to start with, in POST /demo/inject's query form (delay=20ms&error_rate=0.1&error_code=503)")
	_ = fs.Parse(args)
	// Parsed before anything starts, so that a typo fails at once.
	var inj demo.Injection
	if *inject != "" {
		q, err := url.ParseQuery(*inject)
		if err == nil {
			inj, err = demo.ParseInjection(q)
		}
		if err != nil {
			return fmt.Errorf("--inject %q: %w", *inject, err)
		}
	}

	logger, err := newLogger(*logFormat)
	if err != nil {
		return err
	}

	p, err := demo.SetupTracing(ctx, name, *endpoint, os.LookupEnv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
		logger.Info("tracing shut down", "exported_spans", p.Exported(), "dropped_spans", p.Dropped())
	}()
	svc, err := demo.NewService(demo.Config{Name: name, Upstream: *upstream, Pricing: *pricing, Provider: p, Logger: logger})
	if err != nil {
		return err
	}
	if *inject != "" {
		// The dev environment's canary starts slower and failing a little,
		// so that the canary dashboard has a difference to show.
		svc.SetInjection(inj)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	logger.Info("serving", "service", name, "addr", ln.Addr().String(), "upstream", *upstream,
		"tracing", p != nil, "otlp_endpoint", p.Config().Endpoint, "inject", *inject)
	return demo.Serve(ctx, ln, svc.Handler(), 10*time.Second)
}

// newLogger returns a logger writing format (json or text) to stderr, with
// the trace and request IDs of the context it is given.
func newLogger(format string) (*slog.Logger, error) {
	var h slog.Handler
	switch format {
	case "json":
		h = slog.NewJSONHandler(os.Stderr, nil)
	case "text":
		h = slog.NewTextHandler(os.Stderr, nil)
	default:
		return nil, fmt.Errorf("--log-format %q: use json or text", format)
	}
	return slog.New(hop.NewLogHandler(h)), nil
}

func runLegacy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(demo.LegacyPricing, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8085", "address to serve on")
	endpoint := fs.String("jaeger-endpoint", os.Getenv(demo.EnvJaegerEndpoint),
		"Jaeger's thrift-over-HTTP collector URL (http://HOST:14268/api/traces); default "+demo.EnvJaegerEndpoint+", nothing reported if neither")
	logFormat := fs.String("log-format", "json", "json or text")
	_ = fs.Parse(args)
	logger, err := newLogger(*logFormat)
	if err != nil {
		return err
	}
	svc, err := demo.NewLegacy(demo.LegacyConfig{CollectorURL: *endpoint, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		_ = svc.Close()
		logger.Info("tracing shut down")
	}()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	logger.Info("serving", "service", demo.LegacyPricing, "addr", ln.Addr().String(), "jaeger_endpoint", *endpoint)
	return demo.Serve(ctx, ln, svc.Handler(), 10*time.Second)
}

func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "URL to request")
	rate := fs.Float64("rate", 10, "requests per second")
	duration := fs.Duration("duration", 30*time.Second, "how long to send")
	concurrency := fs.Int("concurrency", 16, "most requests in flight")
	var headers headerFlag
	fs.Var(&headers, "header", "'Name: value' added to every request (repeatable)")
	_ = fs.Parse(args)
	res, err := demo.Load(ctx, demo.LoadConfig{Target: *target, Rate: *rate, Duration: *duration, Concurrency: *concurrency, Header: headers.h})
	if err != nil {
		return err
	}
	fmt.Println(res)
	return nil
}

// runCert writes a self-signed certificate and key for the dev
// environment's TLS listener, and prints their paths.
func runCert(args []string) error {
	fs := flag.NewFlagSet("cert", flag.ExitOnError)
	dir := fs.String("dir", "", "directory to write <name>.crt and <name>.key into (created)")
	name := fs.String("name", "front-proxy", "file name stem and certificate common name")
	validFor := fs.Duration("valid-for", 30*24*time.Hour, "how long the certificate is valid from now")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("cert: --dir is required")
	}
	certFile, keyFile, err := demo.WriteSelfSignedCert(*dir, *name, *validFor)
	if err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	fmt.Println(certFile)
	fmt.Println(keyFile)
	return nil
}

// headerFlag collects repeated --header 'Name: value' flags.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }

func (f *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return errors.New("want 'Name: value'")
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	return nil
}
