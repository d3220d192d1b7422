package main

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// runGRPC is the upstream of the benchmark's grpc mode: grpc-go's standard
// health service (grpc.health.v1.Health/Check, a unary call with a few
// bytes each way, SERVING for the empty service name) over HTTP/2 with
// prior knowledge, as a proxy's h2c cluster or nginx's grpc_pass reaches
// it. The health service is used because its generated code ships with
// grpc-go: the benchmark needs no .proto of its own.
func runGRPC(ctx context.Context, addr string, out io.Writer) error {
	ln, err := listenAndAnnounce(addr, out)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve gRPC: %w", err)
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	}
}
