package aggregate

import "github.com/hopwatch/hopwatch/sink/statsd"

// TraceID is the W3C trace ID of an exemplar, as the line carried it.
type TraceID = statsd.TraceID

// Exemplar is the latest traced observation of one histogram bucket: it
// leads from a slow bucket to the trace behind it.
type Exemplar struct {
	TraceID TraceID
	// Value is the observation, in the histogram's unit.
	Value float64
	// Time is when the sink received it (unix ns); 0 marks no exemplar.
	Time int64
}

// ExemplarSeries is the number of live histogram series that hold
// exemplars. Each holds one exemplar per bucket at most, so exemplar
// memory is bounded by the series budget, never by the number of trace IDs.
func (s *Store) ExemplarSeries() int { return int(s.exemplarSeries.Load()) }
