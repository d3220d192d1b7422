package accesslog

import (
	"strconv"
	"time"
)

// appendDefaultTime renders t as Envoy's default %START_TIME%
// ("%Y-%m-%dT%H:%M:%E3SZ"): RFC 3339 in UTC with milliseconds, truncated
// rather than rounded, as Envoy does. Hand-written because it runs for every
// log line; time.AppendFormat is several times slower.
func appendDefaultTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	}
	hour, minute, sec := t.Clock()
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendPadded(dst, t.Nanosecond()/1e6, 3)
	return append(dst, 'Z')
}

// appendPadded appends a non-negative v in decimal, zero-padded to width.
func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}

// timeDirective is one compiled piece of a %START_TIME(...)% format.
type timeDirective struct {
	kind   timeKind
	lit    string // for timeLiteral
	digits int    // for timeFraction: how many sub-second digits
}

type timeKind uint8

const (
	timeLiteral  timeKind = iota
	timeYear              // %Y
	timeMonth             // %m
	timeDay               // %d
	timeHour              // %H
	timeMinute            // %M
	timeSecond            // %S
	timeEpoch             // %s
	timeFraction          // %f, %<n>f: only the sub-second digits
	timeSecFrac           // %E<n>S: seconds, a dot and n sub-second digits
	timeZone              // %z: always +0000 since times are UTC
	timeZoneName          // %Z: always UTC
)

// timeFields are the one-letter directives that render one field of the time.
var timeFields = map[byte]timeKind{
	'Y': timeYear, 'm': timeMonth, 'd': timeDay,
	'H': timeHour, 'M': timeMinute, 'S': timeSecond,
	's': timeEpoch, 'z': timeZone, 'Z': timeZoneName,
}

// timeShorthands are the directives that stand for three fields joined by a
// separator: %T is %H:%M:%S and %F is %Y-%m-%d.
var timeShorthands = map[byte]struct {
	sep   string
	kinds [3]timeKind
}{
	'T': {sep: ":", kinds: [3]timeKind{timeHour, timeMinute, timeSecond}},
	'F': {sep: "-", kinds: [3]timeKind{timeYear, timeMonth, timeDay}},
}

// compileTimeFormat compiles the strftime-style subset of Envoy's
// %START_TIME(format)% that hopwatch supports: %Y %m %d %H %M %S %s %z %Z
// %T (= %H:%M:%S) %F (= %Y-%m-%d) %f (nanoseconds, 9 digits) %1f…%9f,
// %E1S…%E9S and %%. Times are always rendered in UTC. The returned error
// text names the directive and its byte offset within format.
func compileTimeFormat(format string) ([]timeDirective, error) {
	var out []timeDirective
	lit := func(s string) {
		if n := len(out); n > 0 && out[n-1].kind == timeLiteral {
			out[n-1].lit += s
			return
		}
		out = append(out, timeDirective{kind: timeLiteral, lit: s})
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			lit(format[i : i+1])
			continue
		}
		start := i
		i++
		if i >= len(format) {
			return nil, &timeFormatError{pos: start, directive: "%", msg: "ends with a lone '%' (write %% for a percent sign)"}
		}
		if k, ok := timeFields[format[i]]; ok {
			out = append(out, timeDirective{kind: k})
			continue
		}
		if sh, ok := timeShorthands[format[i]]; ok {
			for j, k := range sh.kinds {
				if j > 0 {
					lit(sh.sep)
				}
				out = append(out, timeDirective{kind: k})
			}
			continue
		}
		switch format[i] {
		case '%':
			lit("%")
		case 'f':
			out = append(out, timeDirective{kind: timeFraction, digits: 9})
		case '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if i+1 >= len(format) || format[i+1] != 'f' {
				return nil, &timeFormatError{pos: start, directive: format[start:min(i+2, len(format))], msg: "a digit must be followed by f, as in %3f"}
			}
			out = append(out, timeDirective{kind: timeFraction, digits: int(format[i] - '0')})
			i++
		case 'E':
			if i+2 >= len(format) || format[i+1] < '1' || format[i+1] > '9' || format[i+2] != 'S' {
				return nil, &timeFormatError{pos: start, directive: format[start:min(i+3, len(format))], msg: "expected %E1S … %E9S"}
			}
			out = append(out, timeDirective{kind: timeSecFrac, digits: int(format[i+1] - '0')})
			i += 2
		default:
			return nil, &timeFormatError{pos: start, directive: format[start : i+1], msg: "unsupported; supported are %Y %m %d %H %M %S %s %z %Z %T %F %f %1f-%9f %E1S-%E9S %%"}
		}
	}
	return out, nil
}

// timeFormatError is a problem in a %START_TIME(...)% argument; the text
// compiler turns it into a FormatError positioned in the whole format.
type timeFormatError struct {
	pos       int
	directive string
	msg       string
}

func (e *timeFormatError) Error() string {
	return "directive " + strconv.Quote(e.directive) + " at offset " + strconv.Itoa(e.pos) + ": " + e.msg
}

// appendCustomTime renders t, in UTC, with a compiled %START_TIME(...)% format.
func appendCustomTime(dst []byte, t time.Time, dirs []timeDirective) []byte {
	t = t.UTC()
	for _, d := range dirs {
		switch d.kind {
		case timeLiteral:
			dst = append(dst, d.lit...)
		case timeYear:
			if y := t.Year(); y >= 0 {
				dst = appendPadded(dst, y, 4)
			} else {
				dst = strconv.AppendInt(dst, int64(y), 10)
			}
		case timeMonth:
			dst = appendPadded(dst, int(t.Month()), 2)
		case timeDay:
			dst = appendPadded(dst, t.Day(), 2)
		case timeHour:
			dst = appendPadded(dst, t.Hour(), 2)
		case timeMinute:
			dst = appendPadded(dst, t.Minute(), 2)
		case timeSecond:
			dst = appendPadded(dst, t.Second(), 2)
		case timeEpoch:
			dst = strconv.AppendInt(dst, t.Unix(), 10)
		case timeFraction:
			dst = appendFraction(dst, t.Nanosecond(), d.digits)
		case timeSecFrac:
			dst = appendPadded(dst, t.Second(), 2)
			dst = append(dst, '.')
			dst = appendFraction(dst, t.Nanosecond(), d.digits)
		case timeZone:
			dst = append(dst, "+0000"...)
		case timeZoneName:
			dst = append(dst, "UTC"...)
		}
	}
	return dst
}

// appendFraction appends the first digits (1–9) of the nanoseconds ns,
// truncated.
func appendFraction(dst []byte, ns, digits int) []byte {
	for range 9 - digits {
		ns /= 10
	}
	return appendPadded(dst, ns, digits)
}
