package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	const h = sectionHeading
	sec := h + "\n\nnew body\n"
	tests := []struct {
		name, doc, want string
	}{
		{"empty doc", "", sec},
		{"missing section is appended", "# Benchmarks\n\nintro\n", "# Benchmarks\n\nintro\n\n" + sec},
		{"missing section, doc without newline", "# Benchmarks", "# Benchmarks\n\n" + sec},
		{"missing section, doc ends in blank line", "# B\n\n", "# B\n\n" + sec},
		{
			"section at end",
			"# B\n\n" + h + "\n\nold body\n",
			"# B\n\n" + sec,
		},
		{
			"section in the middle keeps the others",
			"# B\n\n## statsd-sink vs statsd_exporter\n\nsink numbers\n\n" + h + "\n\nold\n### detail\nmore old\n\n## Later\n\nkeep me\n",
			"# B\n\n## statsd-sink vs statsd_exporter\n\nsink numbers\n\n" + sec + "\n## Later\n\nkeep me\n",
		},
		{
			"heading inside a code fence is not a boundary",
			h + "\n\nold\n```\n## not a heading\n```\nold tail\n## Next\nx\n",
			sec + "\n## Next\nx\n",
		},
		{
			"our heading inside a fence elsewhere is not our section",
			"```\n" + h + "\n```\n",
			"```\n" + h + "\n```\n\n" + sec,
		},
		{
			"CRLF heading line",
			"# B\r\n" + h + "\r\nold\r\n## Next\r\n",
			"# B\r\n" + sec + "\n## Next\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := replaceSection(tc.doc, h, sec)
			if got != tc.want {
				t.Fatalf("replaceSection =\n%q\nwant\n%q", got, tc.want)
			}
			// Replacing twice changes nothing more: reruns do not pile up.
			if again := replaceSection(got, h, sec); again != got {
				t.Fatalf("second replace changed the doc:\n%q\nto\n%q", got, again)
			}
		})
	}
}

// FuzzReplaceSection checks the properties every rerun relies on: the new
// section is present, a second replacement is a no-op, and text before our
// heading survives.
func FuzzReplaceSection(f *testing.F) {
	f.Add("# Benchmarks\n\n## other\n\nx\n")
	f.Add("# B\n\n" + sectionHeading + "\n\nold\n## Next\ny\n")
	f.Add("```\n## x\n" + sectionHeading + "\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, doc string) {
		sec := sectionHeading + "\n\nbody\n"
		got := replaceSection(doc, sectionHeading, sec)
		if !strings.Contains(got, sec) {
			t.Fatalf("result lacks the section: %q", got)
		}
		if again := replaceSection(got, sectionHeading, sec); again != got {
			t.Fatalf("not idempotent:\n%q\n%q", got, again)
		}
		if i := strings.Index(doc, sectionHeading); i < 0 && !strings.HasPrefix(got, doc) {
			t.Fatalf("doc without the section was not kept as a prefix: %q -> %q", doc, got)
		}
	})
}

// testLoad is the load of testReport's samples.
var testLoad = load{Threads: 2, Conns: 64}

func smp(round int, name string, rps float64, p50, p99 time.Duration, logs int64) sample {
	return sample{Round: round, Load: testLoad, row: row{Name: name, Result: wrkResult{RPS: rps, P50: p50, P99: p99, Requests: 100}, LogLines: logs, StatsDatagrams: -1}}
}

func testReport() report {
	ms := time.Millisecond
	return report{
		Date: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Command: "make bench-proxy",
		Nproc: 2, CPU: "Test CPU", Loads: []load{testLoad}, Rounds: 3, Duration: 10 * time.Second,
		Warmup: 2 * time.Second, BodySize: 128, Workers: 2, LoadAvg: 0.25,
		Versions: [][2]string{{"nginx", "nginx version: nginx/1.22.1"}, {"wrk", "wrk 4.1.0"}},
		Samples: []sample{
			// Round 2 is faster for everyone (a quieter machine): the
			// per-round ratios stay put while the raw numbers move.
			smp(1, "nginx", 10000, 2*ms, 10*ms, 120000),
			smp(1, "hopwatch-proxy", 12000, 1500*time.Microsecond, 5*ms, 0),
			smp(1, "upstream (direct)", 30000, 400*time.Microsecond, 2*ms, -1),
			smp(2, "nginx", 20000, 1*ms, 8*ms, 130000),
			smp(2, "hopwatch-proxy", 16000, 1*ms, 8*ms, 0),
			smp(2, "upstream (direct)", 40000, 400*time.Microsecond, 2*ms, -1),
			smp(3, "nginx", 12000, 2*ms, 12*ms, 110000),
			smp(3, "hopwatch-proxy", 12000, 2*ms, 6*ms, 0),
			smp(3, "upstream (direct)", 35000, 400*time.Microsecond, 2*ms, -1),
		},
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
		{[]float64{math.NaN(), 5, 1}, 3},
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.EqualFunc(in, tc.in, func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
			t.Errorf("median modified its input: %v", in)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	sums := summarize(testReport().Samples, testLoad)
	if len(sums) != 3 || sums[0].Name != "nginx" || sums[1].Name != "hopwatch-proxy" || sums[2].Name != "upstream (direct)" {
		t.Fatalf("summaries %+v, want nginx, hopwatch-proxy, upstream in first-measured order", sums)
	}
	hp := sums[1]
	if hp.Rounds != 3 || hp.Result.RPS != 12000 || hp.Result.P99 != 6*time.Millisecond || hp.Result.Requests != 300 {
		t.Fatalf("hopwatch-proxy summary = %+v, want 3 rounds, median 12000 req/s, p99 6 ms, 300 requests", hp)
	}
	// Per round, against nginx in the same round: 1.2, 0.8, 1.0; median 1.0,
	// though the ratio of the medians (12000/12000) would hide round 2.
	if want := []float64{1.2, 0.8, 1.0}; !slices.Equal(hp.RPSRatios, want) {
		t.Fatalf("per-round req/s ratios = %v, want %v", hp.RPSRatios, want)
	}
	if want := []float64{0.5, 1, 0.5}; !slices.Equal(hp.P99Ratios, want) {
		t.Fatalf("per-round p99 ratios = %v, want %v", hp.P99Ratios, want)
	}
	if got := summarize(testReport().Samples, load{Threads: 1, Conns: 50}); len(got) != 0 {
		t.Fatalf("another load's summaries = %+v, want none", got)
	}
}

func TestSummarizeWithoutNginxInARound(t *testing.T) {
	s := testReport().Samples
	s = slices.DeleteFunc(s, func(x sample) bool { return x.Name == "nginx" && x.Round == 2 })
	hp := summarize(s, testLoad)[1]
	if !math.IsNaN(hp.RPSRatios[1]) || hp.RPSRatios[0] != 1.2 || median(hp.RPSRatios) != 1.1 {
		t.Fatalf("ratios = %v: want NaN for the round nginx missed, and a median of the other two (1.1)", hp.RPSRatios)
	}
}

func TestReportTable(t *testing.T) {
	got := table(summarize(testReport().Samples, testLoad))
	want := "| proxy | req/s | p50 | p99 | req/s vs nginx, per round | req/s vs nginx | p99 vs nginx | errors | access-log lines |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" +
		"| nginx | 12000 | 2.00 ms | 10.00 ms | 1.00× 1.00× 1.00× | 1.00× | 1.00× | 0 | 120000 |\n" +
		"| hopwatch-proxy | 12000 | 1.50 ms | 6.00 ms | 1.20× 0.80× 1.00× | 1.00× | 0.50× | 0 | 0 (logging off?) |\n" +
		"| upstream (direct) | 35000 | 0.40 ms | 2.00 ms | 3.00× 2.00× 2.92× | 2.92× | 0.20× | 0 | n/a |\n"
	if got != want {
		t.Fatalf("table =\n%s\nwant\n%s", got, want)
	}
}

func TestReportStatsCost(t *testing.T) {
	r := testReport()
	if got := statsCost(summarize(r.Samples, testLoad)); got != "" {
		t.Fatalf("without a stats-off row, statsCost = %q, want nothing", got)
	}
	for round := 1; round <= 3; round++ {
		off := smp(round, statsOffRow, 12500, time.Millisecond, 4*time.Millisecond, 1)
		off.StatsDatagrams = 0
		r.Samples = append(r.Samples, off)
	}
	for i := range r.Samples {
		if r.Samples[i].Name == statsOnRow {
			r.Samples[i].StatsDatagrams, r.Samples[i].StatsBytes = 42, 50000
		}
	}
	got := statsCost(summarize(r.Samples, testLoad))
	for _, want := range []string{"served 12000 req/s (median), **0.96×** the 12500 req/s", "(-4.0%)", "p99 6.00 ms against 4.00 ms",
		"received 42 datagrams (50000 bytes, median per proxy run) from it, and 0 from the stats-off run", "within the 5 % budget"} {
		if !strings.Contains(got, want) {
			t.Errorf("statsCost lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(r.section(), got) {
		t.Error("the section does not include the stats cost paragraph")
	}
}

func TestReportObservabilityCost(t *testing.T) {
	r := testReport()
	if got := obsCost(r.Samples, testLoad); got != "" {
		t.Fatalf("without the full and off rows, obsCost = %q, want nothing", got)
	}
	ms := time.Millisecond
	// Rounds 1 and 3 are side by side; round 2's "off" failed and is absent,
	// so its full run has nothing to be compared with.
	r.Samples = append(r.Samples,
		smp(1, obsOffRow, 10000, ms, 5*ms, -1), smp(1, obsFullRow, 9000, ms, 6*ms, 50),
		smp(2, obsFullRow, 1000, ms, 6*ms, 50),
		smp(3, obsOffRow, 20000, ms, 5*ms, -1), smp(3, obsFullRow, 19000, ms, 6*ms, 50),
	)
	got := obsCost(r.Samples, testLoad)
	for _, want := range []string{"`wrk -t2 -c64`", "**0.93×**", "per-round ratios 0.90×, 0.95×", "-7.5%", "outside the 3 % budget"} {
		if !strings.Contains(got, want) {
			t.Errorf("obsCost lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(r.section(), got) {
		t.Error("the section does not include the observability cost paragraph")
	}
	if got := obsCost(r.Samples, load{Threads: 1, Conns: 50}); got != "" {
		t.Errorf("another load's obsCost = %q, want nothing", got)
	}
	r.Samples[len(r.Samples)-1].Result.RPS = 19900
	r.Samples[len(r.Samples)-4].Result.RPS = 9900
	if got := obsCost(r.Samples, testLoad); !strings.Contains(got, "**0.99×**") || !strings.Contains(got, "within the 3 % budget") || strings.Contains(got, "disagree") {
		t.Errorf("at 0.99× with rounds that agree, obsCost should be within budget and say nothing of noise:\n%s", got)
	}
	r.Samples[len(r.Samples)-1].Result.RPS = 25000
	r.Samples[len(r.Samples)-4].Result.RPS = 9500
	got = obsCost(r.Samples, testLoad)
	for _, want := range []string{"**1.10×**", "not slower than everything off", "The rounds disagree by 30 points (0.95× to 1.25×)"} {
		if !strings.Contains(got, want) {
			t.Errorf("obsCost with rounds 0.95× and 1.25× lacks %q:\n%s", want, got)
		}
	}
}

func TestReportExemplarsCost(t *testing.T) {
	r := testReport()
	ms := time.Millisecond
	r.Samples = append(r.Samples, smp(1, obsFullRow, 10000, ms, 5*ms, 50))
	if got := exemplarCost(r.Samples, testLoad); got != "" {
		t.Fatalf("without the exemplars row, exemplarCost = %q, want nothing", got)
	}
	// The ratio is exemplars over full, never full over all off.
	r.Samples = append(r.Samples,
		smp(1, obsOffRow, 20000, ms, 5*ms, -1), smp(1, obsExemplarsRow, 9800, ms, 6*ms, 50),
		smp(2, obsFullRow, 10000, ms, 5*ms, 50), smp(2, obsExemplarsRow, 9600, ms, 6*ms, 50),
	)
	got := exemplarCost(r.Samples, testLoad)
	for _, want := range []string{"`wrk -t2 -c64`", "**0.97×**", "per-round ratios 0.98×, 0.96×", "-3.0%", "one request in a hundred", "rerun before concluding"} {
		if !strings.Contains(got, want) {
			t.Errorf("exemplarCost lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "disagree") {
		t.Errorf("rounds 2 points apart reported as disagreeing:\n%s", got)
	}
	if !strings.Contains(r.section(), got) {
		t.Error("the section does not include the exemplars cost paragraph")
	}
	r.Samples[len(r.Samples)-1].Result.RPS = 11000
	if got := exemplarCost(r.Samples, testLoad); !strings.Contains(got, "**1.04×**") || !strings.Contains(got, "not slower than off") || !strings.Contains(got, "disagree by 12 points") {
		t.Errorf("rounds at 0.98× and 1.10×:\n%s", got)
	}
}

func TestReportExemplarsSeen(t *testing.T) {
	r := testReport()
	if got := r.section(); strings.Contains(got, "statsd-sink exposed") || strings.Contains(got, "could not be counted") {
		t.Fatalf("without the exemplars row the section reports an exemplar count:\n%s", got)
	}
	for _, tc := range []struct {
		e    exemplarCount
		want string
	}{
		{exemplarCount{Lines: 7}, "statsd-sink exposed 7 bucket lines with an exemplar"},
		{exemplarCount{}, "**statsd-sink exposed no exemplar after the run**"},
		{exemplarCount{Err: errors.New("connection refused")}, "could not be counted after the run** (connection refused)"},
	} {
		r.Exemplars = &tc.e
		if got := r.section(); !strings.Contains(got, tc.want) {
			t.Errorf("%+v: section lacks %q", tc.e, tc.want)
		}
	}
}

func TestReportTableWithoutNginx(t *testing.T) {
	r := testReport()
	r.Samples = slices.DeleteFunc(r.Samples, func(s sample) bool { return s.Name == "nginx" })
	got := table(summarize(r.Samples, testLoad))
	if strings.Contains(got, "×") || !strings.Contains(got, "| n/a n/a n/a | n/a | n/a |") {
		t.Fatalf("ratios without an nginx row should be n/a:\n%s", got)
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		r    wrkResult
		want string
	}{
		{wrkResult{}, "0"},
		{wrkResult{Non2xx3xx: 2}, "2 non-2xx/3xx"},
		{wrkResult{SocketErrors: 5}, "5 socket"},
		{wrkResult{Non2xx3xx: 2, SocketErrors: 5}, "2 non-2xx/3xx, 5 socket"},
	}
	for _, tc := range tests {
		if got := formatErrors(tc.r); got != tc.want {
			t.Errorf("formatErrors(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestSectionSaysWhatTheIssueAsks(t *testing.T) {
	s := testReport().section()
	for _, want := range []string{
		sectionHeading + "\n",
		"`make bench-proxy`",
		"2026-05-01 12:00 UTC",
		"`nproc` = 2",
		"share the same 2 cores",
		"3 interleaved rounds",
		"### `wrk -t2 -c64`",
		"`wrk -d10s --latency`",
		"- nginx: nginx version: nginx/1.22.1",
		"- wrk: wrk 4.1.0",
		"access-log",
		"load average was 0.25 when",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
	// The section must not end the doc's next heading early.
	for l := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(l, "## ") && l != sectionHeading || strings.HasPrefix(l, "# ") {
			t.Errorf("section contains a heading that would split it: %q", l)
		}
	}
}

func TestWriteSectionPreservesOtherSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	other := "# Benchmarks\n\n## statsd-sink vs statsd_exporter\n\nsink table\n"
	if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	sec := testReport().section()
	for range 2 {
		if err := writeSection(path, sectionHeading, sec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := other + "\n" + sec; string(got) != want {
		t.Fatalf("file =\n%s\nwant\n%s", got, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteSectionCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := writeSection(path, sectionHeading, sectionHeading+"\n\nx\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Benchmarks\n\n" + sectionHeading + "\n\nx\n"; string(got) != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
}

func TestWrkRoundOrderAlternates(t *testing.T) {
	sel := []peer{{Name: "nginx"}, {Name: "hopwatch-proxy-full"}, {Name: "hopwatch-proxy-exemplars"}}
	names := func(ps []peer) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(wrkRoundOrder(sel, 1)); got != "nginx,hopwatch-proxy-full,hopwatch-proxy-exemplars" {
		t.Errorf("round 1: %s, want the selected order", got)
	}
	if got := names(wrkRoundOrder(sel, 2)); got != "hopwatch-proxy-exemplars,hopwatch-proxy-full,nginx" {
		t.Errorf("round 2: %s, want it reversed", got)
	}
	if got := names(wrkRoundOrder(sel, 3)); got != "nginx,hopwatch-proxy-full,hopwatch-proxy-exemplars" || sel[0].Name != "nginx" {
		t.Errorf("round 3: %s (selected now %s), want the selected order, untouched", got, names(sel))
	}
}
