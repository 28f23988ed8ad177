package storetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"scalelab/server"
)

func newBatch(n int) []*server.Record {
	rs := make([]*server.Record, n)
	for i := range rs {
		rs[i] = &server.Record{Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return rs
}

func testCreateRecords(t *testing.T, s server.Store) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	rs := newBatch(server.MaxBatch)
	if err := s.CreateRecords(t.Context(), u.ID, rs); err != nil {
		t.Fatalf("CreateRecords(%d) = %v", len(rs), err)
	}
	for i, r := range rs {
		if !server.ValidID(r.ID) || r.UserID != u.ID || r.CreatedAt.IsZero() {
			t.Fatalf("record %d after CreateRecords = %+v, want an id, owner %s and a creation time", i, r, u.ID)
		}
		got := mustRecord(t, s, u.ID, r.ID)
		if string(got.Data) != string(r.Data) || !got.CreatedAt.Equal(r.CreatedAt) {
			t.Errorf("Record(%s) = %s at %v, want %s at %v", r.ID, got.Data, got.CreatedAt, r.Data, r.CreatedAt)
		}
	}
	page, err := s.Records(t.Context(), u.ID, 100, "")
	if err != nil {
		t.Fatalf("Records = %v", err)
	}
	if len(page.Items) != server.MaxBatch {
		t.Errorf("Records after a batch of %d = %d items", server.MaxBatch, len(page.Items))
	}

	for _, n := range []int{0, server.MaxBatch + 1} {
		wantCode(t, s.CreateRecords(t.Context(), u.ID, newBatch(n)), server.EINVALID, fmt.Sprintf("CreateRecords(%d records)", n))
	}
	wantCode(t, s.CreateRecords(t.Context(), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", newBatch(2)), server.ENOTFOUND,
		"CreateRecords for an unknown user")
}

// testCreateRecordsAllOrNone: one record that cannot be stored (an id
// taken) leaves none of the batch behind.
func testCreateRecordsAllOrNone(t *testing.T, s server.Store) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	taken := mustCreateRecord(t, s, u.ID, `1`)
	rs := newBatch(3)
	rs[2].ID = taken.ID
	if err := s.CreateRecords(t.Context(), u.ID, rs); err == nil {
		t.Fatalf("CreateRecords with a taken id = nil, want an error")
	}
	page, err := s.Records(t.Context(), u.ID, 100, "")
	if err != nil {
		t.Fatalf("Records = %v", err)
	}
	if len(page.Items) != 1 {
		t.Errorf("Records after a failed batch = %d items, want 1 (the batch stored nothing)", len(page.Items))
	}
}

// testQuotaBatch: the quota is checked for the batch as a whole.
func testQuotaBatch(t *testing.T, s server.Store, q server.Quota) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	if err := s.CreateRecords(t.Context(), u.ID, newBatch(int(q.Records)-1)); err != nil {
		t.Fatalf("CreateRecords within the quota = %v", err)
	}
	wantCode(t, s.CreateRecords(t.Context(), u.ID, newBatch(2)), server.EQUOTA, "CreateRecords of 2 with room for 1")
	if got := usageOf(t, s, u.ID); got.Records != q.Records-1 {
		t.Errorf("Usage after a refused batch = %+v, want %d records", got, q.Records-1)
	}
	if err := s.CreateRecords(t.Context(), u.ID, newBatch(1)); err != nil {
		t.Errorf("CreateRecords of 1 with room for 1 = %v", err)
	}
	want := int64(0)
	for _, r := range newBatch(int(q.Records) - 1) {
		want += int64(len(r.Data))
	}
	want += int64(len(`{"i":0}`))
	if got := usageOf(t, s, u.ID); got.Records != q.Records || got.Bytes != want {
		t.Errorf("Usage = %+v, want %d records, %d bytes", got, q.Records, want)
	}
}
