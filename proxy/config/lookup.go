package config

import "reflect"

// Cluster returns the cluster with the given name, or nil. The pointer is
// into c.Clusters, so it stays valid as long as the Config does.
func (c *Config) Cluster(name string) *Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

// Redacted returns a deep copy that is safe to show on the admin server's
// /config_dump: secrets (TLS private key paths) are replaced by
// "[redacted]". The receiver is not modified.
func (c *Config) Redacted() *Config {
	out := &Config{}
	deepCopy(reflect.ValueOf(out).Elem(), reflect.ValueOf(c).Elem())
	for i := range out.Listeners {
		if t := out.Listeners[i].TLS; t != nil && t.KeyFile != "" {
			t.KeyFile = redactedValue
		}
	}
	return out
}

// deepCopy copies src into dst, allocating new pointers and slices so that
// the two share no memory. Config holds only structs, pointers, slices and
// plain values, and the string-keyed maps of tracing, which is all this
// handles.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		deepCopy(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, iter.Value())
			m.SetMapIndex(iter.Key(), v)
		}
		dst.Set(m)
	case reflect.Struct:
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	default:
		dst.Set(src)
	}
}
