package lbpolicy

import (
	"math"
	"strings"
	"testing"
)

func TestIsPrime(t *testing.T) {
	primes := map[int]bool{2: true, 3: true, 5: true, 7: true, 11: true, 13: true, 65537: true, 131071: true, 1000003: true, 5000011: true}
	for n := -1; n < 14; n++ {
		if got := IsPrime(n); got != primes[n] {
			t.Errorf("IsPrime(%d) = %v", n, got)
		}
	}
	for _, n := range []int{65537, 131071, 1000003, 5000011} {
		if !IsPrime(n) {
			t.Errorf("IsPrime(%d) = false", n)
		}
	}
	for _, n := range []int{65536, 65535, 5000013, 1000001, 25, 49} {
		if IsPrime(n) {
			t.Errorf("IsPrime(%d) = true", n)
		}
	}
}

func TestCheck(t *testing.T) {
	inf, neg := math.Inf(1), -1.0
	tests := []struct {
		name  string
		block string
		cfg   Config
		want  string
	}{
		{"defaults are valid", "least_request_lb_config", defaulted(&LeastRequestConfig{}), ""},
		{"choice count", "least_request_lb_config", defaulted(&LeastRequestConfig{ChoiceCount: 1}), "least_request_lb_config.choice_count: must be at least 2, got 1"},
		{"infinite bias", "least_request_lb_config", defaulted(&LeastRequestConfig{ActiveRequestBias: &inf}), "least_request_lb_config.active_request_bias: must be a finite number, got +Inf"},
		{"negative bias", "least_request_lb_config", defaulted(&LeastRequestConfig{ActiveRequestBias: &neg}), "least_request_lb_config.active_request_bias: must not be negative, got -1"},
		{"no bias", "least_request_lb_config", &LeastRequestConfig{ChoiceCount: 2}, "least_request_lb_config.active_request_bias: required (the default is 1)"},
		{"ring defaults", "ring_hash_lb_config", defaulted(&RingHashConfig{}), ""},
		{"ring zero", "ring_hash_lb_config", &RingHashConfig{MinimumRingSize: 1, MaximumRingSize: 1},
			`ring_hash_lb_config.hash_function: must be one of xx_hash, murmur_hash_2; got ""`},
		{"maglev defaults", "maglev_lb_config", defaulted(&MaglevConfig{}), ""},
		{"maglev not prime", "maglev_lb_config", &MaglevConfig{TableSize: 65535},
			"maglev_lb_config.table_size: must be a prime number (such as 65537, the default, 131071 or 1000003), got 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.block, tt.cfg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestApplyDefaultsKeepsWritten: a field the file wrote keeps its zero.
func TestApplyDefaultsKeepsWritten(t *testing.T) {
	c := &MaglevConfig{}
	c.ApplyDefaults(func(f any) bool { return f == &c.TableSize })
	if c.TableSize != 0 {
		t.Errorf("table_size = %d, want the written 0 kept", c.TableSize)
	}
	c.ApplyDefaults(func(any) bool { return false })
	if c.TableSize != DefaultMaglevTableSize {
		t.Errorf("table_size = %d, want the default %d", c.TableSize, DefaultMaglevTableSize)
	}
}

func TestNamesAndRegister(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "round_robin,least_request,random,ring_hash,maglev" {
		t.Fatalf("Names = %s", got)
	}
	for _, bad := range []string{"", RoundRobin} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad)
				}
			}()
			Register(bad)
		}()
	}
}

func defaulted[C Config](c C) C {
	c.ApplyDefaults(func(any) bool { return false })
	return c
}
