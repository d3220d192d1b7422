// Package accesslog writes one line per request, in Envoy's text format or
// as JSON, from the streaminfo.Info the connection manager fills in.
//
// Formatting is on the request goroutine, so it is built to be cheap: each
// line is appended into a pooled []byte with strconv and a hand-written JSON
// escaper, and costs no allocation in the steady state. Output is buffered
// and written by a background flusher, so a slow disk or a blocked stdout
// never stalls a request; when the buffer is full, lines are dropped and
// counted instead.
package accesslog

import "github.com/hopwatch/hopwatch/proxy/streaminfo"

// Logger receives one call per request, on the request goroutine, after the
// last byte of the response was sent. Implementations must be safe for
// concurrent use and must not keep info or its header maps after Log
// returns.
type Logger interface {
	Log(info *streaminfo.Info)
}

// Formatter renders one access-log line, including its trailing newline.
// JSON and *TextFormat implement it.
type Formatter interface {
	// AppendLine appends the line for info to dst and returns the result.
	AppendLine(dst []byte, info *streaminfo.Info) []byte
}

// Multi sends every request to each of its Loggers in order, for
// configurations with several access_log outputs.
type Multi []Logger

// Log implements Logger.
func (m Multi) Log(info *streaminfo.Info) {
	for _, l := range m {
		l.Log(info)
	}
}
