package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sectionHeading is the part of BENCHMARKS.md this harness owns; other
// harnesses own other sections of the same file.
const sectionHeading = "## statsd-sink vs statsd_exporter"

// replaceSection returns doc with the section starting at heading (up to the
// next "## " heading or the end) replaced by section, or with section
// appended when doc has no such heading. section must start with heading.
func replaceSection(doc, heading, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	start, end := -1, len(lines)
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if start < 0 {
			if t == heading {
				start = i
			}
			continue
		}
		if strings.HasPrefix(t, "## ") {
			end = i
			break
		}
	}
	if start < 0 {
		if doc == "" {
			return "# Benchmarks\n\n" + section
		}
		return strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	tail := strings.Join(lines[end:], "")
	if tail != "" {
		section += "\n"
	}
	return strings.Join(lines[:start], "") + section + tail
}

// writeSection rewrites the section under heading (one of this harness's)
// in the file at path, keeping everything else, through a temporary file
// and rename so that a reader never sees half a file.
func writeSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := replaceSection(string(old), heading, section)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".BENCHMARKS-*.md")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(doc); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
