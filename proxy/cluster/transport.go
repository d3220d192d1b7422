package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Protocol names accepted in config.Cluster.Protocol.
const (
	protocolHTTP1 = "http1"
	protocolHTTP2 = "http2"
	protocolH2C   = "h2c"
)

// Defaults of config.Cluster, applied to zero values.
const (
	defaultConnectTimeout      = 5 * time.Second
	defaultMaxIdleConnsPerHost = 1024
	defaultIdleTimeout         = time.Hour
	// maxResponseHeaderBytes bounds an upstream's response headers, so that
	// a broken upstream cannot make the proxy buffer without limit.
	maxResponseHeaderBytes = 1 << 20
)

// pooledTransport is a cluster's upstream client: a RoundTripper with a
// connection pool that the cluster empties when it is closed.
type pooledTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// transportSpec is what building a cluster's transport decided.
type transportSpec struct {
	// transport is net/http's, used for HTTP/2 and h2c.
	transport *http.Transport
	// client is what the cluster's requests go through: transport, or for
	// http1 clusters hopwatch's own HTTP/1.1 client (http1.go).
	client pooledTransport
	scheme string
	// dialer makes every connection of transport and client; newCluster
	// gives it the cluster's circuit breaker.
	dialer *dialer
}

// newTransport builds the pooled transport of one cluster. The dialer's
// serverName callback resolves an address to its endpoint's host name for
// SNI and certificate verification.
func newTransport(cfg *config.Cluster, obs DialObserver, serverName func(string) string) (transportSpec, error) {
	connectTimeout, err := positiveOrDefault("connect_timeout", cfg.ConnectTimeout.D(), defaultConnectTimeout)
	if err != nil {
		return transportSpec{}, err
	}
	idleTimeout, err := positiveOrDefault("idle_timeout", cfg.IdleTimeout.D(), defaultIdleTimeout)
	if err != nil {
		return transportSpec{}, err
	}
	maxIdle := cfg.MaxIdleConnectionsPerHost
	switch {
	case maxIdle == 0:
		maxIdle = defaultMaxIdleConnsPerHost
	case maxIdle < 0:
		return transportSpec{}, fmt.Errorf("max_idle_connections_per_host: %d is negative (at least 1; default %d)", maxIdle, defaultMaxIdleConnsPerHost)
	}

	t := &http.Transport{
		// A proxy forwards the client's Accept-Encoding; it must not add its
		// own and decompress behind the client's back.
		DisableCompression: true,
		// Upstream traffic never goes through HTTP_PROXY from the environment.
		Proxy:                  nil,
		MaxIdleConns:           0, // no global cap; the per-host cap bounds the pool
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        idleTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	var protos http.Protocols
	var tlsCfg *tls.Config
	spec := transportSpec{transport: t, scheme: "http"}

	switch cfg.Protocol {
	case "", protocolHTTP1:
		protos.SetHTTP1(true)
		// An empty map is net/http's documented switch that keeps a TLS
		// connection on HTTP/1.1 even if the upstream offers h2.
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		if cfg.TLS != nil {
			if tlsCfg, err = newTLSConfig(cfg.TLS, []string{"http/1.1"}); err != nil {
				return transportSpec{}, err
			}
		}
	case protocolHTTP2:
		protos.SetHTTP2(true)
		// HTTP/2 to an upstream is negotiated by ALPN, so it needs TLS; no
		// tls block means TLS with the system roots and the endpoint's name.
		upstream := cfg.TLS
		if upstream == nil {
			upstream = &config.UpstreamTLS{}
		}
		if tlsCfg, err = newTLSConfig(upstream, []string{"h2"}); err != nil {
			return transportSpec{}, err
		}
	case protocolH2C:
		if cfg.TLS != nil {
			return transportSpec{}, fmt.Errorf("tls: not allowed with protocol %q (h2c is plaintext; use protocol http2 for HTTP/2 over TLS)", protocolH2C)
		}
		protos.SetUnencryptedHTTP2(true)
	default:
		return transportSpec{}, fmt.Errorf("protocol: unknown protocol %q (allowed: %s, %s, %s)", cfg.Protocol, protocolHTTP1, protocolHTTP2, protocolH2C)
	}
	t.Protocols = &protos

	d := newDialer(cfg.Name, connectTimeout, tlsCfg, cfg.Protocol == protocolHTTP2, obs, serverName)
	t.DialContext = d.DialContext
	dial := d.DialContext
	if tlsCfg != nil {
		t.DialTLSContext = d.DialTLSContext
		dial = d.DialTLSContext
		spec.scheme = "https"
	}
	spec.dialer = d
	// Requests through net/http's transport carry a ticket that tells the
	// dialer when they no longer wait for a connection (circuit_breaker.go).
	spec.client = ticketTransport{t}
	if cfg.Protocol == "" || cfg.Protocol == protocolHTTP1 {
		h1 := newHTTP1Transport(dial, maxIdle, idleTimeout)
		h1.handIdle, h1.connIdle = d.handIdle, d.connIdle
		spec.client = h1
	}
	return spec, nil
}

func positiveOrDefault(field string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < 0:
		return 0, fmt.Errorf("%s: %v is negative (a positive duration; default %v)", field, d, def)
	}
	return d, nil
}

// newTLSConfig builds the client TLS configuration of a cluster. ServerName
// stays empty unless sni is set: the dialer then fills in the endpoint's host
// name per connection.
func newTLSConfig(u *config.UpstreamTLS, nextProtos []string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         u.SNI,
		NextProtos:         nextProtos,
		InsecureSkipVerify: u.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", u.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
