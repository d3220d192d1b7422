// Package demo is the multi-hop demo application run by cmd/demo: three
// small HTTP services (frontend → catalog → inventory) instrumented with
// tracing/hop, latency and error injection on demand, and a load generator
// with a bounded rate and duration. It lives beside the tracing library it
// demonstrates; the top level of the repository is fixed by the product,
// and cmd/ holds no logic.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/tracing"
	"github.com/hopwatch/hopwatch/tracing/hop"
)

// Services are the demo's service names, in call order.
var Services = []string{"frontend", "catalog", "inventory"}

// Config describes one demo service.
type Config struct {
	// Name is the service name, used in responses, logs and injection
	// targeting (x-demo-fail-at: inventory).
	Name string
	// Upstream is the URL the service calls for every request; empty for
	// the last service in the chain.
	Upstream string
	// Pricing is the URL of legacy-pricing (its sidecar), which the
	// service asks for the price of the requested item after its upstream
	// answered; empty for services that do not price anything.
	Pricing string
	// Provider traces the service; nil traces nothing (request IDs still
	// propagate).
	Provider *tracing.Provider
	// Logger receives one line per request, with trace and request IDs.
	// Default: slog.Default().
	Logger *slog.Logger
	// UpstreamTimeout bounds each upstream call. Default 10s.
	UpstreamTimeout time.Duration
}

// Service is one demo service.
type Service struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	mu  sync.Mutex
	inj Injection
}

// NewService checks cfg and returns the service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Name == "" {
		return nil, errors.New("demo: service name is empty")
	}
	for what, v := range map[string]string{"upstream": cfg.Upstream, "pricing": cfg.Pricing} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("demo: %s %q: want an http:// or https:// URL", what, v)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 10 * time.Second
	}
	return &Service{
		cfg:    cfg,
		client: &http.Client{Transport: hop.Transport(nil, hop.WithProvider(cfg.Provider)), Timeout: cfg.UpstreamTimeout},
		log:    slog.New(hop.NewLogHandler(cfg.Logger.Handler())).With("service", cfg.Name),
		inj:    Injection{ErrorCode: http.StatusServiceUnavailable},
	}, nil
}

// Handler serves the service:
//
//	GET  /healthz          readiness (not traced)
//	GET  /demo/inject      the current injection, as JSON
//	POST /demo/inject?delay=200ms&error_rate=0.1&error_code=503   replace it
//	DELETE /demo/inject    clear it
//	anything else          the service's work: call the upstream, answer JSON
func (s *Service) Handler() http.Handler {
	traced := http.NewServeMux()
	traced.HandleFunc("/demo/inject", s.serveInject)
	traced.HandleFunc("/", s.serveWork)
	mw := hop.Middleware(traced, hop.WithProvider(s.cfg.Provider))

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	root.Handle("/", mw)
	return root
}

// Injection returns the current admin injection.
func (s *Service) Injection() Injection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inj
}

// SetInjection replaces the admin injection.
func (s *Service) SetInjection(inj Injection) {
	s.mu.Lock()
	s.inj = inj
	s.mu.Unlock()
}

func (s *Service) serveInject(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "demo/inject: "+err.Error(), http.StatusBadRequest)
			return
		}
		inj, err := ParseInjection(r.Form)
		if err != nil {
			http.Error(w, "demo/inject: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetInjection(inj)
		s.log.InfoContext(r.Context(), "injection set", "delay", inj.Delay, "error_rate", inj.ErrorRate, "error_code", inj.ErrorCode)
	case http.MethodDelete:
		s.SetInjection(Injection{ErrorCode: http.StatusServiceUnavailable})
		s.log.InfoContext(r.Context(), "injection cleared")
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "demo/inject: use GET, POST or DELETE", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, s.Injection())
}

// Reply is the JSON a service answers with; Upstream nests the next hop's.
type Reply struct {
	Service   string          `json:"service"`
	RequestID string          `json:"request_id"`
	TraceID   string          `json:"trace_id,omitempty"`
	Upstream  json.RawMessage `json:"upstream,omitempty"`
	// Price is legacy-pricing's PriceReply, for services with a Pricing URL.
	Price json.RawMessage `json:"price,omitempty"`
	Error string          `json:"error,omitempty"`
}

func (s *Service) serveWork(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reply := Reply{Service: s.cfg.Name, RequestID: hop.RequestID(ctx)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		reply.TraceID = sc.TraceID().String()
	}
	start := time.Now()
	status := s.work(ctx, r, &reply)
	writeJSON(w, status, reply)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", status, "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if reply.Error != "" {
		attrs = append(attrs, "error", reply.Error)
	}
	s.log.Log(ctx, level, "request", attrs...)
}

// work does the request's work and returns the status to answer with.
func (s *Service) work(ctx context.Context, r *http.Request, reply *Reply) int {
	fault, err := parseHeaderFault(r.Header, s.cfg.Name)
	if err != nil {
		reply.Error = err.Error()
		return http.StatusBadRequest
	}
	inj := s.Injection()
	if err := sleep(ctx, fault.delay+inj.Delay); err != nil {
		reply.Error = "cancelled while delaying: " + err.Error()
		return http.StatusServiceUnavailable
	}
	if fault.code != 0 {
		reply.Error = fmt.Sprintf("injected by %s header", HeaderFail)
		return fault.code
	}
	if inj.ErrorRate > 0 && rand.Float64() < inj.ErrorRate {
		reply.Error = "injected by /demo/inject"
		return inj.ErrorCode
	}
	if s.cfg.Upstream != "" {
		body, errText, status := s.call(ctx, s.cfg.Upstream, fault.forward)
		reply.Upstream, reply.Error = body, errText
		if status != http.StatusOK {
			return status
		}
	}
	if s.cfg.Pricing != "" {
		item := r.URL.Query().Get("item")
		if item == "" {
			item = DefaultItem
		}
		u := strings.TrimSuffix(s.cfg.Pricing, "/") + "/price?item=" + url.QueryEscape(item)
		body, errText, status := s.call(ctx, u, nil)
		reply.Price = body
		if status != http.StatusOK {
			reply.Error = "pricing: " + errText
			return status
		}
	}
	return http.StatusOK
}

// DefaultItem is the item the catalog prices when the request names none
// (?item=...).
const DefaultItem = "widget"

// call GETs u with header added, and returns the answer's body when it is
// JSON, and, when the call failed, what went wrong and the status to
// answer with.
func (s *Service) call(ctx context.Context, u string, header http.Header) (body json.RawMessage, errText string, status int) {
	// The host is the configured upstream or pricing URL; a request adds
	// only an escaped query value (?item=), so this is no request forgery.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil) //nolint:gosec // G704: see above
	if err != nil {
		return nil, err.Error(), http.StatusInternalServerError
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req) //nolint:gosec // G704: the configured host, as above
	if err != nil {
		return nil, "upstream: " + err.Error(), http.StatusBadGateway
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "upstream: reading body: " + err.Error(), http.StatusBadGateway
	}
	if json.Valid(b) {
		body = b
	}
	if resp.StatusCode >= 400 {
		return body, fmt.Sprintf("upstream answered %d", resp.StatusCode), http.StatusBadGateway
	}
	return body, "", http.StatusOK
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves h on ln until ctx is done, then shuts down gracefully,
// giving requests in flight up to grace to finish.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("demo: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("demo: shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}
