package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in YAML as a Go duration string such as
// "250ms", "1.5s" or "1m". Envoy's "0.25s" form is therefore accepted as is.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText renders the duration as a string such as "15s", so that a
// /config_dump (JSON or YAML) shows what a user would write and parses back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string, for encoders other than Parse
// (Parse decodes durations itself to report the line of a bad one).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf(`expected a duration such as "250ms" or "1.5s", got %q: %w`, b, err)
	}
	*d = Duration(v)
	return nil
}
