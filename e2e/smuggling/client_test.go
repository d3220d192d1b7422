package smuggling

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// target is a proxy under test with its two listeners, the origin it
// routes to and the canary it must never reach.
type target struct {
	name string
	// plain serves HTTP/1.1 and h2c; tls serves HTTP/1.1 and h2 by ALPN.
	// h2c is the plaintext address for HTTP/2 with prior knowledge (nginx
	// needs a listener of its own for it).
	plain, tls, h2c string
	pool            *x509.CertPool
	origin          *origin
	canary          *canary
}

// listeners are the two ways into a target every row is run on.
var listeners = []string{"plain", "tls"}

// clientAddr is the address the probes dial from: 127.0.0.2 is loopback
// but not internal in Envoy's sense (only 127.0.0.1 is), so the proxy
// treats the probes as external clients.
var clientAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// dial opens a connection to the listener; proto is the ALPN protocol to
// ask for on TLS ("http/1.1" or "h2").
func (tg *target) dial(listener, proto string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: clientAddr, Timeout: 3 * time.Second}
	addr := tg.plain
	if listener == "plain" && proto == "h2" {
		addr = tg.h2c
	}
	if listener == "plain" {
		return d.Dial("tcp", addr)
	}
	c, err := tls.DialWithDialer(d, "tcp", tg.tls, &tls.Config{RootCAs: tg.pool, ServerName: "localhost", NextProtos: []string{proto}})
	if err != nil {
		return nil, err
	}
	if got := c.ConnectionState().NegotiatedProtocol; got != proto && !(proto == "http/1.1" && got == "") {
		c.Close()
		return nil, fmt.Errorf("ALPN %q negotiated, asked for %q", got, proto)
	}
	return c, nil
}

// result is what one probe on one listener observed.
type result struct {
	probe    probe
	listener string
	// observed is a short account of the exchange: the answer, whether
	// the connection closed, what reached the origin.
	observed string
	// violations break an invariant: a smuggled or injected request, an
	// ambiguous frame at the origin, a desync, a canary contact, a
	// follow-up that got someone else's answer, a bypassed deny route.
	violations []string
	// mismatches are answers other than the one hopwatch is required to
	// give (a 200 where the request must be refused, a 501 for a 400).
	mismatches []string
	// err is a harness failure (the proxy could not be reached at all).
	err error
}

// exchange is what the client saw on the probe's connection.
type exchange struct {
	status int    // the first final status, 0 when none arrived
	finals int    // final responses read
	later  []int  // the statuses of final responses after the first
	closed bool   // the server closed the connection
	reset  string // HTTP/2: RST_STREAM or GOAWAY error code
	note   string // anything else worth reporting
}

// run sends the probe on one listener of tg and checks every invariant.
func (tg *target) run(p probe, listener string, seq int) result {
	e := env{id: fmt.Sprintf("%s-%s-%d", tg.name, listener, seq), canary: tg.canary.addr()}
	r := result{probe: p, listener: listener}
	var ex exchange
	var err error
	if p.h2 != nil {
		ex, err = tg.h2Exchange(listener, p.h2(e))
	} else {
		ex, err = tg.h1Exchange(listener, p.h1(e))
	}
	if err != nil {
		r.err = err
		return r
	}
	if want := max(p.responses, 1); ex.finals > want {
		r.violations = append(r.violations, fmt.Sprintf("%d responses to %d request(s): a hidden request was answered", ex.finals, want))
	}
	if msg := tg.followUp(listener, e.id+"f"); msg != "" {
		r.violations = append(r.violations, msg)
	}
	time.Sleep(300 * time.Millisecond) // let late bytes reach the origin
	reqs, anoms := tg.origin.forProbe(e.id)
	for _, q := range reqs {
		r.violations = append(r.violations, q.problems...)
	}
	r.violations = append(r.violations, anoms...)
	for _, c := range tg.canary.contacts() {
		if strings.Contains(c, e.id) {
			r.violations = append(r.violations, fmt.Sprintf("the canary was contacted: %q", c))
		}
	}
	if p.check != nil {
		r.violations = append(r.violations, p.check(e, reqs)...)
	}
	switch p.kind {
	case serve:
		if ex.status != 200 || len(reqs) != 1 {
			r.mismatches = append(r.mismatches, fmt.Sprintf("want 200 from the origin, which sees the request once; got %s", ex.describe()))
		}
	case reject, badBody:
		if n := probeRequests(reqs); p.kind == reject && n > 0 {
			r.mismatches = append(r.mismatches, fmt.Sprintf("the proxy must refuse the request itself; the origin got it %d time(s)", n))
		}
		if p.kind == badBody && len(reqs) > 1 {
			r.violations = append(r.violations, fmt.Sprintf("one request arrived at the origin %d times", len(reqs)))
		}
		switch {
		case p.h2 != nil && (ex.status >= 200 && ex.status < 300):
			r.mismatches = append(r.mismatches, fmt.Sprintf("want a reset or a 4xx, got %s", ex.describe()))
		case p.h2 != nil && ex.reset == "" && !p.allowed(ex.status):
			r.mismatches = append(r.mismatches, fmt.Sprintf("want a reset or a 4xx, got %s", ex.describe()))
		case p.h2 == nil && !p.allowed(ex.status):
			r.mismatches = append(r.mismatches, fmt.Sprintf("want %s, got %s", p.wantStatus(), ex.describe()))
		case p.h2 == nil && !ex.closed && !p.keepOpen:
			r.mismatches = append(r.mismatches, fmt.Sprintf("want the connection closed after %d, it stayed open", ex.status))
		}
	}
	r.observed = ex.describe() + fmt.Sprintf("; origin got %d", len(reqs))
	return r
}

func (p probe) wantStatus() string {
	if len(p.statuses) == 0 {
		return "a 4xx"
	}
	s := make([]string, len(p.statuses))
	for i, v := range p.statuses {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, " or ")
}

func (ex exchange) describe() string {
	var parts []string
	switch {
	case ex.reset != "":
		parts = append(parts, ex.reset)
		if ex.status != 0 {
			parts = append(parts, fmt.Sprintf("after %d", ex.status))
		}
	case ex.status == 0:
		parts = append(parts, "no response")
	default:
		s := fmt.Sprint(ex.status)
		for _, l := range ex.later {
			s += fmt.Sprintf(" then %d", l)
		}
		parts = append(parts, s)
	}
	if ex.reset == "" {
		if ex.closed {
			parts = append(parts, "closed")
		} else {
			parts = append(parts, "open")
		}
	}
	if ex.note != "" {
		parts = append(parts, ex.note)
	}
	return strings.Join(parts, ", ")
}

// h1Exchange writes the steps with a pause between them, then reads every
// response the server sends: the first may take 4 s (a proxy that waits
// for its route timeout), later ones are awaited 500 ms.
func (tg *target) h1Exchange(listener string, steps [][]byte) (exchange, error) {
	var ex exchange
	c, err := tg.dial(listener, "http/1.1")
	if err != nil {
		return ex, err
	}
	defer c.Close()
	for i, s := range steps {
		if i > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(s); err != nil {
			ex.note = "the server stopped reading"
			break
		}
	}
	br := bufio.NewReader(c)
	deadline := time.Now().Add(4 * time.Second)
	for ex.finals < 4 {
		_ = c.SetReadDeadline(deadline)
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				ex.closed = true
			}
			return ex, nil
		}
		start, _ := br.Peek(min(br.Buffered(), 40))
		start = bytes.Clone(start)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			ex.note = fmt.Sprintf("a response without a status line: %q", start)
			ex.finals++
			return ex, nil
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == 100 || res.StatusCode == 102 || res.StatusCode == 103 {
			continue
		}
		ex.finals++
		if ex.status == 0 {
			ex.status = res.StatusCode
		} else {
			ex.later = append(ex.later, res.StatusCode)
		}
		if res.StatusCode == 101 {
			ex.note = "upgraded"
			return ex, nil
		}
		deadline = time.Now().Add(500 * time.Millisecond)
	}
	return ex, nil
}

// followUp sends a plain GET on a fresh connection and checks that the
// answer is the origin's answer to that very request.
func (tg *target) followUp(listener, id string) string {
	c, err := tg.dial(listener, "http/1.1")
	if err != nil {
		return "follow-up: " + shortErr(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(4 * time.Second))
	if _, err := io.WriteString(c, "GET /followup?p="+id+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return "follow-up: " + shortErr(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "follow-up on a fresh connection got no response: " + shortErr(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := "origin GET /followup?p=" + id + "\n"; res.StatusCode != 200 || string(body) != want {
		return fmt.Sprintf("follow-up on a fresh connection got %d %q, want 200 %q", res.StatusCode, clip(body, 60), want)
	}
	return ""
}

// h2Exchange sends one request as raw frames on stream 1 and reads until
// the stream ends, is reset, or the connection goes away.
func (tg *target) h2Exchange(listener string, req h2req) (exchange, error) {
	var ex exchange
	c, err := tg.dial(listener, "h2")
	if err != nil {
		return ex, err
	}
	defer c.Close()
	if listener == "plain" {
		req.fields = slices.Clone(req.fields)
		for i := range req.fields {
			if req.fields[i].Name == ":scheme" {
				req.fields[i].Value = "http"
			}
		}
	}
	_ = c.SetDeadline(time.Now().Add(4 * time.Second))
	fr := http2.NewFramer(c, c)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range req.fields {
		_ = enc.WriteField(f)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return ex, err
	}
	if err := fr.WriteSettings(); err != nil {
		return ex, err
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: req.data == nil}); err != nil {
		ex.note = "write failed: " + shortErr(err)
	}
	if req.data != nil {
		if err := fr.WriteData(1, true, req.data); err != nil {
			ex.note = "write failed: " + shortErr(err)
		}
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			ex.closed = true
			if ex.reset == "" && ex.status == 0 {
				ex.reset = "connection closed"
			}
			return ex, nil
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, hf := range fields {
				if hf.Name == ":status" {
					var s int
					fmt.Sscan(hf.Value, &s)
					if s >= 200 && ex.status == 0 {
						ex.status = s
						ex.finals++
					}
				}
			}
			if f.StreamEnded() {
				return ex, nil
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return ex, nil
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				ex.reset = "RST_STREAM " + f.ErrCode.String()
				return ex, nil
			}
		case *http2.GoAwayFrame:
			ex.reset = "GOAWAY " + f.ErrCode.String()
			return ex, nil
		}
	}
}

func shortErr(err error) string {
	s := err.Error()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	return s
}

// runAll runs every row on both listeners of tg, eight at a time, and
// returns the results in table order.
func (tg *target) runAll() []result {
	type job struct {
		p        probe
		listener string
		i        int
	}
	rows := append(slices.Clone(h1Probes), h2Probes...)
	results := make([]result, len(rows)*len(listeners))
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results[j.i] = tg.run(j.p, j.listener, j.i)
			}
		}()
	}
	for i, p := range rows {
		for k, l := range listeners {
			jobs <- job{p: p, listener: l, i: i*len(listeners) + k}
		}
	}
	close(jobs)
	wg.Wait()
	return results
}

// probeRequests counts the requests that are the probe's own, leaving out
// hidden ones (reported as violations of their own).
func probeRequests(reqs []originReq) int {
	n := 0
	for _, r := range reqs {
		if !strings.Contains(r.target, "smuggled") {
			n++
		}
	}
	return n
}
