package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// jsonClient bounds every API call a test makes to a real component, so a
// hung server fails the poll instead of the test's deadline.
var jsonClient = &http.Client{Timeout: 10 * time.Second}

// GetJSON fetches u and decodes its JSON body into v. A status other than
// 200 is an error that names the URL and the status.
func GetJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := jsonClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// HTTPOK fetches u and reports whether it answered 200, for readiness
// polls (/-/ready, /ready).
func HTTPOK(u string) error {
	resp, err := jsonClient.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
