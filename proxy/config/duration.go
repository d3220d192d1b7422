package config

import "github.com/hopwatch/hopwatch/tracing"

// Duration is a time.Duration written in YAML as a Go duration string such
// as "250ms", "1.5s" or "1m"; Envoy's "0.25s" form is therefore accepted as
// is. It is tracing.Duration, the one duration type of the configuration,
// so that the tracing section and the rest of the file read and write
// durations alike. Parse decodes durations itself to report the line of a
// bad one.
type Duration = tracing.Duration
