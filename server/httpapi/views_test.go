package httpapi

import (
	"testing"
	"time"

	"scalelab/server"
)

// withUsage splices the counters into a cached entry's bytes: the result
// must be what encoding the ownerView gives.
func TestWithUsage(t *testing.T) {
	u := &server.User{ID: "0193a3c1-6f1e-7c3a-9d2b-5a1e2f3c4d5e", Email: "ada@example.com", Username: "ada",
		Profile:   server.Profile{Name: `Ada "<Lovelace>"`, Avatar: "https://example.com/a.png?x=1&y=2"},
		CreatedAt: time.Date(2026, 11, 29, 11, 16, 9, 455525000, time.UTC), UpdatedAt: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	full, err := marshalJSON(fullView(u))
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []server.Usage{{}, {Records: 3, Bytes: 13}, {Records: 1 << 40, Bytes: 1<<62 + 7}} {
		want, err := marshalJSON(ownerView{userView: fullView(u), RecordsCount: usage.Records, RecordsBytes: usage.Bytes})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{full, append(append([]byte(nil), full...), "\n"...)} {
			if got := withUsage(in, usage); string(got) != string(want) {
				t.Errorf("withUsage(%s, %+v) = %s, want %s", in, usage, got, want)
			}
		}
	}
}
