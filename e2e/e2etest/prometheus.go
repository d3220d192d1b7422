package e2etest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PrometheusFile is a file StartPrometheus writes beside prometheus.yml,
// such as a rule file the config names.
type PrometheusFile struct {
	// Name is the file's name, relative to the config's directory.
	Name string
	// Text is the file's content.
	Text string
}

// StartPrometheus runs the real Prometheus on a free loopback port with
// config (a prometheus.yml), its storage in a temporary directory, and
// waits until it is ready. files are written beside the config. It
// returns the process and its base URL.
func StartPrometheus(t testing.TB, config string, files ...PrometheusFile) (*Process, string) {
	t.Helper()
	return StartPrometheusWithFlags(t, nil, config, files...)
}

// StartPrometheusWithFlags is StartPrometheus with extra command-line
// flags, such as --enable-feature=exemplar-storage.
func StartPrometheusWithFlags(t testing.TB, flags []string, config string, files ...PrometheusFile) (*Process, string) {
	t.Helper()
	bin := PinnedBin(t, "prometheus")
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	for _, f := range append(files, PrometheusFile{Name: "prometheus.yml", Text: config}) {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := FreeAddr(t)
	args := append([]string{"--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr, "--log.level=warn"}, flags...)
	p := StartProcess(t, "prometheus", nil, bin, args...)
	u := "http://" + addr
	p.WaitFor(t, "prometheus ready", 60*time.Second, func() error { return HTTPOK(u + "/-/ready") })
	return p, u
}
