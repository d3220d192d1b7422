package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Endpoint weight bounds, as in config.Endpoint.
const (
	defaultWeight = 1
	maxWeight     = 128
)

// endpoint is a validated config.Endpoint.
type endpoint struct {
	// hostname is the configured "host:port".
	hostname string
	// host is the host part: an IP address or a DNS name.
	host string
	port uint16
	// ip is set when host is an IP address, which needs no resolution.
	ip     netip.Addr
	weight int
	zone   string
	canary bool
}

// parseEndpointAddress splits "host:port" and checks both parts. host is an
// IP address (IPv6 in brackets) or a DNS name; port is 1–65535.
func parseEndpointAddress(addr string) (host string, port uint16, ip netip.Addr, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, netip.Addr{}, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, netip.Addr{}, fmt.Errorf("%q: port %q is not a number in 1-65535", addr, p)
	}
	if h == "" {
		return "", 0, netip.Addr{}, fmt.Errorf("%q: the host is empty", addr)
	}
	if a, perr := netip.ParseAddr(h); perr == nil {
		return h, uint16(n), a.Unmap(), nil
	}
	if err := checkDNSName(h); err != nil {
		return "", 0, netip.Addr{}, fmt.Errorf("%q: %w", addr, err)
	}
	return h, uint16(n), netip.Addr{}, nil
}

// checkDNSName accepts what a resolver can look up: dot-separated labels of
// letters, digits, '-' and '_' (service names use it), 1–63 bytes each,
// 253 bytes in all, with an optional trailing dot, and a last label that is
// not all digits.
func checkDNSName(name string) error {
	trimmed := strings.TrimSuffix(name, ".")
	if len(trimmed) == 0 || len(trimmed) > 253 {
		return fmt.Errorf("host %q is not a valid DNS name (1-253 bytes)", name)
	}
	// An all-numeric last label is a mistyped IP address such as 10.0.0.256
	// (RFC 3696 rules such top-level domains out); resolvers disagree on
	// what to do with it, so say so here.
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name (its last label is numeric)", name)
	}
	for label := range strings.SplitSeq(trimmed, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid DNS name (empty or over-long label)", name)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not a valid DNS name (label %q starts or ends with '-')", name, label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isDNSByte(c) {
				return fmt.Errorf("host %q is not a valid DNS name (byte %q not allowed)", name, c)
			}
		}
	}
	return nil
}

// parseEndpoints validates a cluster's endpoints. A static cluster needs IP
// addresses; host names need strict_dns.
func parseEndpoints(cfg *config.Cluster, needIP bool) ([]endpoint, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("endpoints: at least one endpoint is required")
	}
	eps := make([]endpoint, 0, len(cfg.Endpoints))
	for i, e := range cfg.Endpoints {
		host, port, ip, err := parseEndpointAddress(e.Address)
		if err != nil {
			return nil, fmt.Errorf("endpoints[%d].address: %w", i, err)
		}
		if needIP && !ip.IsValid() {
			return nil, fmt.Errorf("endpoints[%d].address: %q: a static cluster needs an IP address (use type strict_dns for host names)", i, e.Address)
		}
		w := e.Weight
		switch {
		case w == 0:
			w = defaultWeight
		case w < 1 || w > maxWeight:
			return nil, fmt.Errorf("endpoints[%d].weight: %d is out of range (1-%d; default %d)", i, e.Weight, maxWeight, defaultWeight)
		}
		eps = append(eps, endpoint{
			hostname: e.Address, host: host, port: port, ip: ip,
			weight: w, zone: e.Zone, canary: e.Canary,
		})
	}
	return eps, nil
}

func isDNSByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
