package topologies_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// dashboardExprs returns every query of dashboards/scalelab.json, by panel
// title, with Grafana's $__rate_interval set to rateInterval.
func dashboardExprs(t *testing.T, rateInterval string) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../dashboards/scalelab.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			}
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("parse dashboard: %v", err)
	}
	out := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out[p.Title+" / "+tg.RefID] = strings.ReplaceAll(tg.Expr, "$__rate_interval", rateInterval)
		}
	}
	return out
}

// Every query of the dashboard returns data from phase 4's Prometheus once
// the topology has served some traffic: sign-up, sign-in, anonymous reads
// through the CDN (a miss, then hits) and an update (a write to the
// primary, a purge). The scrape targets include Debian's exporters for
// Postgres, Redis and Varnish.
func TestPhase4DashboardQueriesReturnData(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	api := top.EntryURL + top.API

	// A user, a token, reads and a write through the entry point.
	stamp := time.Now().UnixNano()
	const password = "correct horse battery"
	status, body := send(t, http.MethodPost, api+"/users", "", fmt.Sprintf(`{"email":"dash-%d@example.com","username":"dash_%d","password":%q}`, stamp, stamp, password))
	if status != http.StatusCreated {
		t.Fatalf("sign up = %d %s", status, body)
	}
	var u struct{ ID string }
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	status, body = send(t, http.MethodPost, api+"/auth/token", "", fmt.Sprintf(`{"login":"dash_%d","password":%q}`, stamp, password))
	if status != http.StatusOK {
		t.Fatalf("token = %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	// An anonymous read is not the writer's: it may reach a replica that
	// has not replayed the sign-up yet, so wait until one answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := send(t, http.MethodGet, api+"/users/"+u.ID, "", "")
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anonymous read of a new user = %d %s after 10s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 20 {
		if status, body := send(t, http.MethodGet, api+"/users/"+u.ID, "", ""); status != http.StatusOK {
			t.Fatalf("read %d = %d %s", i, status, body)
		}
		if i%5 == 0 {
			if status, body := send(t, http.MethodPut, api+"/users/"+u.ID, tok.AccessToken, fmt.Sprintf(`{"profile":{"name":"dash %d"}}`, i)); status != http.StatusOK {
				t.Fatalf("update %d = %d %s", i, status, body)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// rate() needs two scrapes of a series inside the window: poll until
	// every query has data, for a while.
	exprs := dashboardExprs(t, "30s")
	if len(exprs) < 20 {
		t.Fatalf("dashboard has %d queries, want the 20 or more of its panels", len(exprs))
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		var empty []string
		for name, expr := range exprs {
			n, err := promSeries(ctx, top.PrometheusURL, expr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if n == 0 {
				empty = append(empty, name+": "+expr)
			}
		}
		if len(empty) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d dashboard queries return no data:\n%s", len(empty), len(exprs), strings.Join(empty, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// send makes one request with an optional bearer token and JSON body and
// returns the status and body.
func send(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// promSeries runs an instant query and returns how many series it gave.
func promSeries(ctx context.Context, base, query string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, fmt.Errorf("query %q: %w", query, err)
	}
	if doc.Status != "success" {
		return 0, fmt.Errorf("query %q: %s", query, doc.Error)
	}
	return len(doc.Data.Result), nil
}
