package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/julienschmidt/httprouter"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

func TestNegotiateCoding(t *testing.T) {
	tests := []struct {
		header string
		want   string
	}{
		{"", ""},
		{"identity", ""},
		{"gzip", "gzip"},
		{"gzip, deflate, br", "gzip"},
		{"zstd", "zstd"},
		{"gzip, zstd", "zstd"},
		{"gzip;q=1, zstd;q=0.5", "gzip"},
		{"zstd;q=0, gzip", "gzip"},
		{"gzip;q=0", ""},
		{"*", "zstd"},
		{"*;q=0.5, gzip", "gzip"},
		{"*, zstd;q=0", "gzip"},
		{"GZIP", "gzip"},
		{"gzip;q=bogus", ""},
	}
	for _, tt := range tests {
		if got := negotiateCoding([]string{tt.header}); got != tt.want {
			t.Errorf("negotiateCoding(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

// get fetches path with the given Accept-Encoding and returns the response
// and its body as sent (not decoded: an explicit Accept-Encoding turns off
// the transport's transparent gzip).
func (s *testServer) getEncoded(t *testing.T, path, token, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	return resp, body
}

func decode(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return out
}

// TestCompressedResponses: a list page of 20 records (about 5 KiB) comes
// back gzip- or zstd-encoded as asked, decodes to the identity body, and
// is smaller; a small body (the user's own view) is sent as it is; every
// response says Vary: Accept-Encoding.
func TestCompressedResponses(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{})
	id, token := s.signUpAndToken(t, "squeeze")
	for i := range 20 {
		body := fmt.Appendf(nil, `{"data": {"n": %d, "note": %q}}`, i, strings.Repeat("a record worth compressing ", 8))
		if code, out := s.do(t, http.MethodPost, "/api/v1/users/"+id+"/data", token, body); code != http.StatusCreated {
			t.Fatalf("POST data = %d %s", code, out)
		}
	}
	page := "/api/v1/users/" + id + "/data?limit=20"
	plainResp, plain := s.getEncoded(t, page, token, "identity")
	if plainResp.StatusCode != http.StatusOK || plainResp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("identity GET = %d, Content-Encoding %q", plainResp.StatusCode, plainResp.Header.Get("Content-Encoding"))
	}
	if len(plain) < 2*compressMin {
		t.Fatalf("identity page is %d bytes, want a page over %d", len(plain), 2*compressMin)
	}
	if v := plainResp.Header.Get("Vary"); !strings.Contains(v, "Accept-Encoding") {
		t.Errorf("identity GET: Vary = %q, want Accept-Encoding in it", v)
	}
	for _, coding := range []string{"gzip", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			resp, got := s.getEncoded(t, page, token, coding)
			if ce := resp.Header.Get("Content-Encoding"); ce != coding {
				t.Fatalf("Content-Encoding = %q, want %q", ce, coding)
			}
			if v := resp.Header.Get("Vary"); !strings.Contains(v, "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding in it", v)
			}
			if resp.Header.Get("Cache-Control") != cachePrivate {
				t.Errorf("Cache-Control = %q, want %q", resp.Header.Get("Cache-Control"), cachePrivate)
			}
			if len(got) >= len(plain)/2 {
				t.Errorf("%s body = %d bytes, identity %d: want less than half", coding, len(got), len(plain))
			}
			if d := decode(t, coding, got); !bytes.Equal(d, plain) {
				t.Errorf("decoded %s body differs from the identity body:\n%s\nwant\n%s", coding, d, plain)
			}
			t.Logf("%s: %d bytes -> %d (%.1f%%)", coding, len(plain), len(got), 100*float64(len(got))/float64(len(plain)))
		})
	}
	t.Run("small body", func(t *testing.T) {
		resp, got := s.getEncoded(t, "/api/v1/users/"+id, token, "gzip, zstd")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET user = %d %s", resp.StatusCode, got)
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || len(got) >= compressMin {
			t.Errorf("GET user: %d bytes with Content-Encoding %q, want a plain body under %d bytes", len(got), ce, compressMin)
		}
		if v := resp.Header.Get("Vary"); !strings.Contains(v, "Authorization") || !strings.Contains(v, "Accept-Encoding") {
			t.Errorf("GET user: Vary = %q, want Authorization and Accept-Encoding", v)
		}
	})
}

// TestCompressSkipsTokenEndpoint drives the wrapper directly with a body
// well over the threshold, so that it would be compressed on any other
// path: the token endpoint's is sent as it is (BREACH, see compress).
func TestCompressSkipsTokenEndpoint(t *testing.T) {
	big := []byte(`{"access_token":"` + strings.Repeat("x", 4*compressMin) + `"}`)
	h := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"abc"`)
		w.Write(big)
	}
	c := newCompressor()
	for _, tt := range []struct {
		path, wantCoding, wantETag string
	}{
		{tokenPath, "", `"abc"`},
		{"/api/v1/users/:id/data", "gzip", `W/"abc"`},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, tt.path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		c.compress(tt.path, h)(rec, req, nil)
		if ce := rec.Header().Get("Content-Encoding"); ce != tt.wantCoding {
			t.Errorf("%s: Content-Encoding = %q, want %q", tt.path, ce, tt.wantCoding)
		}
		if e := rec.Header().Get("ETag"); e != tt.wantETag {
			t.Errorf("%s: ETag = %q, want %q", tt.path, e, tt.wantETag)
		}
		if d := decode(t, tt.wantCoding, rec.Body.Bytes()); !bytes.Equal(d, big) {
			t.Errorf("%s: body of %d bytes does not decode to the handler's %d", tt.path, len(d), len(big))
		}
	}
}

// BenchmarkCompress measures CPU per response and the bytes saved, on a
// list page of 20 records of about 230 bytes each (4.5 KiB of JSON):
//
//	go test ./server/httpapi -run '^$' -bench Compress -benchmem
func BenchmarkCompress(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := range 20 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"0190a0b4-7c3e-7f00-8000-%012d","user_id":"0190a0b4-7c3e-7f00-8000-000000000001","data":{"n":%d,"note":"order %d shipped to warehouse %d"},"created_at":"2026-12-02T22:%02d:00Z","updated_at":"2026-12-02T22:%02d:00Z"}`, i, i, i*7919, i%13, i, i)
	}
	sb.WriteString(`],"next_cursor":"MDE5MGEwYjQtN2MzZS03ZjAwLTgwMDAtMDAwMDAwMDAwMDIw"}`)
	body := []byte(sb.String())
	h := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
	c := newCompressor()
	wrapped := c.compress("/api/v1/users/:id/data", h)
	for _, coding := range []string{"identity", "gzip", "zstd"} {
		b.Run(coding, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/users/x/data", nil)
			req.Header.Set("Accept-Encoding", coding)
			var sent int
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				wrapped(rec, req, nil)
				sent = rec.Body.Len()
			}
			b.ReportMetric(float64(len(body)), "bytes-in")
			b.ReportMetric(float64(sent), "bytes-out")
		})
	}
}
