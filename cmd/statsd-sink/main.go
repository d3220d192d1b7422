// Command statsd-sink receives StatsD and serves Prometheus metrics. It
// accepts prometheus/statsd_exporter's flags with their meaning, plus its
// own (--preset, --sink.*). It only parses flags and wires package sink.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/hopwatch/hopwatch/sink"
	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

func main() {
	os.Exit(run())
}

func run() int {
	app := kingpin.New("statsd-sink", "StatsD to Prometheus: a faster, flood-proof drop-in for prometheus/statsd_exporter.")
	app.HelpFlag.Short('h')
	var (
		listenAddress   = app.Flag("web.listen-address", "The address on which to expose the web interface and generated Prometheus metrics.").Default(":9102").String()
		enableLifecycle = app.Flag("web.enable-lifecycle", "Enable shutdown (/-/quit) and reload (/-/reload) via HTTP POST or PUT.").Default("false").Bool()
		metricsPath     = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		listenUDP       = app.Flag("statsd.listen-udp", "The UDP address on which to receive statsd metric lines. \"\" disables it.").Default(":8125").String()
		listenTCP       = app.Flag("statsd.listen-tcp", "The TCP address on which to receive statsd metric lines. \"\" disables it.").Default(":8125").String()
		listenUnixgram  = app.Flag("statsd.listen-unixgram", "The Unixgram socket path to receive statsd metric lines in datagram. \"\" disables it.").Default("").String()
		unixSocketMode  = app.Flag("statsd.unixsocket-mode", "The permission mode of the unix socket.").Default("755").String()
		mappingConfig   = app.Flag("statsd.mapping-config", "Metric mapping configuration file name (statsd_exporter format).").String()
		readBuffer      = app.Flag("statsd.read-buffer", "Size (in bytes) of the operating system's receive buffer for the UDP and Unixgram sockets; 0 asks for 8 MiB, -1 keeps the system default. The kernel clamps it to net.core.rmem_max (a warning says so).").Int()
		cacheSize       = app.Flag("statsd.cache-size", "Maximum number of resolved metrics each reader caches (name+tags -> series). 0 disables the cache.").Default("262144").Int()
		_               = app.Flag("statsd.cache-type", "Accepted for compatibility; the sink's per-reader cache is cleared when full.").Default("lru").Enum("lru", "random")
		_               = app.Flag("statsd.event-queue-size", "Accepted for compatibility; the sink has no event queue (readers aggregate directly).").Default("10000").Uint()
		_               = app.Flag("statsd.event-flush-threshold", "Accepted for compatibility; ignored.").Default("1000").Int()
		_               = app.Flag("statsd.event-flush-interval", "Accepted for compatibility; ignored.").Default("200ms").Duration()
		_               = app.Flag("statsd.udp-packet-queue-size", "Accepted for compatibility; the sink has no packet queue (the kernel buffer is the queue, see --statsd.read-buffer).").Default("10000").Int()
		_               = app.Flag("debug.dump-fsm", "Accepted for compatibility; ignored.").Default("").String()
		checkConfig     = app.Flag("check-config", "Check the mapping configuration, print any error with file and line, and exit (non-zero on error).").Default("false").Bool()
		dogstatsdTags   = app.Flag("statsd.parse-dogstatsd-tags", "Parse DogStatsd style tags. Enabled by default.").Default("true").Bool()
		influxdbTags    = app.Flag("statsd.parse-influxdb-tags", "Parse InfluxDB style tags. Enabled by default.").Default("true").Bool()
		libratoTags     = app.Flag("statsd.parse-librato-tags", "Parse Librato style tags. Enabled by default.").Default("true").Bool()
		signalFXTags    = app.Flag("statsd.parse-signalfx-tags", "Parse SignalFX style tags. Enabled by default.").Default("true").Bool()
		relayAddr       = app.Flag("statsd.relay.address", "The UDP relay target address (host:port); raw lines are forwarded there.").String()
		relayPacketLen  = app.Flag("statsd.relay.packet-length", "Maximum relay output packet length to avoid fragmentation.").Default("1400").Uint()
		logLevel        = app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").Default("info").Enum("debug", "info", "warn", "error")
		logFormat       = app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").Enum("logfmt", "json")

		preset       = app.Flag("preset", "Built-in mapping consulted after --statsd.mapping-config: \"envoy\" gives Envoy's /stats/prometheus names and labels (timers stay in ms with Envoy's buckets). \"\" for none.").Default("").Enum(mapping.Presets...)
		udpReaders   = app.Flag("sink.udp-readers", "Number of UDP reader goroutines (0 = GOMAXPROCS, so that even one sender's traffic uses every core).").Default("0").Int()
		udpSockets   = app.Flag("sink.udp-sockets", "Number of UDP sockets sharing the port with SO_REUSEPORT; the readers share them round-robin. More than 1 helps only with many senders on many cores.").Default("1").Int()
		udpBatch     = app.Flag("sink.udp-batch", "Datagrams read per recvmmsg call.").Default("64").Int()
		tcpMaxLine   = app.Flag("sink.tcp-max-line", "Longest accepted TCP line in bytes; a longer line closes the connection.").Default("65536").Int()
		maxSeries    = app.Flag("sink.max-series", "Cardinality budget for all series together (0 = unlimited). New metric names beyond it are dropped.").Default("1000000").Int()
		maxPerFamily = app.Flag("sink.max-series-per-metric", "Cardinality budget per metric name (0 = unlimited).").Default("100000").Int()
		overflow     = app.Flag("sink.overflow", "What to do with new series beyond a budget: drop, or fold into the metric's {statsd_sink_overflow=\"true\"} series.").Default("drop").Enum("drop", "fold")
		ttl          = app.Flag("sink.ttl", "Expire series not updated for this long (0 = never); a mapping's ttl (or defaults.ttl) overrides it.").Default("0s").Duration()
		setInterval  = app.Flag("sink.set-interval", "Sets (|s) export the number of distinct values seen in the last complete interval of this length.").Default("1m").Duration()
		shards       = app.Flag("sink.shards", "Number of lock shards of the series store.").Default("256").Int()
	)
	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "statsd-sink:", err)
		return 2
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[*logLevel]
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)

	mopts := mapping.Options{File: *mappingConfig, Preset: *preset}
	if *checkConfig {
		if err := sink.CheckConfig(mopts); err != nil {
			fmt.Fprintln(os.Stderr, "statsd-sink: configuration check failed:", err)
			return 1
		}
		logger.Info("configuration check successful, exiting")
		return 0
	}
	mode, err := strconv.ParseUint(*unixSocketMode, 8, 32)
	if err != nil {
		fmt.Fprintf(os.Stderr, "statsd-sink: --statsd.unixsocket-mode %q is not an octal mode: %v\n", *unixSocketMode, err)
		return 2
	}
	ov := aggregate.OverflowDrop
	if *overflow == "fold" {
		ov = aggregate.OverflowFold
	}
	cfg := sink.Config{
		UDPAddr: *listenUDP, TCPAddr: *listenTCP, UnixgramPath: *listenUnixgram, UnixSocketMode: os.FileMode(mode),
		UDPReaders: *udpReaders, UDPSockets: *udpSockets, UDPBatch: *udpBatch, ReadBuffer: *readBuffer, TCPMaxLine: *tcpMaxLine,
		Mapping:   mopts,
		Parser:    statsd.Parser{DogStatsD: *dogstatsdTags, InfluxDB: *influxdbTags, Librato: *libratoTags, SignalFX: *signalFXTags},
		CacheSize: *cacheSize,
		Store: aggregate.Options{Shards: *shards, MaxSeries: *maxSeries, MaxSeriesPerFamily: *maxPerFamily,
			Overflow: ov, SetInterval: *setInterval, DefaultTTL: *ttl},
		WebAddr: *listenAddress, TelemetryPath: *metricsPath, EnableLifecycle: *enableLifecycle,
		RelayAddr: *relayAddr, RelayPacketLength: int(*relayPacketLen),
		Logger: logger,
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = runtime.GOMAXPROCS(0)
	}
	gcPercent := setGCDefault()
	srv, err := sink.New(cfg)
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Listen(ctx); err != nil {
		logger.Error("cannot listen", "error", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			logger.Info("received SIGHUP, reloading mapping")
			_ = srv.Reload()
		}
	}()
	logger.Info("statsd-sink started", "udp", srv.UDPAddr(), "tcp", srv.TCPAddr(), "unixgram", *listenUnixgram,
		"web", srv.WebAddr(), "readers", cfg.UDPReaders, "gomaxprocs", runtime.GOMAXPROCS(0), "gogc", gcPercent, "preset", *preset)
	if err := srv.Serve(ctx); err != nil {
		logger.Error("stopped with error", "error", err)
		return 1
	}
	return 0
}

// defaultGOGC is the sink's GC target when GOGC is not set. Once its series
// exist the sink's ingest allocates nothing, so collections are rare and a
// tighter target than Go's 100 costs little CPU, while it cuts the heap
// headroom (and so the RSS) from 2× to 1.5× the live series state.
const defaultGOGC = 50

// setGCDefault applies defaultGOGC unless the GOGC environment variable
// chose a value (GOMEMLIMIT is left to the environment too); it returns
// the GC percent in effect.
func setGCDefault() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(defaultGOGC)
	return defaultGOGC
}
