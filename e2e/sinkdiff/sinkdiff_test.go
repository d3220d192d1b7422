package sinkdiff

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/e2e/sinkdiff/statsdproc"
)

// Binaries: the reference is statsd_exporter v0.31.0 built by `make tools`;
// the candidate is statsd-sink. SINKDIFF_CANDIDATE may point the candidate at
// another binary (for example statsd_exporter itself, to check the harness
// while the sink is being written).
func binaries(t *testing.T) (ref, cand string, selfCheck bool) {
	t.Helper()
	root := e2etest.RepoRoot(t)
	ref = filepath.Join(root, "bin", "statsd_exporter")
	if v := os.Getenv("SINKDIFF_REFERENCE"); v != "" {
		ref = fromRoot(root, v)
	}
	cand = filepath.Join(root, "bin", "statsd-sink")
	if v := os.Getenv("SINKDIFF_CANDIDATE"); v != "" {
		cand = fromRoot(root, v)
	}
	if err := statsdproc.CheckBinary(ref, "make tools"); err != nil {
		t.Fatal(err)
	}
	if err := statsdproc.CheckBinary(cand, "make bin/statsd-sink"); err != nil {
		t.Fatal(err)
	}
	ra, _ := filepath.EvalSymlinks(ref)
	ca, _ := filepath.EvalSymlinks(cand)
	return ref, cand, ra == ca
}

// fromRoot resolves a relative path against the repository root, where
// `make` runs, rather than against the test's package directory.
func fromRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

func TestSinkMatchesStatsdExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two receiver processes; skipped with -short")
	}
	ref, cand, selfCheck := binaries(t)
	if selfCheck {
		t.Logf("self-check: the candidate is the reference binary; required deliberate differences are not enforced")
	}
	cases, err := LoadCases("testdata/cases")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			runCase(t, c, ref, cand, selfCheck)
		})
	}
}

func runCase(t *testing.T, c *Case, refBin, candBin string, selfCheck bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(bin string) *statsdproc.Proc {
		p, err := statsdproc.Start(ctx, statsdproc.Config{Binary: bin, MappingFile: c.MappingFile})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		return p
	}
	ref, cand := start(refBin), start(candBin)

	refFams, err := deliver(ctx, ref, c)
	if err != nil {
		t.Fatalf("statsd_exporter: %v", err)
	}
	candFams, err := deliver(ctx, cand, c)
	if err != nil {
		t.Fatalf("statsd-sink: %v", err)
	}
	refSeries, candSeries := Flatten(refFams), Flatten(candFams)
	if len(refSeries) == 0 {
		t.Fatal("statsd_exporter exported no series: the corpus or the harness is broken")
	}
	t.Logf("%d series from statsd_exporter, %d from statsd-sink", len(refSeries), len(candSeries))
	if os.Getenv("SINKDIFF_DUMP") != "" {
		// For extending the corpus: show what the reference made of it.
		t.Logf("statsd_exporter series:\n%s", fingerprint(refFams))
	}

	table := Deliberates()
	observed := map[string]bool{}
	for _, d := range Compare(refSeries, candSeries) {
		entry, ok := explain(table, d)
		if !ok {
			t.Errorf("undocumented difference: %s", d)
			continue
		}
		observed[entry.ID] = true
		t.Logf("deliberate difference %q: %s", entry.ID, d)
		if err := entry.Check(refSeries[d.Key], candSeries[d.Key]); err != nil {
			t.Errorf("deliberate difference %q: %s: the sink's side is wrong: %v", entry.ID, d.Key, err)
		}
	}
	if selfCheck {
		return
	}
	for _, e := range table {
		if e.Required && usesFamilies(refSeries, candSeries, e.Families) && !observed[e.ID] {
			t.Errorf("deliberate difference %q was not observed: statsd-sink should differ here (%s)", e.ID, e.Reason)
		}
	}
}

// usesFamilies reports whether this case's corpus exercises any of the
// families, judged by either side exporting them or the case sending them.
func usesFamilies(ref, cand map[string]*Series, fams []string) bool {
	for _, m := range []map[string]*Series{ref, cand} {
		for _, s := range m {
			if contains(fams, s.Family) {
				return true
			}
		}
	}
	return false
}

func explain(table []Deliberate, d Difference) (Deliberate, bool) {
	for _, e := range table {
		if e.Applies(d) {
			return e, true
		}
	}
	return Deliberate{}, false
}

// deliver sends the case to p, waits until p has counted every line and its
// exposition has settled, and returns the final scrape.
func deliver(ctx context.Context, p *statsdproc.Proc, c *Case) (map[string]*dto.MetricFamily, error) {
	base, err := p.Lines(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("udp", p.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.UDPAddr, err)
	}
	defer conn.Close()
	for _, d := range c.Datagrams {
		if _, err := conn.Write(d); err != nil {
			return nil, fmt.Errorf("send datagram %q: %w", d, err)
		}
		// A short pause keeps either receiver's socket buffer from
		// overflowing; loss is still checked below, not assumed away.
		time.Sleep(time.Millisecond)
	}
	udpLines := float64(c.Lines() - len(c.TCPLines))
	if got, err := p.WaitLines(ctx, base+udpLines, 5*time.Second); err != nil {
		return nil, err
	} else if got < base+udpLines {
		return nil, fmt.Errorf("counted %v of %v UDP lines (%s)", got-base, udpLines, statsdproc.LinesTotal)
	}
	// TCP after UDP, so that the order of updates is the same on both.
	if len(c.TCPLines) > 0 {
		tc, err := net.Dial("tcp", p.TCPAddr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", p.TCPAddr, err)
		}
		_, err = tc.Write([]byte(strings.Join(c.TCPLines, "\n") + "\n"))
		tc.Close()
		if err != nil {
			return nil, fmt.Errorf("send TCP lines: %w", err)
		}
		want := base + float64(c.Lines())
		if got, err := p.WaitLines(ctx, want, 5*time.Second); err != nil {
			return nil, err
		} else if got < want {
			return nil, fmt.Errorf("counted %v of %v lines after TCP", got-base, float64(c.Lines()))
		}
	}
	return settle(ctx, p)
}

// settle scrapes until two consecutive scrapes agree on every non-self
// series: statsd_exporter applies events asynchronously (it flushes its event
// queue every 200 ms), so a counted line is not yet a visible sample.
func settle(ctx context.Context, p *statsdproc.Proc) (map[string]*dto.MetricFamily, error) {
	var prev string
	for i := 0; i < 40; i++ {
		time.Sleep(250 * time.Millisecond)
		fams, err := p.Scrape(ctx)
		if err != nil {
			return nil, err
		}
		fp := fingerprint(fams)
		if fp == prev {
			return fams, nil
		}
		prev = fp
	}
	return nil, fmt.Errorf("exposition did not settle within 10 s")
}

func fingerprint(fams map[string]*dto.MetricFamily) string {
	series := Flatten(fams)
	keys := make([]string, 0, len(series))
	for k, s := range series {
		keys = append(keys, k+" "+describe(s))
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}
