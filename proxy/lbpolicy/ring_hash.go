package lbpolicy

// Defaults and limits of ring_hash_lb_config.
const (
	DefaultMinimumRingSize  = 1024
	DefaultMaximumRingSize  = MaxRingSize
	DefaultRingHashFunction = "xx_hash"
	// MaxRingSize is Envoy's upper bound for both ring sizes (8M entries).
	MaxRingSize = 8 << 20
)

// RingHashFunctions are the hash_function values, the default first.
var RingHashFunctions = []string{"xx_hash", "murmur_hash_2"}

// RingHashConfig is Envoy's cluster.ring_hash_lb_config.
type RingHashConfig struct {
	// MinimumRingSize is the least number of ring entries. Each host gets
	// entries in proportion to its weight, the lightest at least
	// ceil(minimum_ring_size × its share); more entries spread keys more
	// evenly and cost memory and build time. 1 to 8388608. Default 1024.
	MinimumRingSize int `yaml:"minimum_ring_size"`
	// MaximumRingSize caps the ring, whatever the weights ask for.
	// minimum_ring_size to 8388608. Default 8388608 (8M).
	MaximumRingSize int `yaml:"maximum_ring_size"`
	// HashFunction places the hosts on the ring: xx_hash (default) or
	// murmur_hash_2 (libstdc++'s std::hash, as Envoy's MURMUR_HASH_2).
	// Request hashes are always xxHash64.
	HashFunction string `yaml:"hash_function"`
}

// ApplyDefaults implements Config.
func (c *RingHashConfig) ApplyDefaults(explicit func(field any) bool) {
	if c.MinimumRingSize == 0 && !explicit(&c.MinimumRingSize) {
		c.MinimumRingSize = DefaultMinimumRingSize
	}
	if c.MaximumRingSize == 0 && !explicit(&c.MaximumRingSize) {
		c.MaximumRingSize = DefaultMaximumRingSize
	}
	if c.HashFunction == "" && !explicit(&c.HashFunction) {
		c.HashFunction = DefaultRingHashFunction
	}
}

// Validate implements Config.
func (c *RingHashConfig) Validate(r Reporter) {
	minOK := c.MinimumRingSize >= 1 && c.MinimumRingSize <= MaxRingSize
	if !minOK {
		r.Errorf("minimum_ring_size", "must be from 1 to %d, got %d", MaxRingSize, c.MinimumRingSize)
	}
	switch {
	case c.MaximumRingSize < 1 || c.MaximumRingSize > MaxRingSize:
		r.Errorf("maximum_ring_size", "must be from 1 to %d, got %d", MaxRingSize, c.MaximumRingSize)
	case minOK && c.MaximumRingSize < c.MinimumRingSize:
		r.Errorf("maximum_ring_size", "must not be less than minimum_ring_size %d, got %d", c.MinimumRingSize, c.MaximumRingSize)
	}
	r.OneOf("hash_function", c.HashFunction, RingHashFunctions)
}
