package render

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Recording holds the Prometheus range-query results of every panel of one
// dashboard, as the live proof (e2e/dashboards) got them from the real
// pipeline. dashgen draws the previews from it, so that the committed
// pictures show real data and can be made again without a pipeline.
type Recording struct {
	// Dashboard is the dashboard's uid.
	Dashboard string `json:"dashboard"`
	// Start is the range's start, in Unix seconds; Series.T counts from it.
	Start int64 `json:"start"`
	// Step is the range query's resolution in seconds.
	Step int64 `json:"step"`
	// Panels holds one entry per panel, in the dashboard's order.
	Panels []PanelRecording `json:"panels"`
}

// PanelRecording is what one panel's queries returned.
type PanelRecording struct {
	Title   string            `json:"title"`
	Targets []TargetRecording `json:"targets"`
}

// TargetRecording is one query's result: its refId, the expression with
// the variables substituted as they were run, and the series it returned.
type TargetRecording struct {
	RefID  string   `json:"refId"`
	Expr   string   `json:"expr"`
	Series []Series `json:"series"`
}

// Series is one series of a range-query result. T holds each sample's
// offset from Recording.Start in seconds; V its value, nil where
// Prometheus returned NaN or ±Inf (JSON has no such numbers).
type Series struct {
	Metric map[string]string `json:"metric"`
	T      []int64           `json:"t"`
	V      []*float64        `json:"v"`
}

// Panel returns the recording of the panel titled title, or nil.
func (r *Recording) Panel(title string) *PanelRecording {
	if r == nil {
		return nil
	}
	for i := range r.Panels {
		if r.Panels[i].Title == title {
			return &r.Panels[i]
		}
	}
	return nil
}

// span is the first and last sample time over every series of r.
func (r *Recording) span() (lo, hi int64, ok bool) {
	for _, p := range r.Panels {
		for _, tg := range p.Targets {
			for _, s := range tg.Series {
				for _, t := range s.T {
					if !ok || t < lo {
						lo = t
					}
					if !ok || t > hi {
						hi = t
					}
					ok = true
				}
			}
		}
	}
	return lo, hi, ok
}

// Value converts a sample value as Prometheus's JSON API writes it (a
// string, "NaN" and "+Inf" included) into a Series value, rounded to four
// significant digits: the previews need no more, and the committed files
// stay small.
func Value(s string) (*float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("render: sample value %q: %w", s, err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, nil
	}
	v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return &v, nil
}

// LoadRecording reads a recording written by the live proof. A missing
// file is not an error: it returns nil, and every panel then says that no
// data was recorded.
func LoadRecording(path string) (*Recording, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	var r Recording
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("render: %s: %w", path, err)
	}
	if r.Step <= 0 {
		return nil, fmt.Errorf("render: %s: step %d, want a positive number of seconds", path, r.Step)
	}
	for _, p := range r.Panels {
		for _, tg := range p.Targets {
			for i, s := range tg.Series {
				if len(s.T) != len(s.V) {
					return nil, fmt.Errorf("render: %s: panel %q query %s series %d: %d times but %d values", path, p.Title, tg.RefID, i, len(s.T), len(s.V))
				}
			}
		}
	}
	return &r, nil
}

// Marshal encodes r as the committed file: compact JSON, one line per
// panel, so that a change shows in a diff as the panels it touches.
func (r *Recording) Marshal() ([]byte, error) {
	head, err := json.Marshal(struct {
		Dashboard string `json:"dashboard"`
		Start     int64  `json:"start"`
		Step      int64  `json:"step"`
	}{r.Dashboard, r.Start, r.Step})
	if err != nil {
		return nil, err
	}
	out := append(head[:len(head)-1:len(head)-1], []byte(",\"panels\":[\n")...)
	for i, p := range r.Panels {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		if i < len(r.Panels)-1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
	}
	return append(out, "]}\n"...), nil
}
