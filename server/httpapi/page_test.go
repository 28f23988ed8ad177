package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

var cheapParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// signUpAndToken signs up name and returns its id and a token.
func (s *testServer) signUpAndToken(t *testing.T, name string) (id, token string) {
	t.Helper()
	code, _, body := s.post(t, "/api/v1/users", "192.0.2.1", signUpBody(name))
	if code != http.StatusCreated {
		t.Fatalf("sign-up = %d %s", code, body)
	}
	var u struct{ ID string }
	json.Unmarshal(body, &u)
	code, _, body = s.post(t, "/api/v1/auth/token", "192.0.2.1", map[string]string{"login": name, "password": "correct horse " + name})
	if code != http.StatusOK {
		t.Fatalf("token = %d %s", code, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &tok)
	return u.ID, tok.AccessToken
}

func (s *testServer) do(t testing.TB, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestRecordPagesAreBounded is issue 9's finding 2: one user's 100 records
// of ~1 MiB of '<' made GET …/data?limit=100 build a ~600 MiB response
// (json.Marshal writes '<' as \u003c) and took the server to 2.3 GiB. Now
// a page stops at server.MaxPageBytes, is streamed and written without
// HTML escaping, so four concurrent full pages grow the heap by a few MiB;
// the test samples the live heap while they run and wants well under 256
// MiB (it fails on the old code, which needs over 2 GiB).
func TestRecordPagesAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100 MiB of records")
	}
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	id, token := s.signUpAndToken(t, "hoarder")
	record := []byte(`{"data":"` + strings.Repeat("<", 1<<20-64) + `"}`) // just under the 1 MiB body limit
	for i := range 100 {
		if code, body := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data", token, record); code != http.StatusCreated {
			t.Fatalf("record %d = %d %s", i, code, body)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	var wg sync.WaitGroup
	pages := make([][]byte, 4)
	for i := range pages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/users/"+id+"/data?limit=100", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := s.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			// Read slowly, as a client far away would: the server must not
			// buffer the rest meanwhile.
			var buf bytes.Buffer
			for {
				n, err := io.CopyN(&buf, resp.Body, 256<<10)
				if err != nil || n == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			pages[i] = buf.Bytes()
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base)
	// The test's own client holds the four bodies it read: count them out.
	var read int64
	for _, p := range pages {
		read += int64(len(p))
	}
	t.Logf("four concurrent full pages: heap peak %.1f MiB over the baseline, of which %.1f MiB the bodies the test client read", float64(growth)/(1<<20), float64(read)/(1<<20))
	if growth-read > 64<<20 {
		t.Errorf("four concurrent full pages grew the heap by %d MiB beyond their bodies, want well under 256 MiB (at most 64)", (growth-read)>>20)
	}
	var page struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(pages[0], &page); err != nil {
		t.Fatalf("page is not JSON: %v", err)
	}
	if n := len(page.Items); n < 1 || n > server.MaxPageBytes>>20 || page.NextCursor == nil {
		t.Errorf("page of 1 MiB records = %d items, next_cursor %v; want 1..%d and a cursor", n, page.NextCursor, server.MaxPageBytes>>20)
	}
	if bytes.Contains(pages[0], []byte(`\u003c`)) || len(pages[0]) > server.MaxPageBytes+64<<10 {
		t.Errorf("page of %d bytes, HTML-escaped: %v; want at most the budget, '<' as one byte", len(pages[0]), bytes.Contains(pages[0], []byte(`\u003c`)))
	}
	// The cursor walks every record.
	total, cursor := len(page.Items), *page.NextCursor
	for range 100 {
		code, body := s.do(t, http.MethodGet, "/api/v1/users/"+id+"/data?limit=100&cursor="+cursor, token, nil)
		if code != http.StatusOK {
			t.Fatalf("next page = %d %s", code, body)
		}
		page.NextCursor = nil
		page.Items = nil
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		total += len(page.Items)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if total != 100 {
		t.Errorf("paging through listed %d records, want 100", total)
	}
}

// TestRecordQuotaProblem: past the quota a record write gets the
// documented 409 problem.
func TestRecordQuotaProblem(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServerQuota(t, hasher, ratelimit.Config{Rate: 1000}, server.Quota{Records: 2, Bytes: 1 << 20})
	id, token := s.signUpAndToken(t, "quota")
	for i := range 2 {
		if code, body := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data", token, fmt.Appendf(nil, `{"data":%d}`, i)); code != http.StatusCreated {
			t.Fatalf("record %d = %d %s", i, code, body)
		}
	}
	code, body := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data", token, []byte(`{"data":3}`))
	var p problem
	json.Unmarshal(body, &p)
	if code != http.StatusConflict || p.Type != quotaProblemType || p.Status != http.StatusConflict {
		t.Errorf("record past the quota = %d %s, want 409 %s", code, body, quotaProblemType)
	}
}

// TestJSONIsNotHTMLEscaped: every JSON response writes <, > and & as they
// are.
func TestJSONIsNotHTMLEscaped(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	id, token := s.signUpAndToken(t, "escape")
	code, body := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data", token, []byte(`{"data":"<a&b>"}`))
	if code != http.StatusCreated || !bytes.Contains(body, []byte(`"<a&b>"`)) {
		t.Errorf("created record = %d %s, want the data unescaped", code, body)
	}
	code, body = s.do(t, http.MethodPut, "/api/v1/users/"+id, token, []byte(`{"profile":{"name":"<Ada & Co>"}}`))
	if code == http.StatusOK && !bytes.Contains(body, []byte(`"<Ada & Co>"`)) {
		t.Errorf("updated user = %d %s, want the name unescaped", code, body)
	}
}
