package e2etest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PrometheusBin returns the pinned Prometheus (bin/prometheus); a missing
// one fails the test, which needs a real Prometheus.
func PrometheusBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "bin", "prometheus")
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing: run `make tools` (it builds the Prometheus pinned in tools/prometheus)", bin)
	}
	return bin
}

// StartPrometheus runs the real Prometheus on a free loopback port with
// config (a prometheus.yml), its storage in a temporary directory, and
// waits until it is ready. It returns the process and its base URL.
func StartPrometheus(t testing.TB, config string) (*Process, string) {
	t.Helper()
	bin := PrometheusBin(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	p := StartProcess(t, "prometheus", nil, bin, "--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	u := "http://" + addr
	p.WaitFor(t, "prometheus ready", 60*time.Second, func() error { return HTTPOK(u + "/-/ready") })
	return p, u
}
