package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/periodic"
)

// maxLookupTimeout bounds one DNS lookup, so that a silent resolver delays a
// refresh but never stalls the loop.
const maxLookupTimeout = 10 * time.Second

// needsDNS reports whether the cluster has endpoints to resolve.
func (c *Cluster) needsDNS() bool {
	if c.resolver == nil {
		return false
	}
	for _, e := range c.eps {
		if !e.ip.IsValid() {
			return true
		}
	}
	return false
}

// startDNS starts the strict_dns loop and returns a channel closed after the
// first round of lookups, failed or not. The loop runs until close, not
// until ctx ends: a cluster carried over by a hot reload outlives the
// context it was built with. ctx contributes only its values.
func (c *Cluster) startDNS(ctx context.Context) <-chan struct{} {
	ready := make(chan struct{})
	if !c.needsDNS() {
		close(ready)
		return ready
	}
	ctx, c.stopDNS = context.WithCancel(context.WithoutCancel(ctx))
	c.dnsDone = make(chan struct{})
	go c.dnsLoop(ctx, ready)
	return ready
}

func (c *Cluster) dnsLoop(ctx context.Context, ready chan<- struct{}) {
	defer close(c.dnsDone)
	c.resolveAll(ctx)
	close(ready)
	periodic.Every(ctx, c.refresh, func(time.Time) { c.resolveAll(ctx) })
}

// resolveAll resolves every named endpoint concurrently and swaps in the new
// host set if an answer changed. An endpoint whose lookup fails keeps its
// last good addresses: a DNS outage must not empty a working cluster.
func (c *Cluster) resolveAll(ctx context.Context) {
	timeout := min(max(c.refresh, time.Second), maxLookupTimeout)
	var wg sync.WaitGroup
	answers := make([][]netip.Addr, len(c.eps))
	errs := make([]error, len(c.eps))
	for i, e := range c.eps {
		if e.ip.IsValid() {
			continue
		}
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			answers[i], errs[i] = c.lookup(lctx, e.host)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // closing; the answers may be cancellations
	}
	for i, e := range c.eps {
		if e.ip.IsValid() {
			continue
		}
		if errs[i] != nil {
			c.log.Warn("strict_dns resolution failed; keeping the last good addresses",
				"endpoint", e.hostname, "kept", len(c.resolved[i]), "error", errs[i])
			continue
		}
		c.resolved[i] = answers[i]
	}
	if added, removed := c.rebuildFromResolved(); added+removed > 0 {
		c.log.Info("strict_dns host set changed",
			"added", added, "removed", removed, "hosts", len(c.Hosts()))
	}
}

// lookup resolves host to a sorted, de-duplicated address list. An empty
// answer is an error: it is far more often a resolver hiccup than an
// intentional removal of every address.
func (c *Cluster) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", host, err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a.Unmap())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
