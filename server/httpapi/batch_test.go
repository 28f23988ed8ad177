package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

func batchBody(n int) []byte {
	recs := make([]map[string]any, n)
	for i := range recs {
		recs[i] = map[string]any{"data": map[string]int{"i": i}}
	}
	b, _ := json.Marshal(map[string]any{"records": recs})
	return b
}

func TestCreateRecordsBatch(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServerQuota(t, hasher, ratelimit.Config{Rate: 1000}, server.Quota{Records: 150})
	id, token := s.signUpAndToken(t, "ada")
	_, other := s.signUpAndToken(t, "bob")
	path := "/api/v1/users/" + id + "/data:batch"

	code, body := s.do(t, http.MethodPost, path, token, batchBody(100))
	if code != http.StatusCreated {
		t.Fatalf("POST %s (100 records) = %d %s, want 201", path, code, body)
	}
	var got struct{ Items []recordView }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 100 {
		t.Fatalf("POST %s = %d items, want 100", path, len(got.Items))
	}
	for i, rec := range got.Items {
		if want := fmt.Sprintf(`{"i":%d}`, i); string(rec.Data) != want || rec.UserID != id {
			t.Errorf("item %d = %s of %s, want %s of %s", i, rec.Data, rec.UserID, want, id)
		}
	}
	if code, body := s.do(t, http.MethodGet, "/api/v1/users/"+id+"/data/"+got.Items[7].ID, token, nil); code != http.StatusOK {
		t.Errorf("GET item 7 = %d %s", code, body)
	}

	problems := []struct {
		name   string
		token  string
		method string
		body   []byte
		status int
		field  string
	}{
		{"empty", token, http.MethodPost, []byte(`{"records":[]}`), http.StatusUnprocessableEntity, "records"},
		{"too many", token, http.MethodPost, batchBody(101), http.StatusUnprocessableEntity, "records"},
		{"a record without data", token, http.MethodPost, []byte(`{"records":[{"data":1},{"data":2},{"data":3},{}]}`), http.StatusUnprocessableEntity, "records[3].data"},
		{"past the quota as a whole", token, http.MethodPost, batchBody(51), http.StatusConflict, ""},
		{"not the owner", other, http.MethodPost, batchBody(1), http.StatusForbidden, ""},
		{"GET", token, http.MethodGet, nil, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range problems {
		t.Run(tt.name, func(t *testing.T) {
			code, body := s.do(t, tt.method, path, tt.token, tt.body)
			if code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, path, code, body, tt.status)
			}
			if tt.field != "" {
				var p problem
				json.Unmarshal(body, &p)
				if len(p.Errors) != 1 || p.Errors[0].Field != tt.field {
					t.Errorf("errors = %+v, want one for %q", p.Errors, tt.field)
				}
			}
		})
	}
	// The refused batches stored nothing: 100 records, and room for 50.
	if code, body := s.do(t, http.MethodPost, path, token, batchBody(50)); code != http.StatusCreated {
		t.Errorf("POST 50 more (the quota's rest) = %d %s, want 201", code, body)
	}
	// The single-record route is unaffected.
	if code, body := s.do(t, http.MethodGet, "/api/v1/users/"+id+"/data?limit=1", token, nil); code != http.StatusOK {
		t.Errorf("GET …/data = %d %s", code, body)
	}
}

func TestGetUsersByIDs(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	ada, _ := s.signUpAndToken(t, "ada")
	bob, _ := s.signUpAndToken(t, "bob")
	unknown := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

	path := "/api/v1/users?ids=" + strings.Join([]string{bob, unknown, strings.ToUpper(ada)}, ",")
	resp, err := s.client.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Items []map[string]any
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", path, resp.StatusCode)
	}
	var names []string
	for _, u := range got.Items {
		names = append(names, u["username"].(string))
		if _, ok := u["email"]; ok {
			t.Errorf("item %v shows an email: want public views", u)
		}
	}
	if diff := cmp.Diff([]string{"bob", "ada"}, names); diff != "" {
		t.Errorf("GET %s usernames (-want +got):\n%s", path, diff)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != cacheBatchPublic || resp.Header.Get("ETag") == "" {
		t.Errorf("Cache-Control %q, ETag %q: want %q and an ETag", cc, resp.Header.Get("ETag"), cacheBatchPublic)
	}

	many := strings.TrimSuffix(strings.Repeat(ada+",", 101), ",")
	for _, q := range []string{"", "?ids=", "?ids=nope", "?ids=" + ada + ",,", "?ids=" + many, "?ids=" + ada + "&ids=" + bob} {
		code, body := s.do(t, http.MethodGet, "/api/v1/users"+q, "", nil)
		if code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/users%.60s = %d %s, want 400", q, code, body)
		}
	}
}
