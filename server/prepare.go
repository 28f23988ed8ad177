package server

import (
	"context"
	"encoding/json"
	"fmt"
)

// PrepareNewUser sets the server-owned fields of a user about to be
// created that the caller left zero: a new UUIDv7 id, the creation time
// (also the first update time) and version 1. Every store calls it in
// CreateUser; seeding sets all of them itself.
func PrepareNewUser(u *User) error {
	if u.ID == "" {
		id, err := NewID()
		if err != nil {
			return err
		}
		u.ID = id
	} else if !ValidID(u.ID) {
		return Errorf(EINVALID, "invalid user id %q", u.ID)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = Now()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	if u.Version == 0 {
		u.Version = 1
	}
	return nil
}

// PrepareNewRecord checks that a record about to be created holds a JSON
// value and sets the server-owned fields the caller left zero, as
// PrepareNewUser does for users.
func PrepareNewRecord(r *Record) error {
	if !json.Valid(r.Data) {
		return Errorf(EINVALID, "data must be a JSON value")
	}
	if r.ID == "" {
		id, err := NewID()
		if err != nil {
			return err
		}
		r.ID = id
	} else if !ValidID(r.ID) {
		return Errorf(EINVALID, "invalid record id %q", r.ID)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = Now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	return nil
}

// CheckSeed reports arguments no store's Seed can use.
func CheckSeed(users int, passwordHash string) error {
	if users < 0 {
		return Errorf(EINVALID, "seed: users must be >= 0, got %d", users)
	}
	if passwordHash == "" {
		return Errorf(EINVALID, "seed: a password hash is required")
	}
	return nil
}

// SeededPrefix returns k such that seeded users 0..k-1 exist and k does not
// (k <= n), asking exists about O(log n) seeded ids. Stores seed users in
// order and commit in order, so the seeded users present are always such a
// prefix, and a Seed that was interrupted resumes at k.
func SeededPrefix(ctx context.Context, n int, exists func(ctx context.Context, id string) (bool, error)) (int, error) {
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		ok, err := exists(ctx, SeedUserID(mid))
		if err != nil {
			return 0, fmt.Errorf("seed: look for seeded user %d: %w", mid, err)
		}
		if ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// PrepareNewRecords checks a batch for CreateRecords: 1 to MaxBatch
// records, each prepared as PrepareNewRecord does and given owner userID.
// It returns the bytes of data the batch adds.
func PrepareNewRecords(userID string, rs []*Record) (int64, error) {
	if len(rs) == 0 || len(rs) > MaxBatch {
		return 0, Errorf(EINVALID, "a batch holds 1 to %d records, not %d", MaxBatch, len(rs))
	}
	var bytes int64
	for i, r := range rs {
		r.UserID = userID
		if err := PrepareNewRecord(r); err != nil {
			return 0, fmt.Errorf("record %d: %w", i, err)
		}
		bytes += int64(len(r.Data))
	}
	return bytes, nil
}
