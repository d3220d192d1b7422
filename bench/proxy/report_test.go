package main

import (
	"os"
	"path/filepath"
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

func testReport() report {
	return report{
		Date: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Command: "make bench-proxy",
		Nproc: 2, CPU: "Test CPU", Threads: 2, Conns: 64, Duration: 10 * time.Second,
		Warmup: 2 * time.Second, BodySize: 128, Workers: 2, LoadAvg: 0.25,
		Versions: [][2]string{{"nginx", "nginx version: nginx/1.22.1"}, {"wrk", "wrk 4.1.0"}},
		Rows: []row{
			{Name: "nginx", Result: wrkResult{RPS: 10000, P50: 2 * time.Millisecond, P99: 10 * time.Millisecond}, LogLines: 120000},
			{Name: "hopwatch-proxy", Result: wrkResult{RPS: 12000, P50: 1500 * time.Microsecond, P99: 5 * time.Millisecond, Non2xx3xx: 3}, LogLines: 0},
			{Name: "upstream (direct)", Result: wrkResult{RPS: 30000, P50: 400 * time.Microsecond, P99: 2 * time.Millisecond}, LogLines: -1},
		},
	}
}

func TestReportTable(t *testing.T) {
	got := testReport().table()
	want := "| proxy | req/s | p50 | p99 | req/s vs nginx | p99 vs nginx | errors | access-log lines |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" +
		"| nginx | 10000 | 2.00 ms | 10.00 ms | 1.00× | 1.00× | 0 | 120000 |\n" +
		"| hopwatch-proxy | 12000 | 1.50 ms | 5.00 ms | 1.20× | 0.50× | 3 non-2xx/3xx | 0 (logging off?) |\n" +
		"| upstream (direct) | 30000 | 0.40 ms | 2.00 ms | 3.00× | 0.20× | 0 | n/a |\n"
	if got != want {
		t.Fatalf("table =\n%s\nwant\n%s", got, want)
	}
}

func TestReportStatsCost(t *testing.T) {
	r := testReport()
	if got := r.statsCost(); got != "" {
		t.Fatalf("without a stats-off row, statsCost = %q, want nothing", got)
	}
	r.Rows = append(r.Rows, row{Name: statsOffRow, Result: wrkResult{RPS: 12500, P99: 4 * time.Millisecond}, LogLines: 1, StatsDatagrams: 0})
	r.Rows[1].StatsDatagrams, r.Rows[1].StatsBytes = 42, 50000
	got := r.statsCost()
	for _, want := range []string{"served 12000 req/s, **0.96×** the 12500 req/s", "(-4.0%)", "p99 5.00 ms against 4.00 ms",
		"received 42 datagrams (50000 bytes) from it, and 0 from the stats-off run", "within the 5 % budget"} {
		if !strings.Contains(got, want) {
			t.Errorf("statsCost lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(r.section(), got) {
		t.Error("the section does not include the stats cost paragraph")
	}
	r.Rows[1].Result.RPS = 11000
	if got := r.statsCost(); !strings.Contains(got, "outside the 5 % budget") {
		t.Errorf("at 0.88× statsCost should say so:\n%s", got)
	}
	r.Rows[1].Result.RPS = 13000
	if got := r.statsCost(); !strings.Contains(got, "**1.04×**") || !strings.Contains(got, "run-to-run noise") {
		t.Errorf("at 1.04× statsCost should call the difference noise:\n%s", got)
	}
}

func TestReportTableWithoutNginx(t *testing.T) {
	r := testReport()
	r.Rows = r.Rows[1:]
	got := r.table()
	if strings.Contains(got, "×") || !strings.Contains(got, "| n/a | n/a |") {
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
		"wrk -t2 -c64 -d10s --latency",
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
		if err := writeSection(path, sec); err != nil {
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
	if err := writeSection(path, sectionHeading+"\n\nx\n"); err != nil {
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
