package cluster

import (
	"context"
	"net/netip"
)

// Resolver looks up the addresses of a host name. *net.Resolver satisfies
// it, and net.DefaultResolver is the default; tests inject their own to
// change answers between refreshes.
type Resolver interface {
	// LookupNetIP returns the addresses of host. network is "ip", "ip4" or
	// "ip6"; strict_dns asks for "ip" (both families).
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}
