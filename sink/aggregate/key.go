package aggregate

import "encoding/binary"

// AppendKey appends the series key of the metric name with labels (sorted
// by name, unique) to dst. The key is length-prefixed text:
//
//	uvarint(len(name)) name { uvarint(len(label)) label uvarint(len(value)) value }
//
// so distinct (name, labels) give distinct keys whatever bytes they hold,
// and the store can decode name and labels from the key it keeps anyway
// instead of storing them a second time.
func AppendKey(dst []byte, name string, labels []Label) []byte {
	dst = appendField(dst, name)
	for _, l := range labels {
		dst = appendField(dst, l.Name)
		dst = appendField(dst, l.Value)
	}
	return dst
}

// AppendKeyName starts a key with the metric name; AppendKeyLabel adds one
// label. Together they build the same key as AppendKey without a []Label.
func AppendKeyName(dst []byte, name string) []byte { return appendField(dst, name) }

// AppendKeyLabel appends one label (in name order) to a key begun with
// AppendKeyName.
func AppendKeyLabel(dst []byte, name, value string) []byte {
	return appendField(appendField(dst, name), value)
}

func appendField(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// readField splits the first field off b.
func readField[S string | []byte](b S) (field, rest S, ok bool) {
	var n uint64
	var shift uint
	for i := 0; i < len(b); i++ {
		c := b[i]
		if shift > 56 {
			return field, rest, false
		}
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if n > uint64(len(b)-i-1) {
				return field, rest, false
			}
			end := i + 1 + int(n)
			return b[i+1 : end], b[end:], true
		}
		shift += 7
	}
	return field, rest, false
}

// decodeName returns the metric name of a key and the encoded labels.
func decodeName[S string | []byte](key S) (name, rest S, ok bool) {
	return readField(key)
}

// validKey reports whether key decodes completely: a name and whole
// label pairs.
func validKey(key []byte) bool {
	_, rest, ok := decodeName(key)
	if !ok {
		return false
	}
	for len(rest) > 0 {
		if _, rest, ok = readField(rest); !ok {
			return false
		}
		if _, rest, ok = readField(rest); !ok {
			return false
		}
	}
	return true
}

// appendLabels decodes the labels of a valid key; the strings alias key.
func appendLabels(dst []Label, key string) []Label {
	_, rest, _ := decodeName(key)
	for len(rest) > 0 {
		var n, v string
		n, rest, _ = readField(rest)
		v, rest, _ = readField(rest)
		dst = append(dst, Label{Name: n, Value: v})
	}
	return dst
}
