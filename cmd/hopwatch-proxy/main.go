// Command hopwatch-proxy is an L7 HTTP front proxy and sidecar that measures
// every hop the same way. See docs/config.md for the configuration.
//
// Signals: SIGHUP reloads the configuration, SIGUSR1 reopens access logs,
// SIGTERM and SIGINT drain and exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/proxy/config"
)

// defaultGCPercent trades a little memory for CPU: the proxy's live heap is
// small (pools and buffers), so a higher GOGC target costs megabytes and
// saves a visible share of CPU under load. GOGC in the environment wins.
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("hopwatch-proxy", flag.ContinueOnError)
	configPath := fs.String("c", "", "path to the YAML configuration file (required)")
	fs.StringVar(configPath, "config-path", "", "alias of -c")
	checkOnly := fs.Bool("check-config", false, "validate the configuration, print every error with file:line and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format for the proxy's own logs: text or json")
	watchEvery := fs.Duration("watch-interval", time.Second, "how often to check the configuration file for changes when lifecycle.watch_config is true")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hopwatch-proxy -c FILE [flags]\n\nhopwatch-proxy is an L7 HTTP proxy with Envoy-compatible per-hop statistics.\nSignals: SIGHUP reloads, SIGUSR1 reopens access logs, SIGTERM drains and exits.\nEnvironment: GOGC (default 400 here; Go's own default is 100).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(os.Stderr, "hopwatch-proxy: -c FILE is required")
		fs.Usage()
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "hopwatch-proxy: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(os.Stderr, "hopwatch-proxy: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(handler)

	if *checkOnly {
		if _, err := config.Load(*configPath); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s: configuration OK\n", *configPath)
		return 0
	}

	srv, err := proxy.New(*configPath, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "hopwatch-proxy: %v\n", err)
		return 1
	}
	cfg := srv.ConfigDump().(*config.Config)
	if cfg.Lifecycle.WatchConfig == nil || *cfg.Lifecycle.WatchConfig {
		go srv.WatchConfig(ctx, *watchEvery)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			if err := srv.Reload(ctx); err != nil {
				log.Error("reload rejected; the previous configuration keeps serving", "path", *configPath, "err", err)
			}
		case syscall.SIGUSR1:
			srv.ReopenLogs()
		default:
			log.Info("shutting down", "signal", sig.String())
			// A second SIGTERM or SIGINT skips the rest of the drain. SIGHUP
			// and SIGUSR1 must not: logrotate sends SIGUSR1 on its own
			// schedule, and it used to end the drain early and refuse the
			// requests the drain exists to serve.
			dctx, dcancel := context.WithCancel(ctx)
			go func() {
				for sig := range sigs {
					switch sig {
					case syscall.SIGUSR1:
						srv.ReopenLogs()
					case syscall.SIGHUP:
						log.Info("reload ignored while draining")
					default:
						dcancel()
						return
					}
				}
			}()
			srv.Shutdown(dctx)
			dcancel()
			log.Info("stopped")
			return 0
		}
	}
	return 0
}
