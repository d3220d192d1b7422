package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	rlpb "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Client is a long-lived gRPC client of envoy.service.ratelimit.v3's
// RateLimitService, over HTTP/2 without TLS (h2c), balancing round robin
// over the service cluster's endpoints. Calls fail fast while no endpoint
// is connected (gRPC's default, not wait-for-ready), so a dead service
// costs a request nothing beyond the failure mode.
type Client struct {
	conn *grpc.ClientConn
	rls  rlsv3.RateLimitServiceClient
}

// reconnectBackoff caps gRPC's reconnect backoff (its default grows to
// 120 s): a restarted service is used again within seconds.
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}

// Dial returns a client of the service at addrs (host:port each). It
// starts connecting at once, so that the first request does not pay for
// the connection within its (20 ms by default) timeout; it never blocks.
func Dial(addrs []string, connectTimeout time.Duration) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("ratelimit: the service cluster has no endpoints")
	}
	r := manual.NewBuilderWithScheme("hopwatch-ratelimit")
	state := resolver.State{}
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	conn, err := grpc.NewClient(r.Scheme()+":///ratelimit",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: max(connectTimeout, time.Second)}),
	)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	conn.Connect()
	return &Client{conn: conn, rls: rlsv3.NewRateLimitServiceClient(conn)}, nil
}

// ShouldRateLimit asks the service about descriptors in domain (one hit
// each, the service's default).
func (c *Client) ShouldRateLimit(ctx context.Context, domain string, descs []Descriptor) (*rlsv3.RateLimitResponse, error) {
	req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: make([]*rlpb.RateLimitDescriptor, len(descs))}
	for i, d := range descs {
		pd := &rlpb.RateLimitDescriptor{Entries: make([]*rlpb.RateLimitDescriptor_Entry, len(d))}
		for j, e := range d {
			pd.Entries[j] = &rlpb.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value}
		}
		req.Descriptors[i] = pd
	}
	return c.rls.ShouldRateLimit(ctx, req)
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }
