// Package sink is the statsd-sink: a drop-in for prometheus/statsd_exporter
// that receives StatsD over UDP, TCP and unixgram, maps names to labelled
// Prometheus metrics (statsd_exporter's mapping YAML, plus an Envoy preset)
// and serves them on /metrics, with bounded memory under any input.
//
// Data flow: ingest readers → Worker (parse → cached map → series) →
// aggregate.Store (sharded) → expose.Handler.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/periodic"
	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/expose"
	"github.com/hopwatch/hopwatch/sink/ingest"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// Config is the whole sink configuration; cmd/statsd-sink fills it from
// statsd_exporter-compatible flags.
type Config struct {
	// UDPAddr, TCPAddr, UnixgramPath: "" disables that listener.
	UDPAddr, TCPAddr, UnixgramPath string
	UnixSocketMode                 os.FileMode
	// UDPReaders is the number of UDP reader goroutines, each with its own
	// worker (default GOMAXPROCS, so that one sender's traffic can use
	// every core).
	UDPReaders int
	// UDPSockets is the number of SO_REUSEPORT sockets the readers share,
	// round-robin (default 1). The kernel hashes each sender to one
	// socket; more sockets only help with many senders on many cores.
	UDPSockets int
	// UDPBatch is the number of datagrams per recvmmsg (default 64).
	UDPBatch int
	// ReadBuffer is SO_RCVBUF for UDP and unixgram: 0 asks for
	// DefaultReadBuffer, a negative value keeps the system default.
	ReadBuffer int
	// TCPMaxLine is the longest accepted TCP line (default 64 KiB).
	TCPMaxLine int

	Mapping mapping.Options
	Parser  statsd.Parser
	// CacheSize bounds each reader's series cache; 0 disables it.
	CacheSize int
	Store     aggregate.Options

	// WebAddr is the HTTP listen address; "" disables HTTP.
	WebAddr         string
	TelemetryPath   string
	EnableLifecycle bool

	RelayAddr         string
	RelayPacketLength int

	Logger *slog.Logger
}

// DefaultReadBuffer is the UDP/unixgram receive buffer asked for when none
// is configured. The kernel buffer is the sink's only queue, so it must
// absorb the bursts of a sender (and the moments the readers are not
// scheduled on a busy machine); the kernel clamps it to net.core.rmem_max.
const DefaultReadBuffer = 8 << 20

// Server runs the sink.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	store   *aggregate.Store
	pipe    *Pipeline
	metrics *Metrics
	stats   ingest.Stats
	relay   *Relay

	udp  []*net.UDPConn
	tcp  net.Listener
	unix *net.UnixConn
	web  net.Listener

	reloadMu sync.Mutex
	quit     chan struct{}
	quitOnce sync.Once
}

// CheckConfig loads the mapping as the server would and returns its error.
func CheckConfig(opts mapping.Options) error {
	_, err := mapping.Load(opts)
	return err
}

// New validates cfg and loads the mapping; it opens no sockets.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UDPAddr == "" && cfg.TCPAddr == "" && cfg.UnixgramPath == "" {
		return nil, errors.New("at least one of the UDP, TCP and unixgram listeners must be enabled")
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = runtime.GOMAXPROCS(0)
	}
	if cfg.UDPSockets <= 0 {
		cfg.UDPSockets = 1
	}
	cfg.UDPSockets = min(cfg.UDPSockets, cfg.UDPReaders)
	if cfg.UDPBatch <= 0 {
		cfg.UDPBatch = 64
	}
	switch {
	case cfg.ReadBuffer == 0:
		cfg.ReadBuffer = DefaultReadBuffer
	case cfg.ReadBuffer < 0:
		cfg.ReadBuffer = 0 // ingest: keep the system default
	}
	if cfg.TCPMaxLine <= 0 {
		cfg.TCPMaxLine = 64 << 10
	}
	if cfg.TelemetryPath == "" {
		cfg.TelemetryPath = "/metrics"
	}
	m, err := mapping.Load(cfg.Mapping)
	if err != nil {
		return nil, fmt.Errorf("loading mapping: %w", err)
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, store: aggregate.New(cfg.Store), quit: make(chan struct{})}
	s.metrics = NewMetrics(cfg.Logger)
	if cfg.RelayAddr != "" {
		if s.relay, err = NewRelay(cfg.RelayAddr, cfg.RelayPacketLength, cfg.Logger); err != nil {
			return nil, err
		}
	}
	s.pipe = NewPipeline(cfg.Parser, m, s.store, s.metrics, s.relay, cfg.CacheSize)
	return s, nil
}

// Store exposes the series store (for tests and embedding).
func (s *Server) Store() *aggregate.Store { return s.store }

// Pipeline exposes the pipeline (for tests and embedding).
func (s *Server) Pipeline() *Pipeline { return s.pipe }

// Listen opens every configured socket, so that addresses are known (and
// errors reported) before Serve.
func (s *Server) Listen(ctx context.Context) error {
	var err error
	if s.cfg.UDPAddr != "" {
		if s.udp, err = ingest.ListenUDP(ctx, s.cfg.UDPAddr, s.cfg.UDPSockets, s.cfg.ReadBuffer); err != nil {
			return err
		}
		s.checkReadBuffer(s.udp[0])
	}
	if s.cfg.TCPAddr != "" {
		if s.tcp, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.TCPAddr); err != nil {
			s.closeAll()
			return fmt.Errorf("listening on TCP %s: %w", s.cfg.TCPAddr, err)
		}
	}
	if s.cfg.UnixgramPath != "" {
		if s.unix, err = ingest.ListenUnixgram(s.cfg.UnixgramPath, s.cfg.UnixSocketMode, s.cfg.ReadBuffer); err != nil {
			s.closeAll()
			return err
		}
	}
	if s.cfg.WebAddr != "" {
		if s.web, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.WebAddr); err != nil {
			s.closeAll()
			return fmt.Errorf("listening on web address %s: %w", s.cfg.WebAddr, err)
		}
	}
	return nil
}

// checkReadBuffer warns when the kernel granted less receive buffer than
// asked for, which is what net.core.rmem_max does silently.
func (s *Server) checkReadBuffer(c *net.UDPConn) {
	if s.cfg.ReadBuffer <= 0 {
		return
	}
	got, err := ingest.ReceiveBuffer(c)
	if err != nil {
		s.logger.Warn("cannot read the UDP receive buffer size", "error", err)
		return
	}
	// Linux reports twice the granted size (it counts its bookkeeping).
	if got/2 < s.cfg.ReadBuffer {
		rmax, _ := ingest.RmemMax()
		s.logger.Warn("the kernel clamped the UDP receive buffer; raise net.core.rmem_max (sysctl -w net.core.rmem_max=N, as root) for fewer drops under bursts",
			"requested_bytes", s.cfg.ReadBuffer, "granted_bytes", got/2, "rmem_max", rmax)
		return
	}
	s.logger.Debug("UDP receive buffer", "bytes", got/2)
}

func (s *Server) closeAll() {
	for _, c := range s.udp {
		_ = c.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	if s.unix != nil {
		_ = s.unix.Close()
		if s.cfg.UnixgramPath != "" && s.cfg.UnixgramPath[0] != '@' {
			_ = os.Remove(s.cfg.UnixgramPath)
		}
	}
	if s.web != nil {
		_ = s.web.Close()
	}
}

// UDPAddr is the bound UDP address (nil before Listen or when disabled).
func (s *Server) UDPAddr() net.Addr {
	if len(s.udp) == 0 {
		return nil
	}
	return s.udp[0].LocalAddr()
}

// TCPAddr is the bound StatsD TCP address.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// WebAddr is the bound HTTP address.
func (s *Server) WebAddr() net.Addr {
	if s.web == nil {
		return nil
	}
	return s.web.Addr()
}

// Run is Listen followed by Serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(ctx); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve runs readers, the HTTP server and housekeeping until ctx ends (or
// /-/quit is called), then closes everything.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, s.cfg.UDPReaders+8) // every runner may fail once
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	for i := range s.cfg.UDPReaders {
		if len(s.udp) == 0 {
			break
		}
		c := s.udp[i%len(s.udp)]
		run(func() error { return ingest.ServeUDP(c, s.cfg.UDPBatch, s.pipe.NewWorker(), &s.stats) })
	}
	if s.tcp != nil {
		run(func() error {
			return ingest.ServeTCP(ctx, s.tcp, s.cfg.TCPMaxLine, func() ingest.Handler { return s.pipe.NewWorker() }, &s.stats)
		})
	}
	if s.unix != nil {
		run(func() error { return ingest.ServeUnixgram(s.unix, s.pipe.NewWorker(), &s.stats) })
	}
	var hs *http.Server
	if s.web != nil {
		hs = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		run(func() error {
			if err := hs.Serve(s.web); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving HTTP: %w", err)
			}
			return nil
		})
	}
	if s.relay != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.relay.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		periodic.Every(ctx, time.Second, func(now time.Time) { s.store.Tick(now) })
	}()
	select {
	case <-ctx.Done():
	case <-s.quit:
		s.logger.Info("received lifecycle quit, exiting")
	}
	cancel()
	if hs != nil {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(sctx)
		c()
	}
	s.closeAll()
	wg.Wait()
	close(errc)
	return <-errc
}

// Reload re-reads the mapping file. On error the old mapping stays and the
// error (with file and line) is returned and logged.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.cfg.Mapping.File == "" {
		s.logger.Warn("reload requested but no mapping config is set")
		return nil
	}
	m, err := mapping.Load(s.cfg.Mapping)
	if err != nil {
		s.metrics.reloadFail.Add(1)
		s.logger.Error("mapping reload failed; keeping the previous mapping", "error", err)
		return err
	}
	s.pipe.SetMapper(m)
	s.metrics.reloadOK.Add(1)
	s.logger.Info("mapping reloaded", "file", s.cfg.Mapping.File, "mappings", m.Mappings())
	return nil
}

// Gather returns the store's families and the self-metrics, sorted by name.
func (s *Server) Gather() []aggregate.FamilySnapshot {
	fams := s.store.Snapshot()
	self := s.metrics.families(&selfState{
		store: s.store, ingest: &s.stats, mappings: s.pipe.Mapper().Mappings(), relay: s.relay,
		kernelDrops: s.kernelDrops,
	})
	fams = append(fams, self...)
	sort.SliceStable(fams, func(i, j int) bool { return fams[i].Name < fams[j].Name })
	return fams
}

func (s *Server) kernelDrops() (uint64, bool) {
	if len(s.udp) == 0 {
		return 0, false
	}
	a, ok := s.udp[0].LocalAddr().(*net.UDPAddr)
	if !ok {
		return 0, false
	}
	return ingest.KernelDrops(a.Port)
}

// Handler serves /metrics and the lifecycle endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(s.cfg.TelemetryPath, &expose.Handler{Gather: s.Gather, OnScrape: s.metrics.observeScrape})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Statsd Exporter is Healthy.\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Statsd Exporter is Ready.\n")
	})
	if s.cfg.EnableLifecycle {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				http.Error(w, "use POST or PUT", http.StatusMethodNotAllowed)
				return
			}
			if err := s.Reload(); err != nil {
				http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, "Requesting reload")
		})
		mux.HandleFunc("/-/quit", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				http.Error(w, "use POST or PUT", http.StatusMethodNotAllowed)
				return
			}
			fmt.Fprint(w, "Requesting termination... Goodbye!")
			s.quitOnce.Do(func() { close(s.quit) })
		})
	}
	if s.cfg.TelemetryPath != "/" {
		mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "<html><head><title>statsd-sink</title></head><body><h1>statsd-sink</h1><p><a href=%q>Metrics</a></p></body></html>\n", s.cfg.TelemetryPath)
		})
	}
	return mux
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
