package e2etest_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// TestHarness runs the real proxy in front of a real test upstream and
// checks every harness call the scenarios rely on, so that a broken
// harness fails here rather than as a confusing scenario failure.
func TestHarness(t *testing.T) {
	up := e2etest.StartUpstream(t, "alpha")
	in := &e2etest.Ingress{
		AccessLog: true,
		Routes: `
- match: {prefix: /}
  route: {cluster: backend}
`,
		Clusters: `
- name: backend
  endpoints: ` + e2etest.Upstreams{up}.Endpoints(nil),
	}
	p := e2etest.StartIngress(t, in)

	get := func() (int, string) {
		res, err := http.Get(in.URL("/x"))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "alpha" {
		t.Fatalf("got %d %q, want 200 \"alpha\"", code, body)
	}
	up.Control(t, url.Values{"status": {"503"}})
	if code, _ := get(); code != 503 {
		t.Fatalf("after status=503 control: got %d", code)
	}
	if got := up.Stats(t); got.Served != 2 || !strings.HasPrefix(got.LastHost, "127.0.0.1:") {
		t.Fatalf("upstream stats %+v, want 2 served and the listener's host", got)
	}
	if got := p.Stat(t, "cluster.backend.upstream_rq_503"); got != 1 {
		t.Fatalf("cluster.backend.upstream_rq_503 = %d, want 1", got)
	}
	log := p.AccessLog(t, 2)
	if len(log) != 2 || log[1]["response_code"] != float64(503) {
		t.Fatalf("access log %v, want two lines, the second with response_code 503", log)
	}

	up.Kill()
	if code, _ := get(); code != 503 {
		t.Fatalf("with the upstream killed: got %d, want 503", code)
	}
	up.Restart(t)
	up.Control(t, url.Values{"status": {""}})
	if code, body := get(); code != 200 || body != "alpha" {
		t.Fatalf("after restart: got %d %q", code, body)
	}

	p.Reload(t, strings.Replace(p.ConfigText(t), "prefix: /", "prefix: /nope", 1))
	if code, _ := get(); code != 404 {
		t.Fatalf("after a reload that removes the route: got %d, want 404", code)
	}
}
