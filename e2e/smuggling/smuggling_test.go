// Package smuggling attacks the real hopwatch-proxy binary the way a
// hostile client at the edge would: request smuggling (CL.TE, TE.CL,
// TE.TE and their obfuscations), malformed framing, header injection
// through HTTP/2-to-HTTP/1 downgrade, h2c upgrade tunnels, path traversal
// past a deny route, hop-by-hop and x-envoy-* headers, slowloris and
// HTTP/2 rapid reset. Every row runs on a plaintext and a TLS listener,
// against a raw-socket origin that records exactly what arrived and a
// canary that no route points at.
//
// `go test` checks hopwatch. With SMUGGLING_PEERS=1, TestPeers runs the
// same rows against nginx and HAProxy and writes the comparison table
// into docs/security.md.
package smuggling

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestSmuggling runs every probe on both of hopwatch's listeners and
// fails on any broken invariant or any answer other than the required one.
func TestSmuggling(t *testing.T) {
	tg, _ := startHopwatch(t)
	results := tg.runAll()
	for _, r := range results {
		t.Run(r.probe.name+"/"+r.listener, func(t *testing.T) {
			if r.err != nil {
				t.Fatalf("%s: %v", r.listener, r.err)
			}
			for _, v := range r.violations {
				t.Errorf("invariant broken: %s (observed: %s)", v, r.observed)
			}
			for _, m := range r.mismatches {
				t.Errorf("%s probe: %s", r.probe.kind, m)
			}
			t.Logf("observed: %s", r.observed)
		})
	}
	checkGlobal(t, tg)
}

// checkGlobal fails on canary contacts and on origin bytes that no probe
// can be blamed for.
func checkGlobal(t *testing.T, tg *target) {
	t.Run("canary never contacted", func(t *testing.T) {
		for _, c := range tg.canary.contacts() {
			t.Errorf("the canary, which no route points at, was contacted: %q", c)
		}
	})
	t.Run("origin saw nothing unattributed", func(t *testing.T) {
		for _, a := range tg.origin.unattributed() {
			t.Error(a)
		}
	})
}

// TestSlowloris opens a few hundred connections per listener that send
// one byte of a request head per second: the read-header timeout must
// close each of them, while a normal client is served within 2 s.
func TestSlowloris(t *testing.T) {
	tg, _ := startHopwatch(t)
	for _, l := range listeners {
		t.Run(l, func(t *testing.T) { slowloris(t, tg, l, 200) })
	}
}

func slowloris(t *testing.T, tg *target, listener string, n int) {
	const limit = 12 // bytes, one a second: the bound on each connection
	head := []byte("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	var wg sync.WaitGroup
	lifetimes := make([]time.Duration, n)
	closedByProxy := make([]bool, n)
	var dialErrs atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Opened over a second rather than at once: the test is about
			// slow clients, not about a burst of TLS handshakes.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(n))
			start := time.Now()
			c, err := tg.dial(listener, "http/1.1")
			if err != nil {
				dialErrs.Add(1)
				return
			}
			defer c.Close()
			closed := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, c)
				close(closed)
			}()
			for b := 0; b < limit; b++ {
				if _, err := c.Write(head[b : b+1]); err != nil {
					break
				}
				select {
				case <-closed:
					lifetimes[i], closedByProxy[i] = time.Since(start), true
					return
				case <-time.After(time.Second):
				}
			}
			select {
			case <-closed:
				lifetimes[i], closedByProxy[i] = time.Since(start), true
			case <-time.After(time.Second):
				lifetimes[i] = time.Since(start)
			}
		}()
	}
	// A normal client on fresh connections, every 250 ms while the slow
	// ones are open.
	done := make(chan struct{})
	var worst time.Duration
	var served int
	var failures []string
	go func() {
		defer close(done)
		until := time.Now().Add(readHeaderTimeout + 2*time.Second)
		for i := 0; time.Now().Before(until); i++ {
			start := time.Now()
			if msg := tg.followUp(listener, fmt.Sprintf("slowloris-%s-%d", listener, i)); msg != "" {
				failures = append(failures, msg)
			} else {
				served++
			}
			worst = max(worst, time.Since(start))
			time.Sleep(250 * time.Millisecond)
		}
	}()
	wg.Wait()
	<-done
	if d := dialErrs.Load(); d > 0 {
		t.Errorf("%d of %d slow connections could not be opened", d, n)
	}
	var longest time.Duration
	open := 0
	for i := range n {
		if !closedByProxy[i] {
			open++
		}
		longest = max(longest, lifetimes[i])
	}
	if open > 0 {
		t.Errorf("%d of %d slow connections were still open after %d bytes in %d s", open, n, limit, limit)
	}
	// Generous against a loaded machine, tight enough to tell a deadline
	// from accept from one that restarts after protocol sniffing.
	if bound := readHeaderTimeout + 1500*time.Millisecond; longest > bound {
		t.Errorf("the slowest connection was closed %v after it was opened, want within read_header_timeout %v (+1.5 s)", longest.Round(10*time.Millisecond), readHeaderTimeout)
	}
	for _, f := range failures {
		t.Errorf("normal client during slowloris: %s", f)
	}
	if worst > 2*time.Second {
		t.Errorf("normal client took %v at worst during slowloris, want within 2s", worst.Round(time.Millisecond))
	}
	t.Logf("%d slow connections: closed after %v at most; normal client served %d times, %v at worst", n, longest.Round(10*time.Millisecond), served, worst.Round(time.Millisecond))
}

// TestRapidReset sends 10 000 HEADERS+RST_STREAM pairs on one HTTP/2
// connection (CVE-2023-44487): the proxy must live on, serve a normal
// client within 2 s, and forward under 10% of the cancelled streams.
func TestRapidReset(t *testing.T) {
	tg, proxy := startHopwatch(t)
	for _, l := range listeners {
		t.Run(l, func(t *testing.T) { rapidReset(t, tg, proxy, l) })
	}
}

func rapidReset(t *testing.T, tg *target, proxy *e2etest.Proxy, listener string) {
	const pairs = 10000
	c, err := tg.dial(listener, "h2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	scheme := "https"
	if listener == "plain" {
		scheme = "http"
	}
	id := "rapid-" + listener
	bw := bufio.NewWriterSize(c, 64<<10)
	fr := http2.NewFramer(bw, c)
	_, _ = bw.WriteString(http2.ClientPreface)
	_ = fr.WriteSettings()
	var goaway atomic.Value
	go func() { // drain whatever the server sends; note a GOAWAY
		rf := http2.NewFramer(io.Discard, c)
		for {
			f, err := rf.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway.Store(g.ErrCode.String())
			}
		}
	}()
	// A normal client, every 100 ms during the flood and for a second
	// after it.
	stop := make(chan struct{})
	done := make(chan struct{})
	var worst time.Duration
	var failures []string
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if msg := tg.followUp(listener, fmt.Sprintf("%s-normal-%d", id, i)); msg != "" {
				failures = append(failures, msg)
			}
			worst = max(worst, time.Since(start))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	sent := 0
	deadline := time.Now().Add(30 * time.Second)
	_ = c.SetWriteDeadline(deadline)
	for ; sent < pairs && time.Now().Before(deadline); sent++ {
		block.Reset()
		for _, f := range h2Fields("GET", "/rapid?p="+id) {
			if f.Name == ":scheme" {
				f.Value = scheme
			}
			_ = enc.WriteField(f)
		}
		stream := uint32(2*sent + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
			break
		}
		if err := fr.WriteRSTStream(stream, http2.ErrCodeCancel); err != nil {
			break
		}
		if sent%100 == 99 {
			if err := bw.Flush(); err != nil {
				break
			}
		}
	}
	_ = bw.Flush()
	time.Sleep(time.Second)
	close(stop)
	<-done
	reqs, _ := tg.origin.forProbe(id)
	g, _ := goaway.Load().(string)
	t.Logf("%d HEADERS+RST_STREAM pairs sent (GOAWAY: %q); the origin got %d of them; normal client %v at worst", sent, g, len(reqs), worst.Round(time.Millisecond))
	if len(reqs)*10 >= max(sent, 1) {
		t.Errorf("the origin got %d of %d cancelled streams, want under 10%%", len(reqs), sent)
	}
	for _, f := range failures {
		t.Errorf("normal client during the flood: %s", f)
	}
	if worst > 2*time.Second {
		t.Errorf("normal client took %v at worst during the flood, want within 2s", worst.Round(time.Millisecond))
	}
	res, err := http.Get("http://" + proxy.Admin + "/ready")
	if err != nil {
		t.Fatalf("the proxy is gone after the flood: %v", err)
	}
	res.Body.Close()
	if msg := tg.followUp(listener, id+"-after"); msg != "" {
		t.Errorf("after the flood: %s", msg)
	}
}

// TestPeers runs the probe table against hopwatch, nginx and HAProxy and
// writes it into docs/security.md. It runs only with SMUGGLING_PEERS=1
// (then a missing nginx or HAProxy fails it: `make test-deps` installs
// them); it reports the peers' answers and fails only when the harness
// does.
func TestPeers(t *testing.T) {
	if os.Getenv("SMUGGLING_PEERS") != "1" {
		t.Skip("comparison mode: set SMUGGLING_PEERS=1 to run nginx and HAProxy and rewrite the table in docs/security.md")
	}
	hop, _ := startHopwatch(t)
	targets := []*target{hop, startNginx(t), startHAProxy(t)}
	all := make([][]result, len(targets))
	for i, tg := range targets {
		all[i] = tg.runAll()
		for _, r := range all[i] {
			if r.err != nil {
				t.Errorf("%s %s %s: %v", tg.name, r.probe.name, r.listener, r.err)
			}
		}
	}
	table := renderTable(targets, all)
	t.Log("\n" + table)
	path := filepath.Join(e2etest.RepoRoot(t), "docs", "security.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- probe-table:begin -->\n", "<!-- probe-table:end -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q markers", path, strings.TrimSpace(begin), end)
	}
	out := append(append(append([]byte{}, doc[:i+len(begin)]...), table...), doc[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// renderTable writes one Markdown row per probe and one column per
// target and listener.
func renderTable(targets []*target, all [][]result) string {
	var b strings.Builder
	b.WriteString("| probe | expect |")
	for _, tg := range targets {
		for _, l := range listeners {
			fmt.Fprintf(&b, " %s %s |", tg.name, l)
		}
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" --- |", len(targets)*len(listeners)) + "\n")
	for row := 0; row < len(all[0]); row += len(listeners) {
		p := all[0][row].probe
		fmt.Fprintf(&b, "| %s | %s |", mdEscape(p.name), p.kind)
		for i := range targets {
			for k := range listeners {
				fmt.Fprintf(&b, " %s |", cell(all[i][row+k]))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// cell is ✔ (invariants held, the required answer), ~ (invariants held,
// another answer) or ✘ (an invariant broke), with what was observed.
func cell(r result) string {
	switch {
	case r.err != nil:
		return "error: " + mdEscape(r.err.Error())
	case len(r.violations) > 0:
		return "✘ " + mdEscape(r.observed) + " — " + mdEscape(clip([]byte(r.violations[0]), 64))
	case len(r.mismatches) > 0:
		return "~ " + mdEscape(r.observed)
	default:
		return "✔ " + mdEscape(r.observed)
	}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r", `\r`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return strings.ReplaceAll(s, "`", "'")
}
