package streaminfo

import (
	"strings"
	"testing"
)

// envoyOrder is Envoy's %RESPONSE_FLAGS% short codes in the order Envoy
// prints them, written out from Envoy's access-log documentation rather
// than from flagNames, so that a renamed or reordered entry there fails
// here. Flag i is 1<<i.
const envoyOrder = "LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,RLSE,DC,URX,SI,NC,DPE,UMSDR,OM,UPE"

type flagCode struct {
	flag Flag
	code string
}

// envoyCodes pairs each flag with its code from envoyOrder.
var envoyCodes = func() []flagCode {
	var out []flagCode
	for i, code := range strings.Split(envoyOrder, ",") {
		out = append(out, flagCode{Flag(1) << i, code})
	}
	return out
}()

func TestEachFlagRendersEnvoysShortCode(t *testing.T) {
	seen := map[Flag]bool{}
	for _, tc := range envoyCodes {
		t.Run(tc.code, func(t *testing.T) {
			if seen[tc.flag] {
				t.Fatalf("flag %#x shared with another code", uint32(tc.flag))
			}
			seen[tc.flag] = true
			var fs Flags
			fs.Set(tc.flag)
			if got := fs.String(); got != tc.code {
				t.Errorf("Flags{%s}.String() = %q, want %q", tc.code, got, tc.code)
			}
			if !fs.Has(tc.flag) {
				t.Errorf("Has(%s) = false after Set", tc.code)
			}
		})
	}
	// Spot checks that the bit positions are the named constants.
	for _, c := range []flagCode{{FailedLocalHealthCheck, "LH"}, {NoRouteFound, "NR"}, {RateLimitServiceError, "RLSE"}, {UpstreamProtocolError, "UPE"}} {
		if got := Flags(c.flag).String(); got != c.code {
			t.Errorf("%#x renders %q, want %q", uint32(c.flag), got, c.code)
		}
	}
	// No flag beyond the last code: the next bit renders nothing.
	if got := Flags(1 << len(envoyCodes)).String(); got != "" {
		t.Errorf("bit %d, past the last flag, renders %q", len(envoyCodes), got)
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		name string
		set  []Flag
		want string
	}{
		{"empty is a dash", nil, "-"},
		{"one", []Flag{NoRouteFound}, "NR"},
		{"Envoy's order, not the order set", []Flag{UpstreamRetryLimitExceeded, UpstreamRequestTimeout}, "UT,URX"},
		{"set twice counts once", []Flag{UpstreamOverflow, UpstreamOverflow}, "UO"},
		{"connection failure then retries exhausted", []Flag{UpstreamConnectionFailure, UpstreamRetryLimitExceeded}, "UF,URX"},
		{"three", []Flag{DownstreamConnectionTermination, FaultInjected, DelayInjected}, "DI,FI,DC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fs Flags
			for _, f := range tc.set {
				fs.Set(f)
			}
			if got := fs.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFlagsAllRendersEveryCodeOnce(t *testing.T) {
	var fs Flags
	codes := make([]string, 0, len(envoyCodes))
	for _, tc := range envoyCodes {
		fs.Set(tc.flag)
		codes = append(codes, tc.code)
	}
	if got, want := fs.String(), strings.Join(codes, ","); got != want {
		t.Errorf("all flags: %q, want %q", got, want)
	}
}

func TestFlagsHasOnlyWhatWasSet(t *testing.T) {
	var fs Flags
	fs.Set(RateLimited)
	for _, tc := range envoyCodes {
		if got, want := fs.Has(tc.flag), tc.flag == RateLimited; got != want {
			t.Errorf("Has(%s) = %v, want %v", tc.code, got, want)
		}
	}
}
