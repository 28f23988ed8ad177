package server

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// NewID returns a new UUIDv7 as lower-case text. v7 ids are time-ordered,
// which keeps B-tree inserts at the right edge of the index and gives
// records a natural newest-first order.
func NewID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new uuid: %w", err)
	}
	return id.String(), nil
}

// ValidID reports whether s is a UUID in canonical lower-case text form.
// Anything else cannot name a stored row, so callers answer 404 at once.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// Now returns the current time in UTC at microsecond precision, the
// precision both stores keep, so a value read back equals the value written.
func Now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// NextUpdate returns the updated_at for a row last updated at prev: now, or
// one microsecond after prev when the clock has not moved past it, so that
// updated_at always advances.
func NextUpdate(prev time.Time) time.Time {
	now := Now()
	if !now.After(prev) {
		return prev.Add(time.Microsecond)
	}
	return now
}
