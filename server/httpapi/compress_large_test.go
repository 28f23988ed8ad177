package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/julienschmidt/httprouter"
)

// largeRecordBody is a record view of about size bytes shaped like the
// large-records scenario's (lab/driver_jobs.go): items whose words come
// from a small vocabulary, which compresses as real JSON does.
func largeRecordBody(size int) []byte {
	words := strings.Fields("order shipped warehouse customer invoice payment pending delivered returned refund parcel courier address street city postal region account premium standard express priority discount coupon review rating comment product item quantity price total currency tax note status created updated archived label")
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString(`{"id":"0190a0b4-7c3e-7f00-8000-000000000001","user_id":"0190a0b4-7c3e-7f00-8000-000000000002","data":{"kind":"document","items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"n":%d,"sku":"%s","price":%d,"status":"%s","text":"`, i, fmt.Sprintf("%x", r.Uint64N(1_000_000)), r.IntN(100_000), words[r.IntN(len(words))])
		for w := range 8 + r.IntN(16) {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`]},"created_at":"2026-12-03T00:00:00Z","updated_at":"2026-12-03T00:00:00Z"}`)
	return []byte(b.String())
}

// BenchmarkCompressLargeRecord measures the CPU one response of a large
// record costs in each encoding, and the bytes it sends, at the sizes the
// large-records scenario writes (8–64 KiB):
//
//	go test ./server/httpapi -run '^$' -bench CompressLargeRecord -benchmem
func BenchmarkCompressLargeRecord(b *testing.B) {
	c := newCompressor()
	for _, size := range []int{8 << 10, 32 << 10, 64 << 10} {
		body := largeRecordBody(size)
		h := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
		wrapped := c.compress("/api/v1/users/:id/data/:record_id", h)
		for _, coding := range []string{"identity", "gzip", "zstd"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, coding), func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/api/v1/users/x/data/y", nil)
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
}
