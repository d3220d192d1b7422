package lbpolicy

// Defaults and limits of maglev_lb_config.
const (
	DefaultMaglevTableSize = 65537
	// MaxMaglevTableSize is Envoy's upper bound for table_size.
	MaxMaglevTableSize = 5000011
)

// MaglevConfig is Envoy's cluster.maglev_lb_config.
type MaglevConfig struct {
	// TableSize is the number of entries of the Maglev lookup table: a
	// prime, at most 5000011. A table about 100 times the number of hosts
	// keeps each host's share within about 1% of its weight. Default 65537.
	TableSize int `yaml:"table_size"`
}

// ApplyDefaults implements Config.
func (c *MaglevConfig) ApplyDefaults(explicit func(field any) bool) {
	if c.TableSize == 0 && !explicit(&c.TableSize) {
		c.TableSize = DefaultMaglevTableSize
	}
}

// Validate implements Config.
func (c *MaglevConfig) Validate(r Reporter) {
	switch n := c.TableSize; {
	case n < 2 || n > MaxMaglevTableSize:
		r.Errorf("table_size", "must be a prime from 2 to %d, got %d", MaxMaglevTableSize, n)
	case !IsPrime(n):
		r.Errorf("table_size", "must be a prime number (such as 65537, the default, 131071 or 1000003), got %d", n)
	}
}

// IsPrime reports whether n is prime, by trial division (table sizes are at
// most 5000011, so at most about 1100 divisions).
func IsPrime(n int) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := 3; d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
