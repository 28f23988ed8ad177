package postgres

import (
	"testing"

	"scalelab/server"
)

// FuzzDecodeCursor: the cursor decoder never panics; it answers
// EBADREQUEST or a cursor that encodes back to one naming the same id and
// position.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(encodeCursor(cursor{id: "0190c0de-0000-7000-8000-000000000000"}))
	f.Add(encodeCursor(cursor{id: "0190c0de-0000-7000-8000-000000000000", pos: 1 << 40}))
	f.Add("not a cursor")
	f.Add("AZDA3gAAcACAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			if server.ErrorCode(err) != server.EBADREQUEST {
				t.Fatalf("decodeCursor(%q) = %v, want EBADREQUEST", s, err)
			}
			return
		}
		if s == "" {
			return
		}
		if !server.ValidID(c.id) {
			t.Fatalf("decodeCursor(%q) id %q, not a valid id", s, c.id)
		}
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || again != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}
