package accesslog

import (
	"strconv"
	"unicode/utf8"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// JSON is the default access-log format: one JSON object per line, with the
// keys always present and always in this order:
//
//	start_time             string, RFC 3339 UTC with milliseconds (Envoy's %START_TIME%)
//	method                 string
//	path                   string, as received, with the query
//	protocol               string, "HTTP/1.1" or "HTTP/2"
//	response_code          number, 0 when no response was sent
//	response_flags         string, Envoy short codes joined by ",", "-" when none
//	response_code_details  string
//	bytes_received         number
//	bytes_sent             number
//	duration               number, milliseconds (truncated)
//	upstream_service_time  number, milliseconds, null when no upstream answered
//	x_forwarded_for        string
//	user_agent             string
//	request_id             string
//	authority              string
//	upstream_cluster       string
//	upstream_host          string
//	route_name             string
//	attempts               number
//	trace_id               string
//	span_id                string
//
// The rule for absent values is uniform: every string field except
// response_flags is null when the value is empty (start_time when the time
// is zero), so a consumer can tell "not known" from a real value without
// guessing at sentinels. Numbers are never null, except
// upstream_service_time, whose 0 would be a plausible real value.
//
// Strings are escaped so that every line is valid JSON whatever the request
// carried: quotes, backslashes and control characters are escaped, each byte
// of invalid UTF-8 becomes U+FFFD (as encoding/json does), and U+2028 and
// U+2029 are escaped so the line is also valid JavaScript.
type JSON struct{}

// AppendLine appends info as one JSON object and a newline to dst. It does
// not allocate when dst has room.
func (JSON) AppendLine(dst []byte, info *streaminfo.Info) []byte {
	dst = append(dst, `{"start_time":`...)
	if info.StartTime.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = appendDefaultTime(dst, info.StartTime)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"method":`...)
	dst = appendJSONOptString(dst, info.Method)
	dst = append(dst, `,"path":`...)
	dst = appendJSONOptString(dst, info.Path)
	dst = append(dst, `,"protocol":`...)
	dst = appendJSONOptString(dst, info.Protocol)
	dst = append(dst, `,"response_code":`...)
	dst = strconv.AppendInt(dst, int64(info.ResponseCode), 10)
	dst = append(dst, `,"response_flags":"`...)
	dst = appendFlags(dst, info.ResponseFlags) // codes are plain ASCII letters
	dst = append(dst, `","response_code_details":`...)
	dst = appendJSONOptString(dst, info.ResponseCodeDetails)
	dst = append(dst, `,"bytes_received":`...)
	dst = strconv.AppendInt(dst, info.BytesReceived, 10)
	dst = append(dst, `,"bytes_sent":`...)
	dst = strconv.AppendInt(dst, info.BytesSent, 10)
	dst = append(dst, `,"duration":`...)
	dst = strconv.AppendInt(dst, info.Duration.Milliseconds(), 10)
	dst = append(dst, `,"upstream_service_time":`...)
	if info.HasUpstreamServiceTime {
		dst = strconv.AppendInt(dst, info.UpstreamServiceTime.Milliseconds(), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"x_forwarded_for":`...)
	dst = appendJSONOptString(dst, info.XForwardedFor)
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONOptString(dst, info.UserAgent)
	dst = append(dst, `,"request_id":`...)
	dst = appendJSONOptString(dst, info.RequestID)
	dst = append(dst, `,"authority":`...)
	dst = appendJSONOptString(dst, info.Authority)
	dst = append(dst, `,"upstream_cluster":`...)
	dst = appendJSONOptString(dst, info.UpstreamCluster)
	dst = append(dst, `,"upstream_host":`...)
	dst = appendJSONOptString(dst, info.UpstreamHost)
	dst = append(dst, `,"route_name":`...)
	dst = appendJSONOptString(dst, info.RouteName)
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(info.Attempts), 10)
	dst = append(dst, `,"trace_id":`...)
	dst = appendJSONOptString(dst, info.TraceID)
	dst = append(dst, `,"span_id":`...)
	dst = appendJSONOptString(dst, info.SpanID)
	return append(dst, "}\n"...)
}

// appendJSONOptString appends s as a JSON string, or null when s is empty.
func appendJSONOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}

// jsonSafe marks the ASCII bytes that need no escaping inside a JSON string.
// Bytes >= 0x80 are false so that the slow path validates UTF-8.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const lowerHex = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. It copies runs of safe
// bytes in one append, so typical header values cost one pass and no
// allocation.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// flagCodes holds the short code of each response-flag bit, taken from
// streaminfo itself so that the two never disagree; a bit streaminfo does
// not name has an empty code, as in Flags.String. Computed once, read-only.
var flagCodes = func() (codes [32]string) {
	for i := range codes {
		codes[i] = streaminfo.Flags(1 << i).String()
	}
	return codes
}()

// appendFlags appends fs as Flags.String does, without allocating.
func appendFlags(dst []byte, fs streaminfo.Flags) []byte {
	if fs == 0 {
		return append(dst, '-')
	}
	first := true
	for i, code := range flagCodes {
		if fs&(1<<i) == 0 || code == "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, code...)
		first = false
	}
	return dst
}
