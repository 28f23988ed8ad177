package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"scalelab/server"
)

// RunQuotas runs the quota part of the suite (issue 9): open must return a
// store on an empty database of its own that enforces q, with a
// Usage(ctx, userID) (server.Usage, error) method.
func RunQuotas(t *testing.T, open func(t *testing.T, q server.Quota) server.Store) {
	tests := []struct {
		name  string
		quota server.Quota
		fn    func(t *testing.T, s server.Store, q server.Quota)
	}{
		{"RecordCount", server.Quota{Records: 3}, testQuotaRecordCount},
		{"RecordBytes", server.Quota{Bytes: 100}, testQuotaRecordBytes},
		{"UsageFollowsWrites", server.Quota{}, testUsageFollowsWrites},
		{"BatchAsAWhole", server.Quota{Records: 5}, testQuotaBatch},
		{"ConcurrentCreates", server.Quota{Records: 10, Bytes: 1000}, testQuotaConcurrentCreates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t, tt.quota), tt.quota) })
	}
}

// usageOf reads u's usage through the store's Usage method.
func usageOf(t *testing.T, s server.Store, userID string) server.Usage {
	t.Helper()
	us, ok := s.(interface {
		Usage(ctx context.Context, userID string) (server.Usage, error)
	})
	if !ok {
		t.Fatalf("%T has no Usage method", s)
	}
	got, err := us.Usage(t.Context(), userID)
	if err != nil {
		t.Fatalf("Usage(%s) = %v", userID, err)
	}
	return got
}

func testQuotaRecordCount(t *testing.T, s server.Store, q server.Quota) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	var last *server.Record
	for range q.Records {
		last = mustCreateRecord(t, s, u.ID, `{"a":1}`)
	}
	err := s.CreateRecord(t.Context(), &server.Record{UserID: u.ID, Data: []byte(`{"a":1}`)})
	wantCode(t, err, server.EQUOTA, "CreateRecord past the record quota")
	if got := usageOf(t, s, u.ID); got.Records != q.Records {
		t.Errorf("Usage after a refused create = %+v, want %d records", got, q.Records)
	}
	// Deleting one makes room for one.
	if err := s.DeleteRecord(t.Context(), u.ID, last.ID); err != nil {
		t.Fatalf("DeleteRecord = %v", err)
	}
	mustCreateRecord(t, s, u.ID, `{"a":2}`)
	// Another user has a quota of their own.
	other := mustCreateUser(t, s, "bob@example.com", "bob")
	mustCreateRecord(t, s, other.ID, `{}`)
}

func testQuotaRecordBytes(t *testing.T, s server.Store, q server.Quota) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	data := func(n int) []byte { return []byte(`"` + strings.Repeat("x", n-2) + `"`) } // n bytes of JSON
	r := mustCreateRecord(t, s, u.ID, string(data(60)))
	err := s.CreateRecord(ctx, &server.Record{UserID: u.ID, Data: data(41)})
	wantCode(t, err, server.EQUOTA, "CreateRecord of 41 bytes with 40 left")
	mustCreateRecord(t, s, u.ID, string(data(40))) // exactly at the quota
	// Growing a record past the quota fails and changes nothing;
	// shrinking one always works.
	_, err = s.UpdateRecord(ctx, u.ID, r.ID, data(61))
	wantCode(t, err, server.EQUOTA, "UpdateRecord growing past the byte quota")
	if got := mustRecord(t, s, u.ID, r.ID); len(got.Data) != 60 {
		t.Errorf("record after a refused update holds %d bytes, want 60", len(got.Data))
	}
	if _, err := s.UpdateRecord(ctx, u.ID, r.ID, data(10)); err != nil {
		t.Fatalf("UpdateRecord shrinking = %v", err)
	}
	if got := usageOf(t, s, u.ID); got != (server.Usage{Records: 2, Bytes: 50}) {
		t.Errorf("Usage = %+v, want 2 records, 50 bytes", got)
	}
	if _, err := s.UpdateRecord(ctx, u.ID, r.ID, data(60)); err != nil {
		t.Errorf("UpdateRecord growing back within the quota = %v", err)
	}
}

func testUsageFollowsWrites(t *testing.T, s server.Store, _ server.Quota) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	if got := usageOf(t, s, u.ID); got != (server.Usage{}) {
		t.Errorf("Usage of a new user = %+v, want zero", got)
	}
	a := mustCreateRecord(t, s, u.ID, `{"k":"<&>"}`)
	b := mustCreateRecord(t, s, u.ID, `[1,2,3]`)
	if got, want := usageOf(t, s, u.ID), (server.Usage{Records: 2, Bytes: int64(len(a.Data) + len(b.Data))}); got != want {
		t.Errorf("Usage after two creates = %+v, want %+v", got, want)
	}
	if _, err := s.UpdateRecord(ctx, u.ID, a.ID, []byte(`"é"`)); err != nil {
		t.Fatal(err)
	}
	if got, want := usageOf(t, s, u.ID), (server.Usage{Records: 2, Bytes: int64(len(`"é"`) + len(b.Data))}); got != want {
		t.Errorf("Usage after an update = %+v, want %+v (bytes, not characters)", got, want)
	}
	if err := s.DeleteRecord(ctx, u.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRecord(ctx, u.ID, b.ID); server.ErrorCode(err) != server.ENOTFOUND {
		t.Errorf("second DeleteRecord = %v, want ENOTFOUND", err)
	}
	if got, want := usageOf(t, s, u.ID), (server.Usage{Records: 1, Bytes: int64(len(`"é"`))}); got != want {
		t.Errorf("Usage after a delete (and a failed one) = %+v, want %+v", got, want)
	}
	err := s.CreateRecord(ctx, &server.Record{UserID: "0190c0de-0000-7000-8000-000000000000", Data: []byte(`{}`)})
	wantCode(t, err, server.ENOTFOUND, "CreateRecord for an unknown user")
}

// testQuotaConcurrentCreates: many writers of one user at once cannot pass
// the quota together, and the counters end equal to what is stored.
func testQuotaConcurrentCreates(t *testing.T, s server.Store, q server.Quota) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	const writers = 24
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateRecord(t.Context(), &server.Record{UserID: u.ID, Data: fmt.Appendf(nil, `{"i":"%03d"}`, i)})
			mu.Lock()
			codes[server.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[""] != int(q.Records) || codes[server.EQUOTA] != writers-int(q.Records) {
		t.Errorf("%d concurrent creates with a quota of %d records: outcomes %v, want %d ok and the rest EQUOTA", writers, q.Records, codes, q.Records)
	}
	var stored []server.Record
	page, err := s.Records(t.Context(), u.ID, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	stored = page.Items
	var bytes int64
	for _, r := range stored {
		bytes += int64(len(r.Data))
	}
	if got, want := usageOf(t, s, u.ID), (server.Usage{Records: int64(len(stored)), Bytes: bytes}); got != want {
		t.Errorf("Usage = %+v, stored %+v", got, want)
	}
}

// testRecordsPageByteBudget: a page stops before the record that would
// take it past server.MaxPageBytes (but holds at least one), and the
// cursor continues after the last record returned.
func testRecordsPageByteBudget(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	big := `"` + strings.Repeat("<", server.MaxPageBytes*2/5) + `"` // three pass the budget
	var ids []string
	for range 5 {
		ids = append(ids, mustCreateRecord(t, s, u.ID, big).ID)
	}
	huge := mustCreateRecord(t, s, u.ID, `"`+strings.Repeat("x", server.MaxPageBytes+10)+`"`) // alone past it
	want := [][]string{{huge.ID}, {ids[4], ids[3]}, {ids[2], ids[1]}, {ids[0]}}
	cursor := ""
	for i, w := range want {
		page, err := s.Records(ctx, u.ID, 100, cursor)
		if err != nil {
			t.Fatalf("page %d: Records = %v", i, err)
		}
		var got []string
		for _, r := range page.Items {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("page %d = %v, want %v", i, got, w)
		}
		if last := i == len(want)-1; last != (page.NextCursor == "") {
			t.Fatalf("page %d next cursor %q, want one unless the last page", i, page.NextCursor)
		}
		cursor = page.NextCursor
	}
}
