package server

import "fmt"

// EQUOTA is the code of a write refused because the user's stored records
// would pass their quota. The HTTP layer answers it 409 with the problem
// type urn:scalelab:problem:quota-exceeded.
const EQUOTA = "quota_exceeded"

// MaxPageLimit is the most records one page may hold: the stores refuse a
// larger limit, and the HTTP API answers 400 for one.
const MaxPageLimit = 100

// MaxPageBytes is the byte budget of one page of records: a page stops
// before the record that would take its data past it, whatever the limit,
// but always holds at least one record. With records of up to 1 MiB (the
// body limit) a page then holds a few MiB however large its limit, so a
// few concurrent full pages cannot take the server's memory.
const MaxPageBytes = 4 << 20

// Quota bounds what one user may store: records and bytes of record data
// (the compacted JSON text). Zero is no bound.
type Quota struct {
	Records int64
	Bytes   int64
}

// Usage is what one user stores. Stores keep it as denormalized counters
// on the user's row, updated in the transaction of every record write, so
// a quota check costs no scan.
type Usage struct {
	Records int64
	Bytes   int64
}

// Check returns an EQUOTA error when adding records and bytes (either may
// be negative) to u would pass q; a write that shrinks usage always
// passes.
func (q Quota) Check(u Usage, records, bytes int64) error {
	if q.Records > 0 && records > 0 && u.Records+records > q.Records {
		return Errorf(EQUOTA, "record quota exceeded: %d records stored, at most %d allowed", u.Records, q.Records)
	}
	if q.Bytes > 0 && bytes > 0 && u.Bytes+bytes > q.Bytes {
		return Errorf(EQUOTA, "storage quota exceeded: %d of %d bytes used, this write needs %d more", u.Bytes, q.Bytes, bytes)
	}
	return nil
}

// String is for logs.
func (q Quota) String() string { return fmt.Sprintf("%d records, %d bytes", q.Records, q.Bytes) }
