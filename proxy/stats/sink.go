package stats

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Sink types, protocols and histogram modes accepted in SinkConfig.
const (
	SinkStatsD    = "statsd"
	SinkDogStatsD = "dogstatsd"

	ProtocolUDP = "udp"
	ProtocolTCP = "tcp"

	// HistogramsTimer sends one "|ms" line per sample, as Envoy does.
	HistogramsTimer = "timer"
	// HistogramsCompact sends, per flush, one sampled "|ms|@rate" line per
	// histogram bucket that got samples (see the package documentation).
	HistogramsCompact = "compact"
)

// Defaults for SinkConfig and FlusherConfig.
const (
	DefaultPrefix              = "envoy"
	DefaultMaxBytesPerDatagram = 1432
	DefaultFlushInterval       = 5 * time.Second
	DefaultTimerQueueSize      = 1 << 16
)

// SinkConfig is one StatsD or DogStatsD sink (one entry of stats_sinks).
type SinkConfig struct {
	// Type is "statsd" (flat Envoy names) or "dogstatsd" (tag-extracted
	// names with |#tags). Default statsd.
	Type string `yaml:"type"`
	// Address is host:port of the StatsD server. Required.
	Address string `yaml:"address"`
	// Protocol is "udp" (default) or "tcp" (newline-delimited lines,
	// reconnecting with backoff).
	Protocol string `yaml:"protocol"`
	// Prefix is prepended to every name with a dot. Default "envoy".
	Prefix string `yaml:"prefix"`
	// MaxBytesPerDatagram bounds each UDP datagram (and each TCP write).
	// Lines are never split; a single line longer than this is dropped and
	// counted in statsd.lines_dropped. Default 1432.
	MaxBytesPerDatagram int `yaml:"max_bytes_per_datagram"`
	// Histograms is "timer" (default: one |ms line per sample, as Envoy)
	// or "compact" (one sampled line per non-empty bucket per flush, from
	// which a 1/rate-weighting sink rebuilds exact buckets, count and sum).
	Histograms string `yaml:"histograms"`
	// Exemplars appends "|trace_id:<32 hex>" to the timer line of every
	// sample from a sampled request, after every other section. Default
	// false. Only with Histograms "timer": a compact line stands for many
	// samples, so no one trace fits it.
	Exemplars bool `yaml:"exemplars"`
}

// WithDefaults returns c with empty fields set to their defaults.
func (c SinkConfig) WithDefaults() SinkConfig {
	if c.Type == "" {
		c.Type = SinkStatsD
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolUDP
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxBytesPerDatagram == 0 {
		c.MaxBytesPerDatagram = DefaultMaxBytesPerDatagram
	}
	if c.Histograms == "" {
		c.Histograms = HistogramsTimer
	}
	return c
}

// Validate checks a defaulted SinkConfig; path names it in errors
// (stats_sinks[0]).
func (c SinkConfig) Validate(path string) error {
	switch c.Type {
	case SinkStatsD, SinkDogStatsD:
	default:
		return fmt.Errorf("%s.type: %q is not one of statsd, dogstatsd", path, c.Type)
	}
	switch c.Protocol {
	case ProtocolUDP, ProtocolTCP:
	default:
		return fmt.Errorf("%s.protocol: %q is not one of udp, tcp", path, c.Protocol)
	}
	if c.Address == "" {
		return fmt.Errorf("%s.address: required (host:port)", path)
	}
	if _, port, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("%s.address: %q: %w", path, c.Address, err)
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%s.address: %q: port %q is not a number in 1..65535", path, c.Address, port)
	}
	for i := 0; i < len(c.Prefix); i++ {
		if b := c.Prefix[i]; b == ':' || b == '|' || b == '#' || b == '\n' || b == ' ' || b == '@' || b == ',' {
			return fmt.Errorf("%s.prefix: %q contains %q, which would break StatsD lines", path, c.Prefix, b)
		}
	}
	if c.MaxBytesPerDatagram < 64 || c.MaxBytesPerDatagram > 65507 {
		return fmt.Errorf("%s.max_bytes_per_datagram: %d is not in 64..65507", path, c.MaxBytesPerDatagram)
	}
	switch c.Histograms {
	case HistogramsTimer, HistogramsCompact:
	default:
		return fmt.Errorf("%s.histograms: %q is not one of timer, compact", path, c.Histograms)
	}
	if c.Exemplars && c.Histograms != HistogramsTimer {
		return fmt.Errorf("%s.exemplars: true needs histograms: timer, got %q (a compact line stands for many samples, so no one trace ID fits it)", path, c.Histograms)
	}
	return nil
}

// FlusherConfig configures the flusher (the stats_config flush settings
// plus the stats_sinks list).
type FlusherConfig struct {
	// FlushInterval is how often counters, gauges and compact histograms
	// are sent. Default 5s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// TimerQueueSize bounds the samples waiting for timer-mode sinks; they
	// are drained every TimerDrainInterval. Default 65536.
	TimerQueueSize int `yaml:"timer_queue_size"`
	// TimerDrainInterval is how often queued timer samples are sent.
	// Default: the flush interval or 250ms, whichever is shorter.
	TimerDrainInterval time.Duration `yaml:"timer_drain_interval"`
	// Sinks are the StatsD/DogStatsD destinations.
	Sinks []SinkConfig `yaml:"stats_sinks"`
	// AnnounceCounters sends each counter once at 0 (":0|c") in its first
	// flush, even though it did not move; later flushes skip unmoved
	// counters as before. Every receiver then holds the series at 0
	// before its first increment, so rate() and increase() see that
	// increment and panels show 0 rather than "No data". Per-code
	// counters that never counted stay hidden, as in the admin listings.
	// The proxy turns it on; Envoy sends a counter only once it was used.
	AnnounceCounters bool `yaml:"-"`
}

// WithDefaults returns c with defaults applied, sinks included.
func (c FlusherConfig) WithDefaults() FlusherConfig {
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.TimerQueueSize == 0 {
		c.TimerQueueSize = DefaultTimerQueueSize
	}
	if c.TimerDrainInterval == 0 {
		c.TimerDrainInterval = min(c.FlushInterval, 250*time.Millisecond)
	}
	sinks := make([]SinkConfig, len(c.Sinks))
	for i, s := range c.Sinks {
		sinks[i] = s.WithDefaults()
	}
	c.Sinks = sinks
	return c
}

// Validate checks a defaulted FlusherConfig.
func (c FlusherConfig) Validate() error {
	if c.FlushInterval < 10*time.Millisecond {
		return fmt.Errorf("stats_config.flush_interval: %v is shorter than 10ms", c.FlushInterval)
	}
	if c.TimerDrainInterval < time.Millisecond {
		return fmt.Errorf("stats_config.timer_drain_interval: %v is shorter than 1ms", c.TimerDrainInterval)
	}
	if c.TimerQueueSize < 1 || c.TimerQueueSize > 1<<24 {
		return fmt.Errorf("stats_config.timer_queue_size: %d is not in 1..16777216", c.TimerQueueSize)
	}
	var errs []error
	for i, s := range c.Sinks {
		if err := s.Validate(fmt.Sprintf("stats_sinks[%d]", i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// appendSampleRate appends 1/c truncated (not rounded) to 9 significant
// digits, so that c <= 1/rate < c+1 for every c < 10^8: a receiver that
// replays a sampled timer int(1/rate) times (statsd_exporter) gets exactly
// c, and one that weights it by 1/rate gets c within a relative 10^-8.
// Rounding could make 1/rate fall just below c and lose a sample.
//
// One more case: when 1/c has an exact short decimal (c = 3125 gives
// 0.00032) that binary floating point cannot hold, the receiver's
// float64(rate) may be a hair above 1/c and int(1/rate) = c-1. The digits
// are then padded to 9 and lowered by one unit in the last place
// (0.000319999999), which keeps 1/rate within [c, c+1).
func appendSampleRate(b []byte, c uint64) []byte {
	if c <= 1 {
		return append(b, '1')
	}
	start := len(b)
	b = append(b, '0', '.')
	rem := uint64(1)
	sig := 0
	for sig < 9 && rem != 0 {
		rem *= 10
		d := rem / c
		rem %= c
		if d > 0 || sig > 0 {
			sig++
		}
		b = append(b, byte('0'+d))
	}
	if r, err := strconv.ParseFloat(string(b[start:]), 64); err == nil && uint64(1/r) == c {
		return b
	}
	for ; sig < 9; sig++ {
		b = append(b, '0')
	}
	for i := len(b) - 1; i > start+1; i-- { // subtract one unit in the last place
		if b[i] > '0' {
			b[i]--
			break
		}
		b[i] = '9'
	}
	return b
}

// maxCompactCount is the largest count one compact line may stand for; the
// 9-digit rate is exact enough only below 10^8. Larger counts (never seen
// in practice within one flush) are split over several lines.
const maxCompactCount = 99_999_999

// appendMean appends s/c with the shortest decimal that parses back to
// the same float64.
func appendMean(b []byte, s, c uint64) []byte {
	return strconv.AppendFloat(b, meanOf(s, c), 'f', -1, 64)
}

func meanOf(s, c uint64) float64 {
	return float64(s/c) + float64(s%c)/float64(c)
}
