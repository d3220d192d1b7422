package e2etest_test

import (
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/config"
)

// TestIngressConfig checks that Ingress renders a config the proxy
// accepts, with each part in its place, with and without the access log.
func TestIngressConfig(t *testing.T) {
	ups := e2etest.Upstreams{{Name: "a1", Addr: "127.0.0.1:4001"}, {Name: "b1", Addr: "127.0.0.1:4002"}}
	for _, accessLog := range []bool{false, true} {
		in := &e2etest.Ingress{
			Head: "\nnode: {id: n, zone: a}\ncluster_manager: {local_cluster_name: self}\n",
			Routes: `
- match: {prefix: /x}
  route:
    cluster: c
    timeout: 5s
- match: {prefix: /}
  route: {cluster: self}
`,
			Clusters: `
- name: self
  endpoints: ` + ups.Endpoints(func(name string) string { return name[:1] }) + `
- name: c
  connect_timeout: 1s
  endpoints: ` + ups.Endpoints(nil),
			AccessLog: accessLog,
			Admin:     "127.0.0.1:9901",
			Listen:    "127.0.0.1:8080",
		}
		src := in.Config()
		c, err := config.Parse([]byte(src), "ingress.yaml")
		if err != nil {
			t.Fatalf("access log %v: %v\n%s", accessLog, err, src)
		}
		if c.Node.Zone != "a" || c.ClusterManager.LocalClusterName != "self" || c.Admin.Address != in.Admin {
			t.Errorf("head or admin lost: node %+v, cluster_manager %+v, admin %+v", c.Node, c.ClusterManager, c.Admin)
		}
		l := c.Listeners[0]
		if len(c.Listeners) != 1 || l.Name != "ingress" || l.Address != in.Listen || l.StatPrefix != "ingress" {
			t.Errorf("listeners %+v", c.Listeners)
		}
		if got := len(l.AccessLog) != 0; got != accessLog {
			t.Errorf("access log %v: the listener has %d access logs", accessLog, len(l.AccessLog))
		}
		vh := l.VirtualHosts[0]
		if vh.Name != "all" || strings.Join(vh.Domains, ",") != "*" || len(vh.Routes) != 2 || vh.Routes[0].Route.Cluster != "c" || vh.Routes[0].Route.Timeout.D().String() != "5s" {
			t.Errorf("virtual host %+v", vh)
		}
		if len(c.Clusters) != 2 || c.Clusters[0].Endpoints[1].Zone != "b" || c.Clusters[1].Endpoints[1].Address != "127.0.0.1:4002" || c.Clusters[1].ConnectTimeout.D().String() != "1s" {
			t.Errorf("clusters %+v", c.Clusters)
		}
	}
}
