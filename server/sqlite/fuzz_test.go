package sqlite

import (
	"testing"

	"scalelab/server"
)

// FuzzDecodeCursor: the cursor decoder never panics; it answers
// EBADREQUEST or an id, and a cursor it accepts names the id it encodes
// again to the same cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(encodeCursor("0190c0de-0000-7000-8000-000000000000"))
	f.Add("AZDA3gAAcACAAAAAAAAAAA==")
	f.Add("not a cursor")
	f.Add("____________________________")
	f.Fuzz(func(t *testing.T, cursor string) {
		id, err := decodeCursor(cursor)
		if err != nil {
			if server.ErrorCode(err) != server.EBADREQUEST {
				t.Fatalf("decodeCursor(%q) = %v, want EBADREQUEST", cursor, err)
			}
			return
		}
		if cursor == "" {
			return
		}
		if !server.ValidID(id) {
			t.Fatalf("decodeCursor(%q) = %q, not a valid id", cursor, id)
		}
		if again, _ := decodeCursor(encodeCursor(id)); again != id {
			t.Fatalf("round trip of %q: %q", id, again)
		}
	})
}
