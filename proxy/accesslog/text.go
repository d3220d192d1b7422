package accesslog

import (
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// DefaultTextFormat is Envoy's default access-log format string, used for
// format: text when no text_format is given.
const DefaultTextFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// TextFormat is a compiled Envoy format string. Compile it once with
// CompileTextFormat; AppendLine is then safe for concurrent use.
//
// Supported command operators, each printing "-" when its value is missing,
// as Envoy does:
//
//	%START_TIME%                 RFC 3339 UTC with milliseconds
//	%START_TIME(fmt)%            strftime subset: %Y %m %d %H %M %S %s %z %Z %T %F %f %1f-%9f %E1S-%E9S %%
//	%REQ(h)% %REQ(h?alt)%        request header h, else alt; an optional :N after ")" truncates to N bytes
//	%RESP(h)% %RESP(h?alt)%      response header, likewise
//	%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%
//	%BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//	%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME% %TRACE_ID%
//	%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%
//	%%                           a literal percent sign
//
// Header names are case-insensitive. The pseudo-headers :METHOD, :PATH and
// :AUTHORITY (and HOST) read Info.Method, Path and Authority; USER-AGENT,
// X-FORWARDED-FOR and X-REQUEST-ID read the matching Info fields first; and
// RESP(X-ENVOY-UPSTREAM-SERVICE-TIME) prints Info.UpstreamServiceTime when
// an upstream answered. Other names are looked up in Info.RequestHeaders or
// Info.ResponseHeaders (first value). A header that is present but empty
// prints as empty, as in Envoy.
//
// Two deliberate differences from Envoy: a newline is appended to a format
// that does not end with one, because the log is line-oriented; and control
// characters (bytes below 0x20 and 0x7f) inside values are written as \xHH,
// so that no request can forge or split log lines.
type TextFormat struct {
	source   string
	segments []segment
}

type opKind uint8

const (
	opLiteral opKind = iota
	opStartTime
	opReq
	opResp
	opProtocol
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opBytesReceived
	opBytesSent
	opDuration
	opUpstreamHost
	opUpstreamCluster
	opRouteName
	opDownstreamRemoteAddress
	opDownstreamRemoteAddressWithoutPort
	opTraceID
)

// simpleOps are the operators that take no argument.
var simpleOps = map[string]opKind{
	"PROTOCOL":                               opProtocol,
	"RESPONSE_CODE":                          opResponseCode,
	"RESPONSE_FLAGS":                         opResponseFlags,
	"RESPONSE_CODE_DETAILS":                  opResponseCodeDetails,
	"BYTES_RECEIVED":                         opBytesReceived,
	"BYTES_SENT":                             opBytesSent,
	"DURATION":                               opDuration,
	"UPSTREAM_HOST":                          opUpstreamHost,
	"UPSTREAM_CLUSTER":                       opUpstreamCluster,
	"ROUTE_NAME":                             opRouteName,
	"DOWNSTREAM_REMOTE_ADDRESS":              opDownstreamRemoteAddress,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamRemoteAddressWithoutPort,
	"TRACE_ID":                               opTraceID,
}

// hints help with operators people reach for that do not exist.
var hints = map[string]string{
	"REQUEST_ID": "use %REQ(X-REQUEST-ID)%",
	"METHOD":     "use %REQ(:METHOD)%",
	"PATH":       "use %REQ(:PATH)%",
	"AUTHORITY":  "use %REQ(:AUTHORITY)%",
	"USER_AGENT": "use %REQ(USER-AGENT)%",
	"SPAN_ID":    "Envoy has no span operator; the JSON format has span_id",
}

// headerRef is one header name of REQ/RESP, resolved at compile time.
type headerRef struct {
	key string // canonical MIME key for http.Header lookups
	// info reads the Info field that stands for this header; nil if none.
	info func(*streaminfo.Info) string
	// serviceTime marks x-envoy-upstream-service-time, which Info keeps as
	// a duration.
	serviceTime bool
}

// requestInfoFields are the request headers that Info carries, by
// lower-case name, with the field that holds each.
var requestInfoFields = map[string]func(*streaminfo.Info) string{
	":method":         func(i *streaminfo.Info) string { return i.Method },
	":path":           func(i *streaminfo.Info) string { return i.Path },
	":authority":      infoAuthority,
	"host":            infoAuthority,
	"user-agent":      func(i *streaminfo.Info) string { return i.UserAgent },
	"x-forwarded-for": func(i *streaminfo.Info) string { return i.XForwardedFor },
	"x-request-id":    func(i *streaminfo.Info) string { return i.RequestID },
}

func infoAuthority(i *streaminfo.Info) string { return i.Authority }

type segment struct {
	op      opKind
	lit     string
	main    headerRef
	alt     headerRef
	hasAlt  bool
	maxLen  int // 0: no limit
	timeFmt []timeDirective
}

// FormatError reports a problem in an access-log format string.
type FormatError struct {
	// Format is the whole format string.
	Format string
	// Pos is the 0-based byte offset of the offending command operator.
	Pos int
	// Operator is the operator text as written, such as "%FOO%"; it may be
	// empty when the problem is not one operator.
	Operator string
	// Reason says what is wrong and, where possible, how to fix it.
	Reason string
}

// Error implements error.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("access log text_format: ")
	if e.Operator != "" {
		b.WriteString(strconv.Quote(e.Operator))
		b.WriteString(" ")
	}
	b.WriteString("at position ")
	b.WriteString(strconv.Itoa(e.Pos))
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// isOpNameByte reports whether c may appear in an operator name; Envoy's
// grammar allows upper-case letters, digits and '_'.
func isOpNameByte(c byte) bool {
	return ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_'
}

// CompileTextFormat compiles an Envoy format string. An unknown or malformed
// command operator is a *FormatError that quotes it and gives its position.
func CompileTextFormat(format string) (*TextFormat, error) {
	tf := &TextFormat{source: format}
	var lit strings.Builder
	flushLit := func() {
		if lit.Len() > 0 {
			tf.segments = append(tf.segments, segment{op: opLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(format); {
		c := format[i]
		if c != '%' {
			j := strings.IndexByte(format[i:], '%')
			if j < 0 {
				j = len(format) - i
			}
			lit.WriteString(format[i : i+j])
			i += j
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		seg, end, err := parseOperator(format, i)
		if err != nil {
			return nil, err
		}
		flushLit()
		tf.segments = append(tf.segments, seg)
		i = end
	}
	if !strings.HasSuffix(format, "\n") {
		lit.WriteByte('\n')
	}
	flushLit()
	return tf, nil
}

// parseOperator parses the command operator that starts with the '%' at
// format[start], returning it and the offset just past its closing '%'.
// The grammar is Envoy's: %NAME%, %NAME(arg)%, each optionally with :N
// before the closing '%'.
//
//nolint:gocognit // one scanner over Envoy's operator grammar; split, its states would be spread over functions that share every index
func parseOperator(format string, start int) (segment, int, error) {
	i := start + 1
	for i < len(format) && isOpNameByte(format[i]) {
		i++
	}
	name := format[start+1 : i]
	fail := func(end int, reason string) (segment, int, error) {
		return segment{}, 0, &FormatError{Format: format, Pos: start, Operator: format[start:min(end, len(format))], Reason: reason}
	}
	if name == "" {
		return fail(i+1, "expected a command operator name (upper-case letters, digits, '_') after '%'; write %% for a literal percent sign")
	}
	var arg string
	hasArg := false
	if i < len(format) && format[i] == '(' {
		j := strings.IndexByte(format[i:], ')')
		if j < 0 {
			return fail(len(format), "missing ')' after the operator argument")
		}
		arg = format[i+1 : i+j]
		hasArg = true
		i += j + 1
	}
	maxLen := 0
	if i < len(format) && format[i] == ':' {
		j := i + 1
		for j < len(format) && '0' <= format[j] && format[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(format[i+1 : j])
		if err != nil || n <= 0 {
			return fail(j+1, "expected a positive length limit after ':'")
		}
		maxLen = n
		i = j
	}
	if i >= len(format) || format[i] != '%' {
		if i >= len(format) {
			return fail(i, "missing closing '%'")
		}
		return fail(i+1, "unexpected "+strconv.QuoteRune(rune(format[i]))+" in command operator; expected closing '%'")
	}
	end := i + 1
	op := format[start:end]

	if maxLen > 0 && name != "REQ" && name != "RESP" {
		return fail(end, "a :N length limit is only supported on REQ and RESP")
	}
	switch name {
	case "REQ", "RESP":
		if !hasArg || arg == "" {
			return fail(end, "needs a header name, as in %"+name+"(X-REQUEST-ID)%")
		}
		mainName, altName, hasAlt := strings.Cut(arg, "?")
		if hasAlt && strings.Contains(altName, "?") {
			return fail(end, "more than one alternative header; use %"+name+"(main?alternative)%")
		}
		if mainName == "" || (hasAlt && altName == "") {
			return fail(end, "empty header name")
		}
		for _, h := range []string{mainName, altName} {
			if h != "" && !validHeaderName(h) {
				return fail(end, "invalid header name "+strconv.Quote(h)+": use letters, digits and -, or a pseudo-header such as :PATH")
			}
		}
		resp := name == "RESP"
		seg := segment{op: opReq, main: resolveHeader(mainName, resp), hasAlt: hasAlt, maxLen: maxLen}
		if resp {
			seg.op = opResp
		}
		if hasAlt {
			seg.alt = resolveHeader(altName, resp)
		}
		return seg, end, nil
	case "START_TIME":
		seg := segment{op: opStartTime}
		if hasArg && arg != "" {
			dirs, err := compileTimeFormat(arg)
			var te *timeFormatError
			if errors.As(err, &te) {
				abs := start + len("%START_TIME(") + te.pos
				return fail(end, "START_TIME format: directive "+strconv.Quote(te.directive)+" at position "+strconv.Itoa(abs)+": "+te.msg)
			}
			seg.timeFmt = dirs
		}
		return seg, end, nil
	}
	if k, ok := simpleOps[name]; ok {
		if hasArg {
			return fail(end, "takes no argument; write %"+name+"%")
		}
		return segment{op: k}, end, nil
	}
	reason := "unknown command operator"
	if h, ok := hints[name]; ok {
		reason += " (" + h + ")"
	}
	return segment{}, 0, &FormatError{Format: format, Pos: start, Operator: op, Reason: reason}
}

// validHeaderName reports whether name is an HTTP field name (RFC 9110
// token characters), optionally with the leading ':' of a pseudo-header.
// Anything else could never match, so it is a mistake worth reporting.
func validHeaderName(name string) bool {
	name = strings.TrimPrefix(name, ":")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// resolveHeader maps a header name to the Info field that carries it, and
// canonicalises it for http.Header so that lookups do not allocate.
func resolveHeader(name string, resp bool) headerRef {
	lower := strings.ToLower(name)
	ref := headerRef{key: textproto.CanonicalMIMEHeaderKey(name)}
	if resp {
		ref.serviceTime = lower == "x-envoy-upstream-service-time"
	} else {
		ref.info = requestInfoFields[lower]
	}
	return ref
}

// String returns the format string the TextFormat was compiled from.
func (tf *TextFormat) String() string { return tf.source }

// AppendLine appends one formatted line for info to dst. It does not
// allocate when dst has room.
func (tf *TextFormat) AppendLine(dst []byte, info *streaminfo.Info) []byte {
	for i := range tf.segments {
		s := &tf.segments[i]
		switch s.op {
		case opLiteral:
			dst = append(dst, s.lit...)
		case opStartTime:
			switch {
			case info.StartTime.IsZero():
				dst = append(dst, '-')
			case s.timeFmt != nil:
				dst = appendCustomTime(dst, info.StartTime, s.timeFmt)
			default:
				dst = appendDefaultTime(dst, info.StartTime)
			}
		case opReq, opResp:
			dst = appendHeader(dst, info, s)
		case opProtocol:
			dst = appendTextValue(dst, info.Protocol)
		case opResponseCode:
			dst = strconv.AppendInt(dst, int64(info.ResponseCode), 10)
		case opResponseFlags:
			dst = appendFlags(dst, info.ResponseFlags)
		case opResponseCodeDetails:
			dst = appendTextValue(dst, info.ResponseCodeDetails)
		case opBytesReceived:
			dst = strconv.AppendInt(dst, info.BytesReceived, 10)
		case opBytesSent:
			dst = strconv.AppendInt(dst, info.BytesSent, 10)
		case opDuration:
			dst = strconv.AppendInt(dst, info.Duration.Milliseconds(), 10)
		case opUpstreamHost:
			dst = appendTextValue(dst, info.UpstreamHost)
		case opUpstreamCluster:
			dst = appendTextValue(dst, info.UpstreamCluster)
		case opRouteName:
			dst = appendTextValue(dst, info.RouteName)
		case opDownstreamRemoteAddress:
			dst = appendTextValue(dst, info.DownstreamRemoteAddress)
		case opDownstreamRemoteAddressWithoutPort:
			dst = appendTextValue(dst, hostOnly(info.DownstreamRemoteAddress))
		case opTraceID:
			dst = appendTextValue(dst, info.TraceID)
		}
	}
	return dst
}

// appendHeader appends a REQ or RESP operator's value: the main header,
// else the alternative, else "-".
func appendHeader(dst []byte, info *streaminfo.Info, s *segment) []byte {
	var h http.Header
	if s.op == opReq {
		h = info.RequestHeaders
	} else {
		h = info.ResponseHeaders
	}
	if s.main.serviceTime && info.HasUpstreamServiceTime {
		return strconv.AppendInt(dst, info.UpstreamServiceTime.Milliseconds(), 10)
	}
	v, ok := lookupHeader(info, h, s.main)
	if !ok && s.hasAlt {
		if s.alt.serviceTime && info.HasUpstreamServiceTime {
			return strconv.AppendInt(dst, info.UpstreamServiceTime.Milliseconds(), 10)
		}
		v, ok = lookupHeader(info, h, s.alt)
	}
	if !ok {
		return append(dst, '-')
	}
	if s.maxLen > 0 && len(v) > s.maxLen {
		v = v[:s.maxLen]
	}
	return appendSanitized(dst, v)
}

// lookupHeader finds one header's value, preferring the Info field that
// stands for it. ok is false when the header is absent.
func lookupHeader(info *streaminfo.Info, h http.Header, ref headerRef) (string, bool) {
	var v string
	if ref.info != nil {
		v = ref.info(info)
	}
	if v != "" {
		return v, true
	}
	if vs := h[ref.key]; len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// appendTextValue appends v, or "-" when it is empty.
func appendTextValue(dst []byte, v string) []byte {
	if v == "" {
		return append(dst, '-')
	}
	return appendSanitized(dst, v)
}

// appendSanitized appends v with control bytes written as \xHH so that a
// value can never end or forge a log line.
func appendSanitized(dst []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x20 && c != 0x7f {
			continue
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, '\\', 'x', lowerHex[c>>4], lowerHex[c&0xf])
		start = i + 1
	}
	return append(dst, v[start:]...)
}

// hostOnly strips the port from host:port or [v6]:port.
func hostOnly(addr string) string {
	if addr == "" {
		return ""
	}
	if addr[0] == '[' {
		if j := strings.IndexByte(addr, ']'); j > 0 {
			return addr[1:j]
		}
		return addr
	}
	if j := strings.LastIndexByte(addr, ':'); j >= 0 && strings.IndexByte(addr, ':') == j {
		return addr[:j]
	}
	return addr // a bare IPv6 address or no port
}
