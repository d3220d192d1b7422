package e2etest

import (
	"fmt"
	"strings"
	"testing"
)

// Ingress is the proxy config most scenarios run: an admin server and one
// listener, "ingress" with stat prefix ingress, whose virtual host "all"
// serves every domain. Head, Routes and Clusters are YAML written from
// column 0; Config indents them into place.
type Ingress struct {
	// Head holds top-level keys written before admin (node, lifecycle,
	// cluster_manager), or is empty.
	Head string
	// Routes is the virtual host's list of routes ("- match: …" items).
	Routes string
	// Clusters is the list of clusters ("- name: …" items).
	Clusters string
	// AccessLog keeps the listener's default access log: JSON lines on the
	// proxy's stdout, which Proxy.AccessLog reads. Without it the listener
	// logs nothing (access_log: []), so that a load of thousands of
	// requests writes no log.
	AccessLog bool
	// Admin and Listen are the admin server's and the listener's
	// addresses; StartIngress gives the empty ones a free port.
	Admin, Listen string
}

// Config renders the proxy config.
func (c *Ingress) Config() string {
	var b strings.Builder
	b.WriteString(indent(c.Head, 0))
	fmt.Fprintf(&b, "admin: {address: %s}\nlisteners:\n  - name: ingress\n    address: %s\n    stat_prefix: ingress\n", c.Admin, c.Listen)
	if !c.AccessLog {
		b.WriteString("    access_log: []\n")
	}
	b.WriteString("    virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:\n")
	b.WriteString(indent(c.Routes, 10))
	b.WriteString("clusters:\n")
	b.WriteString(indent(c.Clusters, 2))
	return b.String()
}

// URL is the http URL of path on the listener.
func (c *Ingress) URL(path string) string { return "http://" + c.Listen + path }

// StartIngress gives c's empty addresses a free port each and starts the
// proxy on c.Config(). Change c and pass c.Config() to Proxy.Reload to
// hot-reload it.
func StartIngress(t testing.TB, c *Ingress) *Proxy {
	t.Helper()
	if c.Admin == "" {
		c.Admin = FreeAddr(t)
	}
	if c.Listen == "" {
		c.Listen = FreeAddr(t)
	}
	return StartProxy(t, c.Config())
}

// indent returns s without its leading newline, every non-empty line
// indented by n spaces and the last one ended by a newline.
func indent(s string, n int) string {
	s = strings.TrimPrefix(s, "\n")
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(pad)
		}
		b.WriteString(line)
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteByte('\n')
	}
	return b.String()
}
