package main

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/template"
	"time"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates holds every proxy's config template, parsed once at start-up
// so that a broken template fails before any process is started.
var templates = template.Must(template.New("").Option("missingkey=error").
	Funcs(template.FuncMap{"mul": func(a, b int) int { return a * b }}).
	ParseFS(templateFS, "templates/*.tmpl"))

// configData fills a proxy's config template.
type configData struct {
	// Workers is the number of worker processes or threads (nproc).
	Workers int
	// Dir is the proxy's private work directory.
	Dir string
	// Listen is the loopback host:port the proxy accepts on.
	Listen string
	// ListenHost is Listen without the port.
	ListenHost string
	// AdminListen is a second free loopback host:port for an admin server.
	AdminListen string
	// Upstream is the upstream's host:port.
	Upstream string
	// AccessLog is the access-log file.
	AccessLog string
	// TLSListen is a second loopback host:port, served over TLS with
	// CertFile and KeyFile when CertFile is set (nginx and hopwatch-proxy).
	TLSListen, CertFile, KeyFile string
	// AccessLogTLS is hopwatch-proxy's access-log file for the TLS
	// listener; nginx logs both servers to AccessLog.
	AccessLogTLS string
	// StatsSink is the loopback host:port of the harness's StatsD reader,
	// where hopwatch-proxy with stats on sends its stats.
	StatsSink string
	// StatsOff renders hopwatch-proxy with stats_config.disabled, the
	// baseline that shows what stats cost.
	StatsOff bool
	// AccessLogOff renders hopwatch-proxy without an access log.
	AccessLogOff bool
	// TracingEndpoint is the OTLP gRPC host:port hopwatch-proxy traces to;
	// empty renders no tracing section.
	TracingEndpoint string
	// Histograms is hopwatch-proxy's StatsD sink histogram mode (timer or
	// compact); empty leaves the default.
	Histograms string
	// Exemplars turns on exemplars on hopwatch-proxy's StatsD sink: the
	// timer lines of traced requests carry |trace_id:<hex>.
	Exemplars bool
	// H2 serves HTTP/2 over TLS by ALPN on TLSListen (nginx needs it
	// said; hopwatch-proxy's listeners offer h2 by default), and H2CListen,
	// when set, is a loopback host:port that speaks HTTP/2 with prior
	// knowledge only (nginx 1.22 cannot serve h2c and HTTP/1.1 on one port).
	H2        bool
	H2CListen string
	// GRPCListen, when set, is a loopback host:port that speaks HTTP/2
	// with prior knowledge and forwards every request to GRPCUpstream, a
	// gRPC server, over HTTP/2 (nginx grpc_pass, a hopwatch h2c cluster).
	GRPCListen, GRPCUpstream string
	// LargeBodies gives nginx 32 KiB body buffers, the size of
	// hopwatch-proxy's copy buffer, for the large-body mode (nginx's
	// defaults are 4 KiB or 8 KiB pages, 16 KiB for a request body).
	LargeBodies bool
	// WorkerConnections is nginx's worker_connections: 4096, raised for
	// the idle-connections mode, where one worker may hold them all.
	WorkerConnections int
}

// peer is one proxy under test.
type peer struct {
	// Name is the name -proxies selects by.
	Name string
	// Label is the name in the table; empty means Name.
	Label string
	// StatsOff sets configData.StatsOff (hopwatch-proxy only).
	StatsOff bool
	// AccessLogOff sets configData.AccessLogOff (hopwatch-proxy only).
	AccessLogOff bool
	// Histograms sets configData.Histograms (hopwatch-proxy only).
	Histograms string
	// Exemplars sets configData.Exemplars (hopwatch-proxy only).
	Exemplars bool
	// FullObservability sends stats to the real statsd-sink instead of
	// the discarding socket and traces to the real Jaeger (hopwatch-proxy
	// only).
	FullObservability bool
	// Template is the file name in templates/; the rendered config is
	// written to Dir under the same name without ".tmpl".
	Template string
	// Bin is the executable; a bare name is looked up in PATH.
	Bin string
	// Args builds the command line after Bin from the rendered config path.
	Args func(cfg string, d configData) []string
	// Env is added to the environment, for programs that would otherwise
	// write state under $HOME.
	Env func(d configData) []string
	// TLS says the peer's template has a TLS server, so it is measured
	// under the https loads too.
	TLS bool
	// StdoutIsLog sends the process's stdout to the access-log file, for
	// HAProxy, which can only log to syslog or stdout.
	StdoutIsLog bool
	// StopSignal asks the proxy to exit after flushing its logs.
	StopSignal syscall.Signal
	// Version returns a one-line version string.
	Version func(ctx context.Context, bin string) string
}

// peers returns every supported proxy in benchmark order; nginx comes first
// because the ratios are relative to it.
func peers(hopwatchBin string) []peer {
	return []peer{
		{
			Name:     "nginx",
			Template: "nginx.conf.tmpl",
			Bin:      "nginx",
			Args: func(cfg string, d configData) []string {
				// -e keeps nginx's start-up messages out of /var/log/nginx.
				return []string{"-p", d.Dir, "-e", filepath.Join(d.Dir, "nginx-error.log"), "-c", cfg}
			},
			TLS: true,
			// SIGQUIT is nginx's graceful stop, which flushes buffered logs.
			StopSignal: syscall.SIGQUIT,
			Version:    func(ctx context.Context, bin string) string { return commandLine(ctx, bin, "-v") },
		},
		{
			Name:        "haproxy",
			Template:    "haproxy.cfg.tmpl",
			Bin:         "haproxy",
			Args:        func(cfg string, _ configData) []string { return []string{"-db", "-f", cfg} },
			StdoutIsLog: true,
			StopSignal:  syscall.SIGTERM,
			Version:     func(ctx context.Context, bin string) string { return commandLine(ctx, bin, "-v") },
		},
		{
			Name:     "caddy",
			Template: "Caddyfile.tmpl",
			Bin:      "caddy",
			Args: func(cfg string, _ configData) []string {
				return []string{"run", "--config", cfg, "--adapter", "caddyfile"}
			},
			Env: func(d configData) []string {
				return []string{
					"HOME=" + d.Dir,
					"XDG_DATA_HOME=" + filepath.Join(d.Dir, "xdg-data"),
					"XDG_CONFIG_HOME=" + filepath.Join(d.Dir, "xdg-config"),
				}
			},
			StopSignal: syscall.SIGTERM,
			Version:    func(ctx context.Context, bin string) string { return commandLine(ctx, bin, "version") },
		},
		hopwatchVariant(hopwatchBin, peer{
			// Everything off: no stats, no access log, no tracing. Full
			// observability divided by this row is what observability costs.
			Name:         "hopwatch-proxy-off",
			Label:        obsOffRow,
			StatsOff:     true,
			AccessLogOff: true,
		}),
		hopwatchVariant(hopwatchBin, peer{
			// The same proxy with every stat off, measured in the same run:
			// the full-stats row divided by this one is what stats cost.
			Name:     "hopwatch-proxy-nostats",
			Label:    "hopwatch-proxy (stats off)",
			StatsOff: true,
		}),
		hopwatchVariant(hopwatchBin, peer{Name: "hopwatch-proxy"}),
		hopwatchVariant(hopwatchBin, peer{
			// Stats to a real statsd-sink, the JSON access log, and tracing
			// at 1 % to a real Jaeger: what a production deployment runs.
			Name:              "hopwatch-proxy-full",
			Label:             obsFullRow,
			FullObservability: true,
		}),
		hopwatchVariant(hopwatchBin, peer{
			// Full observability with exemplars on its StatsD sink: the
			// timer lines of the 1 % of traced requests carry the trace ID
			// to statsd-sink, which keeps one per histogram bucket. This row
			// divided by the full-observability one is what exemplars cost.
			Name:              "hopwatch-proxy-exemplars",
			Label:             obsExemplarsRow,
			FullObservability: true,
			Exemplars:         true,
		}),
	}
}

// hopwatchVariant fills in what every hopwatch-proxy variant shares (one
// binary, one template, a TLS listener, SIGTERM's graceful drain) around
// the fields that make p a variant.
func hopwatchVariant(bin string, p peer) peer {
	p.TLS = true
	p.Template = "hopwatch.yaml.tmpl"
	p.Bin = bin
	p.Args = func(cfg string, _ configData) []string { return []string{"-c", cfg} }
	p.StopSignal = syscall.SIGTERM
	p.Version = hopwatchVersion
	return p
}

// needsServices reports whether a peer of these -proxies names reports to
// the real statsd-sink and Jaeger.
func needsServices(names []string) bool {
	return slices.ContainsFunc(peers(""), func(p peer) bool { return p.FullObservability && slices.Contains(names, p.Name) })
}

// label is the peer's name in the results table.
func (p peer) label() string {
	if p.Label != "" {
		return p.Label
	}
	return p.Name
}

// isHopwatch reports whether a -proxies name is a hopwatch-proxy variant.
func isHopwatch(name string) bool { return strings.HasPrefix(name, "hopwatch-proxy") }

// render writes the peer's config into d.Dir and returns its path.
func (p peer) render(d configData) (string, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, p.Template, d); err != nil {
		return "", fmt.Errorf("%s: render %s: %w", p.Name, p.Template, err)
	}
	path := filepath.Join(d.Dir, strings.TrimSuffix(p.Template, ".tmpl"))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("%s: write config: %w", p.Name, err)
	}
	return path, nil
}

// newConfigData allocates free loopback ports and paths for one run.
func newConfigData(dir, upstream string, workers int) (configData, error) {
	listen, err := freeLoopbackAddr()
	if err != nil {
		return configData{}, err
	}
	admin, err := freeLoopbackAddr()
	if err != nil {
		return configData{}, err
	}
	tlsListen, err := freeLoopbackAddr()
	if err != nil {
		return configData{}, err
	}
	host, _, _ := net.SplitHostPort(listen)
	return configData{
		Workers:           workers,
		WorkerConnections: 4096,
		Dir:               dir,
		Listen:            listen,
		ListenHost:        host,
		AdminListen:       admin,
		Upstream:          upstream,
		AccessLog:         filepath.Join(dir, "access.log"),
		TLSListen:         tlsListen,
		AccessLogTLS:      filepath.Join(dir, "access-tls.log"),
	}, nil
}

// freeLoopbackAddr asks the kernel for a free port on 127.0.0.1. Another
// process could take it before the proxy binds it; the readiness check then
// fails with the proxy's own error message, which names the port.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("release port %s: %w", addr, err)
	}
	return addr, nil
}

// commandLine runs bin with args and returns the first non-empty line of
// its combined output. Version flags disagree on exit codes (wrk -v exits
// 1) and on stdout versus stderr (nginx -v), so both are accepted.
func commandLine(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	for l := range strings.SplitSeq(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	if err != nil {
		return fmt.Sprintf("unknown (%s %s: %v)", bin, strings.Join(args, " "), err)
	}
	return "unknown"
}

// hopwatchVersion prefers the binary's own -version output and falls back to
// the toolchain and commit it was built from.
func hopwatchVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-version").Output(); err == nil {
		if l := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]); l != "" {
			return l
		}
	}
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "built from this checkout"
	}
	var goVer, rev, modified string
	for l := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && strings.HasSuffix(f[0], ":") && goVer == "":
			goVer = f[1]
		case len(f) >= 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			rev = strings.TrimPrefix(f[1], "vcs.revision=")
		case len(f) >= 2 && f[0] == "build" && f[1] == "vcs.modified=true":
			modified = " (modified)"
		}
	}
	switch {
	case rev != "":
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return fmt.Sprintf("commit %s%s, built with %s", rev, modified, goVer)
	case goVer != "":
		return "built from this checkout with " + goVer
	default:
		return "built from this checkout"
	}
}
