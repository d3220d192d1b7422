// Package statsdproc runs a StatsD-to-Prometheus receiver binary
// (prometheus/statsd_exporter or hopwatch's statsd-sink, which share their
// flags) as a child process on free loopback ports, and reads its metrics.
//
// It is shared by the differential test (e2e/sinkdiff) and the sink benchmark
// (bench/sink), so that both drive the two binaries in exactly the same way.
package statsdproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// LinesTotal is the self-metric both binaries keep for lines received; the
// sink keeps statsd_exporter's name so that existing alerts keep working.
const LinesTotal = "statsd_exporter_lines_total"

// readyProbe is a line that both binaries count as a received line but reject
// as malformed (it has no ':'), so it proves the UDP listener is up without
// creating a series.
const readyProbe = "statsdproc.ready.probe"

// Config says which binary to run and how.
type Config struct {
	// Binary is the path of statsd_exporter or statsd-sink.
	Binary string
	// MappingFile is passed as --statsd.mapping-config when not empty.
	MappingFile string
	// Args are extra flags appended after the listen flags.
	Args []string
	// StartTimeout bounds how long Start waits for readiness; 0 means 15 s.
	StartTimeout time.Duration
}

// Proc is a running receiver.
type Proc struct {
	// UDPAddr, TCPAddr and WebAddr are the loopback addresses it listens on.
	UDPAddr, TCPAddr, WebAddr string
	// MetricsURL is the URL of its /metrics page.
	MetricsURL string

	cmd    *exec.Cmd
	output *tailBuffer
	done   chan struct{}
	err    error // result of Wait, valid after done is closed
	client *http.Client
	once   sync.Once
}

// Start picks free loopback ports, starts the binary on them and waits until
// its UDP listener demonstrably counts lines. It retries a few times because a
// free port can be taken by someone else between choosing and binding it.
func Start(ctx context.Context, cfg Config) (*Proc, error) {
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("statsd receiver binary: %w", err)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := start(ctx, cfg)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, cfg Config) (*Proc, error) {
	udp, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	tcp, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	web, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	p := &Proc{
		UDPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(udp)),
		TCPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp)),
		WebAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(web)),
		output:  &tailBuffer{max: 16 << 10},
		done:    make(chan struct{}),
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	p.MetricsURL = "http://" + p.WebAddr + "/metrics"
	args := []string{
		"--statsd.listen-udp=" + p.UDPAddr,
		"--statsd.listen-tcp=" + p.TCPAddr,
		"--web.listen-address=" + p.WebAddr,
		"--web.telemetry-path=/metrics",
	}
	if cfg.MappingFile != "" {
		args = append(args, "--statsd.mapping-config="+cfg.MappingFile)
	}
	args = append(args, cfg.Args...)
	// Not CommandContext: the caller's context bounds startup only; Stop ends
	// the process so that it is always terminated the same way.
	p.cmd = exec.Command(cfg.Binary, args...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	// If this process dies without calling Stop, the kernel kills the child:
	// benchmarks and tests must never leave receivers behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cfg.Binary), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	rctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := p.waitReady(rctx); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s %v did not become ready: %w\n--- its output ---\n%s", filepath.Base(cfg.Binary), args, err, p.Output())
	}
	return p, nil
}

// waitReady sends the malformed probe line over UDP until the line counter
// moves, which proves both the HTTP and the UDP side are serving.
func (p *Proc) waitReady(ctx context.Context) error {
	conn, err := net.Dial("udp", p.UDPAddr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", p.UDPAddr, err)
	}
	defer conn.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited early: %w", p.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), lastErr)
		case <-tick.C:
		}
		// A write error (ECONNREFUSED from an earlier probe) only means the
		// socket is not bound yet.
		_, _ = conn.Write([]byte(readyProbe))
		fams, err := p.Scrape(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		n, ok := Value(fams, LinesTotal)
		if !ok {
			lastErr = fmt.Errorf("%s is not exported", LinesTotal)
			continue
		}
		if n > 0 {
			return nil
		}
		lastErr = fmt.Errorf("%s is still 0", LinesTotal)
	}
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and its Wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Output returns the tail of the process's combined stdout and stderr.
func (p *Proc) Output() string { return p.output.String() }

// Stop ends the process: SIGTERM, then SIGKILL after 3 s. It is idempotent.
func (p *Proc) Stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// ScrapeRaw fetches /metrics in the classic text format and returns the body.
func (p *Proc) ScrapeRaw(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL, nil)
	if err != nil {
		return nil, err
	}
	// Ask for text 0.0.4 explicitly: a receiver that negotiates OpenMetrics
	// or protobuf must still serve the classic format to this client.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", p.MetricsURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: read body: %w", p.MetricsURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s: %.200s", p.MetricsURL, resp.Status, body)
	}
	return body, nil
}

// Scrape fetches and parses /metrics.
func (p *Proc) Scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	body, err := p.ScrapeRaw(ctx)
	if err != nil {
		return nil, err
	}
	return Parse(body)
}

// Parse parses a text-format exposition with expfmt's TextParser, using the
// legacy name rules: a drop-in for statsd_exporter must only emit names that
// every Prometheus accepts.
func Parse(body []byte) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse exposition: %w", err)
	}
	return fams, nil
}

// Value returns the sum over all series of a counter or gauge family, and
// whether the family exists.
func Value(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, true
}

// Lines returns the receiver's count of received lines.
func (p *Proc) Lines(ctx context.Context) (float64, error) {
	fams, err := p.Scrape(ctx)
	if err != nil {
		return 0, err
	}
	n, ok := Value(fams, LinesTotal)
	if !ok {
		return 0, fmt.Errorf("%s: %s is not exported", p.MetricsURL, LinesTotal)
	}
	return n, nil
}

// WaitLines polls until the line counter reaches want, or until it has not
// moved for settle (then it returns the count it got, with no error: the
// caller decides whether a shortfall is loss or failure), or ctx ends.
func (p *Proc) WaitLines(ctx context.Context, want float64, settle time.Duration) (float64, error) {
	var last float64 = -1
	lastChange := time.Now()
	for {
		n, err := p.Lines(ctx)
		if err != nil {
			return 0, err
		}
		if n >= want {
			return n, nil
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= settle {
			return n, nil
		}
		if exited, werr := p.Exited(); exited {
			return n, fmt.Errorf("receiver exited: %w\n%s", werr, p.Output())
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free UDP port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, so that a chatty child
// cannot grow the parent's memory.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// ErrMissingBinary is wrapped by CheckBinary when a binary is absent.
var ErrMissingBinary = errors.New("binary not found")

// CheckBinary returns an error naming the make target that builds path when
// it does not exist or is not executable.
func CheckBinary(path, makeTarget string) error {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w; build it with `%s`", path, ErrMissingBinary, makeTarget)
	}
	return nil
}
