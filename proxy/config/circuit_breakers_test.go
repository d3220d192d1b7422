package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestCircuitBreakerDefaults(t *testing.T) {
	budget := func(p float64, n int) *RetryBudget { return &RetryBudget{BudgetPercent: &p, MinRetryConcurrency: &n} }
	tests := []struct {
		name string
		src  string
		want CircuitBreakers
	}{
		{
			"absent: Envoy's defaults",
			minimal,
			CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3},
		},
		{
			"empty block",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {}\n"),
			CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3},
		},
		{
			"explicit zeros are kept",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {max_connections: 0, max_pending_requests: 0, max_requests: 0, max_retries: 0}\n"),
			CircuitBreakers{},
		},
		{
			"some set, others default",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {max_requests: 5, track_remaining: true}\n"),
			CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 5, MaxRetries: 3, TrackRemaining: true},
		},
		{
			"empty retry budget gets Envoy's budget",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {retry_budget: {}}\n"),
			CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3, RetryBudget: budget(20, 3)},
		},
		{
			"retry budget set",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {retry_budget: {budget_percent: 0, min_retry_concurrency: 0}}\n"),
			CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3, RetryBudget: budget(0, 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.src).Clusters[0].CircuitBreakers
			if got == nil || !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("circuit_breakers = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestCircuitBreakerDefaultsInCode checks ApplyDefaults on a config built in
// code, where zero means unset.
func TestCircuitBreakerDefaultsInCode(t *testing.T) {
	c := &Config{Clusters: []Cluster{{Name: "c", CircuitBreakers: &CircuitBreakers{MaxRequests: 7, RetryBudget: &RetryBudget{}}}}}
	c.ApplyDefaults()
	cb := c.Clusters[0].CircuitBreakers
	if cb.MaxRequests != 7 || cb.MaxConnections != DefaultMaxConnections || cb.MaxRetries != DefaultMaxRetries ||
		*cb.RetryBudget.BudgetPercent != DefaultRetryBudgetPercent || *cb.RetryBudget.MinRetryConcurrency != DefaultMinRetryConcurrency {
		t.Errorf("circuit_breakers = %+v, budget %+v", cb, cb.RetryBudget)
	}
}

func TestCircuitBreakerErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			"negative and too large thresholds",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers:\n      max_connections: -1\n      max_pending_requests: 4294967296\n      max_requests: -5\n      max_retries: -2\n"),
			[]string{
				"test.yaml:14:24: clusters[0].circuit_breakers.max_connections: must be from 0 to 4294967295, got -1",
				"test.yaml:15:29: clusters[0].circuit_breakers.max_pending_requests: must be from 0 to 4294967295, got 4294967296",
				"test.yaml:16:21: clusters[0].circuit_breakers.max_requests: must be from 0 to 4294967295, got -5",
				"test.yaml:17:20: clusters[0].circuit_breakers.max_retries: must be from 0 to 4294967295, got -2",
			},
		},
		{
			"retry budget out of range",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {retry_budget: {budget_percent: 120, min_retry_concurrency: -1}}\n"),
			[]string{
				"test.yaml:13:55: clusters[0].circuit_breakers.retry_budget.budget_percent: must be a percentage from 0 to 100, got 120",
				"test.yaml:13:83: clusters[0].circuit_breakers.retry_budget.min_retry_concurrency: must be from 0 to 4294967295, got -1",
			},
		},
		{
			"unknown field lists the allowed ones",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {max_request: 5}\n"),
			[]string{
				`test.yaml:13:24: clusters[0].circuit_breakers: unknown field "max_request" (did you mean "max_requests"?); allowed: max_connections, max_pending_requests, max_requests, max_retries, retry_budget, track_remaining`,
			},
		},
		{
			"priorities are not supported",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {thresholds: [{priority: HIGH}]}\n"),
			[]string{
				`test.yaml:13:24: clusters[0].circuit_breakers: unknown field "thresholds"; allowed: max_connections, max_pending_requests, max_requests, max_retries, retry_budget, track_remaining`,
			},
		},
		{
			"wrong type",
			edit(t, "  - name: c\n", "  - name: c\n    circuit_breakers: {max_requests: many, retry_budget: {budget_percent: half}}\n"),
			nil, // checked for the field paths only, below
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != nil {
				checkErrs(t, tt.src, tt.want)
				return
			}
			joined := strings.Join(parseErrs(t, tt.src), "\n")
			for _, p := range []string{"clusters[0].circuit_breakers.max_requests", "clusters[0].circuit_breakers.retry_budget.budget_percent"} {
				if !strings.Contains(joined, p) {
					t.Errorf("errors do not name %s:\n%s", p, joined)
				}
			}
		})
	}
}
