// Package statsd parses StatsD lines (with DogStatsD, InfluxDB, Librato and
// SignalFX tags) into reusable, allocation-free structures.
//
// The accepted grammar and the error reasons follow prometheus/statsd_exporter
// v0.31.0 (pkg/line) so that the same input produces the same samples and the
// same sample_errors reasons. The deliberate differences are that sets
// (`|s`) are accepted here, and that a last `|trace_id:<32 hex>` section
// (an exemplar, which statsd_exporter drops the sample for) is
// recognised; see sink/README.md.
package statsd

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Type is the StatsD metric type of a sample.
type Type uint8

// The StatsD metric types.
const (
	TypeCounter      Type = iota + 1 // c
	TypeGauge                        // g
	TypeTimer                        // ms
	TypeHistogram                    // h
	TypeDistribution                 // d
	TypeSet                          // s
)

var typeNames = [...]string{"", "c", "g", "ms", "h", "d", "s"}

// String returns the StatsD spelling of the type ("c", "ms", …).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// IsObserver reports whether samples of this type are observed by a
// histogram or summary (timers, histograms and distributions).
func (t Type) IsObserver() bool { return t == TypeTimer || t == TypeHistogram || t == TypeDistribution }

// Reason says why a sample was rejected. The names are statsd_exporter's
// `reason` label values of statsd_exporter_sample_errors_total.
type Reason uint8

// Sample error reasons.
const (
	ReasonMalformedLine Reason = iota
	ReasonMixedTaggingStyles
	ReasonNotEnoughParts
	ReasonInvalidExtendedAggregate
	ReasonMalformedComponent
	ReasonMalformedValue
	ReasonInvalidSampleFactor
	ReasonMalformedContainerID
	ReasonIllegalEvent
	// ReasonMalformedTraceID: a `|trace_id:` section that is not 32
	// lowercase hex digits (not all zero). statsd_exporter has no such
	// section; the reason is the sink's own.
	ReasonMalformedTraceID
	NumReasons // number of reasons, for arrays indexed by Reason
)

var reasonNames = [NumReasons]string{
	"malformed_line",
	"mixed_tagging_styles",
	"not_enough_parts_after_colon",
	"invalid_extended_aggregate_type",
	"malformed_component",
	"malformed_value",
	"invalid_sample_factor",
	"malformed_container_id",
	"illegal_event",
	"malformed_trace_id",
}

// String returns the statsd_exporter reason label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Tag is one key/value pair from any of the four tag styles. Key is raw: it
// still has to be escaped into a Prometheus label name.
type Tag struct {
	Key, Value []byte
}

// Sample is one value of a line. A line "a:1|c:2|g" has two samples.
type Sample struct {
	// Value is the parsed number. For counters it is already divided by the
	// sample rate(s), exactly as statsd_exporter does.
	Value float64
	// Raw is the value text; sets count distinct Raw values.
	Raw []byte
	// Rate is the last sampling factor given with '@' (1 when none).
	Rate float64
	// Type is the StatsD type.
	Type Type
	// Relative is set for gauges whose value starts with '+' or '-'.
	Relative bool
}

// Weight is how many observations a sampled timer/histogram sample stands
// for: 1/rate. It is 0 when the sample must be ignored (a negative rate, for
// which statsd_exporter records no observation either).
//
// When 1/rate lies less than WeightSnap (relative) above an integer n, the
// weight is n. A rate that stands for n samples is written as a decimal
// that cannot hold 1/n exactly; hopwatch's proxy (compact histograms)
// truncates it, so that n <= 1/rate < n+1, and counting 1/rate would give
// n plus about 1e-8·n. Integer weights (rates 1, 0.5, 0.1, …) are
// unaffected, as in statsd_exporter.
func (s *Sample) Weight() float64 {
	if s.Rate == 1 {
		return 1
	}
	if s.Rate < 0 {
		return 0
	}
	w := 1 / s.Rate
	if n := math.Floor(w); n >= 1 && w-n <= WeightSnap*n {
		return n
	}
	return w
}

// WeightSnap is the relative distance above an integer within which a
// sample weight is taken to be that integer (see Sample.Weight).
const WeightSnap = 1e-6

// Line is the result of parsing one line. It is reused between calls, so its
// slices point into the parsed line and are only valid until the next Parse.
type Line struct {
	// Name is the metric name with name-embedded tags removed.
	Name []byte
	// Tags are all tags of the line, in input order; later duplicates win.
	Tags []Tag
	// Samples are the valid samples.
	Samples []Sample
	// Errors has one entry per rejected sample (or per rejected line).
	Errors []Reason
	// SamplesSeen counts samples examined (statsd_exporter_samples_total).
	SamplesSeen int
	// TaggedSamples counts samples that carried at least one tag
	// (statsd_exporter_tags_total).
	TaggedSamples int
	// TagErrors counts malformed tags (statsd_exporter_tag_errors_total).
	TagErrors int
	// TraceID is the line's exemplar trace ID, valid when HasTraceID is
	// set: the `|trace_id:<32 hex>` section a proxy appends, after every
	// other section, to a timer sample of a sampled request. It is never
	// a tag, so it never makes a series.
	TraceID TraceID
	// HasTraceID reports whether the line carried a valid trace ID.
	HasTraceID bool

	nameBuf []byte
}

func (l *Line) reset() {
	l.Name = l.Name[:0]
	l.Tags = l.Tags[:0]
	l.Samples = l.Samples[:0]
	l.Errors = l.Errors[:0]
	l.SamplesSeen, l.TaggedSamples, l.TagErrors = 0, 0, 0
	l.HasTraceID = false
}

// Parser holds which tag styles are recognised. The zero value parses none;
// NewParser enables all four, like statsd_exporter's defaults.
type Parser struct {
	DogStatsD bool
	InfluxDB  bool
	Librato   bool
	SignalFX  bool
}

// NewParser returns a parser with all tag styles enabled.
func NewParser() Parser {
	return Parser{DogStatsD: true, InfluxDB: true, Librato: true, SignalFX: true}
}

// Parse parses one line (without its newline) into l. An empty line yields
// nothing and no error. Parse never allocates once l's slices have grown.
func (p *Parser) Parse(line []byte, l *Line) {
	l.reset()
	if len(line) == 0 {
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !utf8.Valid(line) {
		l.Errors = append(l.Errors, ReasonMalformedLine)
		return
	}
	rest := line[colon+1:]
	// The trace ID section comes after every other section, so cutting it
	// off first leaves a line parsed exactly as without it (its ':' must
	// not split a multi-value line).
	if i := bytes.Index(rest, traceIDSection); i >= 0 {
		if !l.TraceID.parse(rest[i+len(traceIDSection):]) {
			l.Errors = append(l.Errors, ReasonMalformedTraceID)
			return
		}
		l.HasTraceID = true
		rest = rest[:i]
	}
	p.parseNameAndTags(line[:colon], l)
	nameTags := len(l.Tags)
	dogTagged := bytes.Contains(rest, []byte("|#"))
	if dogTagged && nameTags > 0 {
		l.Errors = append(l.Errors, ReasonMixedTaggingStyles)
		return
	}
	pipe := bytes.IndexByte(rest, '|')
	if pipe < 0 {
		l.Errors = append(l.Errors, ReasonNotEnoughParts)
		return
	}
	values := rest[:pipe]
	// The type is the second '|'-separated part.
	typ := rest[pipe+1:]
	if i := bytes.IndexByte(typ, '|'); i >= 0 {
		typ = typ[:i]
	}
	switch {
	case bytes.IndexByte(values, ':') >= 0:
		// DogStatsD extended aggregation: "a:1:2:3|ms|@0.5" shares the suffix.
		if s := string(typ); s != "ms" && s != "h" && s != "d" {
			l.Errors = append(l.Errors, ReasonInvalidExtendedAggregate)
			return
		}
		p.parseSamples(values, rest[pipe+1:], true, nameTags, l)
	case dogTagged:
		// DogStatsD tags disable multi-value lines.
		p.parseSample(rest, nil, false, nameTags, l)
	default:
		p.parseSamples(rest, nil, false, nameTags, l)
	}
}

// parseSamples parses each ':'-separated part of list as a sample (see
// parseSample for suffix and split): the values of an extended aggregation,
// or the "value|type…" parts of a multi-value line.
func (p *Parser) parseSamples(list, suffix []byte, split bool, nameTags int, l *Line) {
	for {
		i := bytes.IndexByte(list, ':')
		if i < 0 {
			p.parseSample(list, suffix, split, nameTags, l)
			return
		}
		p.parseSample(list[:i], suffix, split, nameTags, l)
		list = list[i+1:]
	}
}

// parseSample parses "value|type|component…". With split set, value and
// the suffix "type|component…" were separated by extended aggregation.
func (p *Parser) parseSample(sample, suffix []byte, split bool, nameTags int, l *Line) {
	l.SamplesSeen++
	var value, typ, comps []byte
	if split {
		value = sample
		typ = suffix
	} else {
		i := bytes.IndexByte(sample, '|')
		if i < 0 {
			l.Errors = append(l.Errors, ReasonMalformedComponent)
			return
		}
		value, typ = sample[:i], sample[i+1:]
	}
	hasComps := false
	if i := bytes.IndexByte(typ, '|'); i >= 0 {
		typ, comps = typ[:i], typ[i+1:]
		hasComps = true
	}
	// statsd_exporter accepts 2 to 6 '|'-separated components.
	if hasComps && bytes.Count(comps, []byte("|")) > 3 {
		l.Errors = append(l.Errors, ReasonMalformedComponent)
		return
	}
	t := parseType(typ)
	relative := len(value) > 0 && (value[0] == '+' || value[0] == '-')
	var v float64
	if t != TypeSet {
		var err error
		v, err = parseFloat(value)
		if err != nil {
			l.Errors = append(l.Errors, ReasonMalformedValue)
			return
		}
	}
	rate := 1.0
	if hasComps {
		// Every component must be non-empty before any is interpreted.
		c := comps
		for {
			i := bytes.IndexByte(c, '|')
			part := c
			if i >= 0 {
				part = c[:i]
			}
			if len(part) == 0 {
				l.Errors = append(l.Errors, ReasonMalformedComponent)
				return
			}
			if i < 0 {
				break
			}
			c = c[i+1:]
		}
		// Tags from a previous sample of the same line are identical; drop
		// them so they are not duplicated.
		l.Tags = l.Tags[:nameTags]
		c = comps
		for len(c) > 0 {
			part := c
			if i := bytes.IndexByte(c, '|'); i >= 0 {
				part, c = c[:i], c[i+1:]
			} else {
				c = nil
			}
			switch part[0] {
			case '@':
				f, err := parseFloat(part[1:])
				if err != nil {
					l.Errors = append(l.Errors, ReasonInvalidSampleFactor)
				}
				if f == 0 {
					f = 1
				}
				rate = f
				if t == TypeCounter {
					v /= f
				}
			case '#':
				if p.DogStatsD {
					p.parseTags(part[1:], ',', ':', true, l)
				}
			case 'c':
				if len(part) > 2 && part[1] == ':' {
					l.Tags = append(l.Tags, Tag{Key: containerIDKey, Value: part[2:]})
				} else {
					l.Errors = append(l.Errors, ReasonMalformedContainerID)
					return
				}
			case 'T':
				// DogStatsD v1.3 timestamps carry nothing a pull endpoint uses.
			default:
				l.Errors = append(l.Errors, ReasonInvalidSampleFactor)
				return
			}
		}
	}
	if len(l.Tags) > 0 {
		l.TaggedSamples++
	}
	if t == 0 {
		l.Errors = append(l.Errors, ReasonIllegalEvent)
		return
	}
	if t == TypeGauge {
		rate = 1
	}
	l.Samples = append(l.Samples, Sample{Value: v, Raw: value, Rate: rate, Type: t, Relative: relative})
}

var containerIDKey = []byte("container_id")

func parseType(b []byte) Type {
	switch string(b) {
	case "c":
		return TypeCounter
	case "g":
		return TypeGauge
	case "ms":
		return TypeTimer
	case "h":
		return TypeHistogram
	case "d":
		return TypeDistribution
	case "s":
		return TypeSet
	}
	return 0
}

// parseFloat parses b without copying it into a new string.
func parseFloat(b []byte) (float64, error) {
	if len(b) == 0 {
		return strconv.ParseFloat("", 64)
	}
	// ParseFloat keeps s only in its error, which callers drop at once.
	return strconv.ParseFloat(unsafe.String(&b[0], len(b)), 64) //nolint:gosec // G103: read-only view of b for the duration of the call
}

func (p *Parser) parseNameAndTags(name []byte, l *Line) {
	if p.SignalFX {
		start := bytes.IndexByte(name, '[')
		end := bytes.IndexByte(name, ']')
		switch {
		case start >= 0 && end > start:
			p.parseTags(name[start+1:end], ',', '=', false, l)
			if end == len(name)-1 {
				l.Name = name[:start]
				return
			}
			// The name continues after the tags: join both halves.
			l.nameBuf = append(append(l.nameBuf[:0], name[:start]...), name[end+1:]...)
			l.Name = l.nameBuf
			return
		case start >= 0 || end >= 0:
			// One bracket only (or "]…["): leave the name as it is.
			l.TagErrors++
			l.Name = name
			return
		}
	}
	for i, c := range name {
		if (c == '#' && p.Librato) || (c == ',' && p.InfluxDB) {
			p.parseTags(name[i+1:], ',', '=', false, l)
			l.Name = name[:i]
			return
		}
	}
	l.Name = name
}

// parseTags splits s by sep and each tag at its first kv byte.
func (p *Parser) parseTags(s []byte, sep, kv byte, trimHash bool, l *Line) {
	for len(s) > 0 {
		tag := s
		if i := bytes.IndexByte(s, sep); i >= 0 {
			tag, s = s[:i], s[i+1:]
		} else {
			s = nil
		}
		if trimHash && len(tag) > 0 && tag[0] == '#' {
			tag = tag[1:]
		}
		i := bytes.IndexByte(tag, kv)
		if i <= 0 || i == len(tag)-1 {
			l.TagErrors++
			continue
		}
		l.Tags = append(l.Tags, Tag{Key: tag[:i], Value: tag[i+1:]})
	}
}
