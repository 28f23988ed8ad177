package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

func TestStats(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	id, token := s.signUpAndToken(t, "ada")
	s.signUpAndToken(t, "bob")
	if code, body := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data:batch", token, batchBody(3)); code != http.StatusCreated {
		t.Fatalf("batch = %d %s", code, body)
	}

	resp, err := s.client.Get(s.URL + "/api/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got statsView
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if resp.StatusCode != http.StatusOK || got.Users != 2 || len(got.Days) != 1 ||
		got.Days[0] != (dayStatsView{Day: today, SignUps: 2, Records: 3}) {
		t.Errorf("GET /api/v1/stats = %d %+v, want 200, 2 users, %s: 2 sign-ups, 3 records", resp.StatusCode, got, today)
	}
	if got.AsOf.IsZero() || got.AgeSeconds < 0 {
		t.Errorf("as_of %v, age %v: want a time and an age", got.AsOf, got.AgeSeconds)
	}
	if cc, tag := resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"); cc != cacheStats || tag == "" {
		t.Errorf("Cache-Control %q, ETag %q: want %q and an ETag", cc, tag, cacheStats)
	}
}
