package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcCase is the grpc mode's only case.
const grpcCase = "gRPC unary (grpc.health.v1.Health/Check)"

// grpcMaxCalls bounds one load run by count as well as by time.
const grpcMaxCalls = 20_000_000

func grpcSpec() modeSpec {
	return modeSpec{
		Heading: "## hopwatch-proxy vs nginx: gRPC unary",
		peers:   nginxAndHopwatch,
		tweak: func(h *harness, d *configData) (err error) {
			d.GRPCUpstream = h.grpcUpstream
			d.GRPCListen, err = freeLoopbackAddr()
			return err
		},
		measure:  measureGRPC,
		describe: describeGRPC,
		columns:  []column{errorsColumn, cpuColumn},
	}
}

func describeGRPC(h *harness) string {
	return fmt.Sprintf("The upstream is `bench/proxy/upstream -grpc`, grpc-go's standard health service on loopback (HTTP/2 with prior knowledge); "+
		"each proxy listens with h2c only and forwards every call over HTTP/2 to it: nginx with `grpc_pass grpc://…` to an upstream block with `keepalive 256`, "+
		"hopwatch-proxy with a `protocol: h2c` cluster. The load is a Go loop in the harness (grpc-go %s): %d client connections, %d goroutines per connection each calling `Health/Check` "+
		"(a unary call of a few bytes each way) back to back for %v after a %v warm-up, at most %d calls; an error is any call that did not return SERVING.",
		grpc.Version, h.o.h2Conns, h.o.h2Streams, h.o.duration, h.o.warmup, grpcMaxCalls)
}

func measureGRPC(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error) {
	target := r.d.GRPCListen
	if h.o.warmup > 0 {
		if _, err := grpcLoad(ctx, target, h.o.h2Conns, h.o.h2Streams, h.o.warmup); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	s, err := timed(r, func() (modeSample, error) {
		return grpcLoad(ctx, target, h.o.h2Conns, h.o.h2Streams, h.o.duration)
	})
	if err != nil {
		return nil, err
	}
	if s.Requests == 0 {
		return nil, fmt.Errorf("%s: %w", grpcCase, errNoRequests)
	}
	return []modeSample{s}, nil
}

// grpcLoad calls Health/Check from perConn goroutines on each of conns
// connections to target until d has passed or grpcMaxCalls were made. It
// fails only when no connection can be made; failed calls are counted.
func grpcLoad(ctx context.Context, target string, conns, perConn int, d time.Duration) (modeSample, error) {
	clients := make([]healthpb.HealthClient, conns)
	for i := range clients {
		// Each NewClient is its own HTTP/2 connection.
		cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return modeSample{}, fmt.Errorf("grpc client for %s: %w", target, err)
		}
		defer cc.Close()
		clients[i] = healthpb.NewHealthClient(cc)
	}
	// Calls in flight at the end complete: cutting them off would count
	// them as failures.
	end := time.Now().Add(d)
	var calls, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clients {
		for range perConn {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(end) && calls.Add(1) <= grpcMaxCalls {
					callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
					resp, err := c.Check(callCtx, &healthpb.HealthCheckRequest{})
					cancel()
					if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						failed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := min(calls.Load(), grpcMaxCalls)
	return modeSample{Case: grpcCase, RPS: float64(n) / elapsed.Seconds(), Requests: n, Errors: failed.Load()}, nil
}
