package streaminfo

import (
	"strings"
	"testing"
)

// envoyCodes is Envoy's %RESPONSE_FLAGS% short code for each flag, written
// out from Envoy's access-log documentation rather than from flagNames, so
// that a renamed or reordered entry there fails here.
var envoyCodes = []struct {
	flag Flag
	code string
}{
	{FailedLocalHealthCheck, "LH"},
	{NoHealthyUpstream, "UH"},
	{UpstreamRequestTimeout, "UT"},
	{LocalReset, "LR"},
	{UpstreamRemoteReset, "UR"},
	{UpstreamConnectionFailure, "UF"},
	{UpstreamConnectionTermination, "UC"},
	{UpstreamOverflow, "UO"},
	{NoRouteFound, "NR"},
	{DelayInjected, "DI"},
	{FaultInjected, "FI"},
	{RateLimited, "RL"},
	{RateLimitServiceError, "RLSE"},
	{DownstreamConnectionTermination, "DC"},
	{UpstreamRetryLimitExceeded, "URX"},
	{StreamIdleTimeout, "SI"},
	{NoClusterFound, "NC"},
	{DownstreamProtocolError, "DPE"},
	{UpstreamMaxStreamDurationReached, "UMSDR"},
	{OverloadManager, "OM"},
	{UpstreamProtocolError, "UPE"},
}

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
	// Every defined bit has a code: the highest flag is the last one, and
	// the bits are contiguous from 1.
	if last := envoyCodes[len(envoyCodes)-1].flag; last != 1<<(len(envoyCodes)-1) {
		t.Errorf("the last flag is %#x; want %#x (a flag without a code?)", uint32(last), uint32(1)<<(len(envoyCodes)-1))
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
