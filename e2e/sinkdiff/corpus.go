package sinkdiff

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Case is one corpus case: an optional mapping file and a stream of UDP
// datagrams, plus optional lines sent over TCP afterwards.
type Case struct {
	Name string
	// MappingFile is the absolute path of mapping.yml, or "" for none.
	MappingFile string
	// Datagrams are sent over UDP in order, one write each.
	Datagrams [][]byte
	// TCPLines are sent over one TCP connection, each newline-terminated.
	TCPLines []string
}

// Lines returns how many StatsD lines the case sends in total, counted the
// way statsd_exporter_lines_total counts them (every '\n'-separated piece).
func (c *Case) Lines() int {
	n := len(c.TCPLines)
	for _, d := range c.Datagrams {
		n += bytes.Count(d, []byte("\n")) + 1
	}
	return n
}

// LoadCases reads every case directory under dir.
//
// lines.txt and tcp.txt hold one datagram (or TCP line) per text line; blank
// lines and lines starting with "# " are skipped; in lines.txt the two
// characters `\n` separate StatsD lines inside one datagram.
func LoadCases(dir string) ([]*Case, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	var cases []*Case
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c, err := loadCase(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("corpus %s has no case directories", dir)
	}
	return cases, nil
}

func loadCase(dir string) (*Case, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Case{Name: filepath.Base(dir)}
	if _, err := os.Stat(filepath.Join(abs, "mapping.yml")); err == nil {
		c.MappingFile = filepath.Join(abs, "mapping.yml")
	}
	lines, err := readLines(filepath.Join(abs, "lines.txt"))
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no datagrams", filepath.Join(abs, "lines.txt"))
	}
	for _, l := range lines {
		c.Datagrams = append(c.Datagrams, []byte(strings.ReplaceAll(l, `\n`, "\n")))
	}
	if _, err := os.Stat(filepath.Join(abs, "tcp.txt")); err == nil {
		if c.TCPLines, err = readLines(filepath.Join(abs, "tcp.txt")); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if l == "" || l == "#" || strings.HasPrefix(l, "# ") {
			continue
		}
		if strings.HasSuffix(l, `\n`) || strings.HasPrefix(l, `\n`) || strings.Contains(l, `\n\n`) {
			// An empty StatsD line is counted differently by different
			// receivers; keep the line totals comparable.
			return nil, fmt.Errorf("%s:%d: empty StatsD line inside a datagram", path, n)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
