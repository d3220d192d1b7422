package lbpolicy

import "testing"

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
